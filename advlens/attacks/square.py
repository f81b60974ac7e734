"""Square Attack, L-inf (Andriushchenko, Croce, Flammarion and Hein 2020, arXiv 1912.00049).

A score-based black-box attack: it only reads the model's logits, never a gradient, and runs
entirely under ``torch.no_grad()``, which makes it the standard check for gradient masking.

Start from vertical stripes x + eps * s with s in {-1, +1} per column and channel. At each
iteration pick, for every image not yet broken, a random square of side
s_i = round(sqrt(p_i * H * W)) and set the perturbation inside it to a fresh random +-eps per
channel; keep the change when the loss decreases. The loss is the logit margin
z_y - max_{i != y} z_i (untargeted) or CE(z, t) (targeted); p_i starts at ``p_init`` and halves
at fixed fractions of the query budget (the schedule of the paper, scaled to 10,000 queries).
Each iteration costs one forward pass on the images still unbroken.

The recorded loss is the negative logit margin (it crosses 0 on success).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import Attack, Param, linf_eps, steps
from .losses import margin
from .trajectory import Rows

_SCHEDULE = (
    (10, 1),
    (50, 2),
    (200, 4),
    (500, 8),
    (1000, 16),
    (2000, 32),
    (4000, 64),
    (6000, 128),
    (8000, 256),
    (10000, 512),
)


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    """The fraction of pixels a square covers at iteration ``it`` of ``n_iters``."""
    it = int(it / n_iters * 10000)
    if it <= 10:
        return p_init
    for (lo, _), (hi, div) in zip(_SCHEDULE, _SCHEDULE[1:]):
        if lo < it <= hi:
            return p_init / div
    return p_init


def _signs(shape, device) -> torch.Tensor:
    return torch.randint(0, 2, shape, device=device).float().mul_(2).sub_(1)


class Square(Attack):
    name = "square"
    title = "Square (L-inf, black-box)"
    paper = "Andriushchenko et al. 2020, arXiv 1912.00049"
    norm = "Linf"
    iterative = True
    uses_gradients = False
    PARAMS = (
        linf_eps(),
        steps(1000, 100_000, "queries (one forward pass each)"),
        Param("p_init", float, 0.8, 0.0001, 1.0, "", "initial fraction of the image a square covers"),
    )

    def _objective(self, logits, y, target):
        if target is None:
            return margin(logits, y)
        return F.cross_entropy(logits, target, reduction="none")

    @torch.no_grad()
    def _perturb(self, x, y, target):
        n, c, h, w = x.shape
        eps = float(self.eps)
        x_best = (x + eps * _signs((n, c, 1, w), x.device)).clamp_(0.0, 1.0)
        logits_best = self.model(x_best)
        loss = self._objective(logits_best, y, target)
        marg = margin(logits_best, y, target)
        self.record_step(Rows(x, y, target, self.steps), 0, x_best, logits_best, -marg)
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        for it in range(1, self.steps):
            if self.tick(it, self.steps):
                break
            idx = (marg >= 0).nonzero()[:, 0]
            if idx.numel() == 0:
                break
            k = idx.numel()
            xc, xb = x[idx], x_best[idx]
            deltas = xb - xc
            side = max(min(round(math.sqrt(p_selection(self.p_init, it, self.steps) * h * w)), h - 1, w - 1), 1)
            top = torch.randint(0, h - side + 1, (k, 1), device=x.device)
            left = torch.randint(0, w - side + 1, (k, 1), device=x.device)
            in_rows = (rows >= top) & (rows < top + side)
            in_cols = (cols >= left) & (cols < left + side)
            window = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (k, 1, h, w)
            new = eps * _signs((k, c, 1, 1), x.device)
            for _ in range(10):  # make sure the square changes the image
                cand = (xc + torch.where(window, new, deltas)).clamp_(0.0, 1.0)
                changed = ((cand - xb).abs() * window).flatten(1).amax(1) > 1e-7
                if bool(changed.all()):
                    break
                new = torch.where(changed[:, None, None, None], new, eps * _signs((k, c, 1, 1), x.device))
            x_new = (xc + torch.where(window, new, deltas)).clamp_(0.0, 1.0)
            logits = self.model(x_new)
            loss_new = self._objective(logits, y[idx], None if target is None else target[idx])
            improved = loss_new < loss[idx]
            rows_imp = idx[improved]
            loss[rows_imp] = loss_new[improved]
            marg[rows_imp] = margin(logits[improved], y[rows_imp], None if target is None else target[rows_imp])
            x_best[rows_imp] = x_new[improved]
            logits_best[rows_imp] = logits[improved]
            self.record_step(Rows(x, y, target, self.steps), it, x_best, logits_best, -marg, last=it == self.steps - 1)
        return x_best
