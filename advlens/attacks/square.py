"""Square Attack, L-inf, L2 and L1 (Andriushchenko, Croce, Flammarion and Hein 2020, arXiv 1912.00049).

A score-based black-box attack: it only reads the model's logits, never a gradient, and runs
entirely under ``torch.no_grad()``, which makes it the standard check for gradient masking.

Start from vertical stripes x + eps * s with s in {-1, +1} per column and channel. At each
iteration pick, for every image not yet broken, a random square of side
s_i = round(sqrt(p_i * H * W)) and set the perturbation inside it to a fresh random +-eps per
channel; keep the change when the loss decreases. The loss is the logit margin
z_y - max_{i != y} z_i (untargeted) or CE(z, t) (targeted); p_i starts at ``p_init`` and halves
at fixed iterations (the schedule of the paper for 10,000 queries; ``rescale`` stretches it to the
query budget, which AutoAttack's standard version does not). Each iteration costs one forward
pass on the images still unbroken.

L2 (:class:`SquareL2`) starts from a grid of "pseudo-Gaussian" square bumps scaled to the
eps-sphere; each iteration moves the perturbation's mass of a second random square into a new
bump in the first one, keeping the total norm at eps (the proposal of the paper's section 3.2).

L1 (:class:`SquareL1`) is the version of AutoAttack's L1 standard suite (Croce and Hein 2021,
arXiv 2103.01208; ``autoattack/square.py``, ``norm == 'L1'``): the same mass-moving proposal with
bumps of weight 1 / (r + 1)^4 normalised in L1, each candidate projected onto the intersection of the
eps-L1-ball and the [0, 1] box (:func:`.apgd_l1.project_l1_box`, the exact projection the official
``L1_projection`` computes).

The recorded loss is the negative logit margin (it crosses 0 on success).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .apgd_l1 import l1_eps, project_l1_box
from .base import Attack, Param, l2_eps, linf_eps, steps
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


def p_selection(p_init: float, it: int, n_iters: int, rescale: bool = True) -> float:
    """The fraction of pixels a square covers at iteration ``it`` of ``n_iters``."""
    if rescale:
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
        Param("rescale", bool, True, help="stretch the square-size schedule to the query budget"),
    )

    def _objective(self, logits, y, target):
        if target is None:
            return margin(logits, y)
        return F.cross_entropy(logits, target, reduction="none")

    def fraction(self, it: int) -> float:
        return p_selection(self.p_init, it, self.steps, self.rescale)

    # ----- the norm-specific parts (SquareL2 overrides these) ---------------------------------
    def initial(self, x: torch.Tensor) -> torch.Tensor:
        n, c, _, w = x.shape
        return (x + float(self.eps) * _signs((n, c, 1, w), x.device)).clamp_(0.0, 1.0)

    def propose(self, xc: torch.Tensor, xb: torch.Tensor, it: int) -> torch.Tensor:
        """A candidate for each image still unbroken (``xc`` clean, ``xb`` its best point)."""
        k, c, h, w = xc.shape
        eps = float(self.eps)
        deltas = xb - xc
        side = max(min(round(math.sqrt(self.fraction(it) * h * w)), h - 1, w - 1), 1)
        top = torch.randint(0, h - side + 1, (k, 1), device=xc.device)
        left = torch.randint(0, w - side + 1, (k, 1), device=xc.device)
        rows, cols = torch.arange(h, device=xc.device), torch.arange(w, device=xc.device)
        in_rows = (rows >= top) & (rows < top + side)
        in_cols = (cols >= left) & (cols < left + side)
        window = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (k, 1, h, w)
        new = eps * _signs((k, c, 1, 1), xc.device)
        for _ in range(10):  # make sure the square changes the image
            cand = (xc + torch.where(window, new, deltas)).clamp_(0.0, 1.0)
            changed = ((cand - xb).abs() * window).flatten(1).amax(1) > 1e-7
            if bool(changed.all()):
                break
            new = torch.where(changed[:, None, None, None], new, eps * _signs((k, c, 1, 1), xc.device))
        return (xc + torch.where(window, new, deltas)).clamp_(0.0, 1.0)

    # ----- the loop -----------------------------------------------------------------------------
    @torch.no_grad()
    def _perturb(self, x, y, target):
        x_best = self.initial(x)
        logits_best = self.model(x_best)
        loss = self._objective(logits_best, y, target)
        marg = margin(logits_best, y, target)
        self.record_step(Rows(x, y, target, self.steps), 0, x_best, logits_best, -marg)
        for it in range(1, self.steps):
            if self.tick(it, self.steps):
                break
            idx = (marg >= 0).nonzero()[:, 0]
            if idx.numel() == 0:
                break
            x_new = self.propose(x[idx], x_best[idx], it)
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


def _bump_rect(rows: int, cols: int, device, power: int = 2, size=torch.Tensor.norm) -> torch.Tensor:
    """Concentric rectangles of weight 1 / (r + 1)^power around the centre, of unit ``size`` (L2 norm;
    :func:`_bump_l1`: power 4 and unit L1 norm)."""
    out = torch.zeros(rows, cols, device=device)
    r0, c0 = rows // 2, cols // 2
    for r in range(max(rows // 2 + 1, cols // 2 + 1)):
        out[max(r0 - r, 0) : min(r0 - r + 2 * r + 1, rows), max(c0 - r, 0) : min(c0 - r + 2 * r + 1, cols)] += (
            1.0 / (r + 1) ** power
        )
    return out / size(out).clamp_min(1e-12)


def _bump(side: int, device, power: int = 2, size=torch.Tensor.norm) -> torch.Tensor:
    """The paper's L2 square: a positive bump over a negative one, unit norm, randomly transposed."""
    out = torch.zeros(side, side, device=device)
    if side // 2:
        out[: side // 2] = _bump_rect(side // 2, side, device, power, size)
    out[side // 2 :] = -_bump_rect(side - side // 2, side, device, power, size)
    out /= size(out).clamp_min(1e-12)
    return out.t() if bool(torch.rand(()) > 0.5) else out


def _norm(t: torch.Tensor, dims) -> torch.Tensor:
    return t.square().sum(dim=dims, keepdim=True).sqrt()


class SquareL2(Square):
    name = "square_l2"
    title = "Square (L2, black-box)"
    norm = "L2"
    PARAMS = (l2_eps(),) + Square.PARAMS[1:]

    def _to_sphere(self, xc: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return (xc + float(self.eps) * delta / _norm(delta, (1, 2, 3)).clamp_min(1e-12)).clamp_(0.0, 1.0)

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        return self._to_sphere(x, _bump_grid(x, _bump))

    def propose(self, xc: torch.Tensor, xb: torch.Tensor, it: int) -> torch.Tensor:
        k, c, h, w = xc.shape
        eps = float(self.eps)
        delta = xb - xc
        side, win, win2, mask = _two_windows(xc, self.fraction(it))
        old = delta[win]
        spare = (eps**2 - _norm(delta, (1, 2, 3)).square()).clamp_min(0.0) / c  # unused budget, per channel
        mass = _norm(delta * mask, (2, 3)).square()  # what the two windows hold, per channel
        new = _bump(side, xc.device) * _signs((k, c, 1, 1), xc.device) + old / _norm(old, (2, 3)).clamp_min(1e-12)
        new = new / _norm(new, (2, 3)).clamp_min(1e-12) * (spare + mass).sqrt()
        delta[win2] = 0.0
        delta[win] = new
        return self._to_sphere(xc, delta)


def _l1(t: torch.Tensor, dims) -> torch.Tensor:
    return t.abs().sum(dim=dims, keepdim=True)


def _l1_size(t: torch.Tensor) -> torch.Tensor:
    return t.abs().sum()


def _bump_l1(side: int, device) -> torch.Tensor:
    """The L1 square: a positive bump over a negative one, unit L1 norm, randomly transposed; its
    rectangles weigh 1 / (r + 1)^4 (the official ``eta_rectangles`` for L1)."""
    return _bump(side, device, 4, _l1_size)


class SquareL1(Square):
    """Square in L1, as AutoAttack's L1 standard suite runs it (``autoattack/square.py``, L1 branch).

    Start: a grid of L1 bumps (side H // 5) with a random sign per image and channel, projected onto
    the eps-L1-ball and the box. Each iteration: two random windows of side s (odd, at least 3); the
    new content of the first is a fresh bump plus its old content (each normalised per channel),
    rescaled per channel to (the unused budget / c + the mass both windows held) * c; the second
    window is emptied; the whole perturbation is projected onto the L1 ball and the box (radius
    eps (1 - 1e-6), as the official code). Windows may start at any position that fits (the official
    ``random_int(0, h - s)`` never picks the last one).
    """

    name = "square_l1"
    title = "Square (L1, black-box)"
    norm = "L1"
    PARAMS = (l1_eps(),) + Square.PARAMS[1:]

    def _project(self, xc: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return (xc + project_l1_box(xc, delta, float(self.eps) * (1.0 - 1e-6))).clamp_(0.0, 1.0)

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        return self._project(x, _bump_grid(x, _bump_l1))

    def propose(self, xc: torch.Tensor, xb: torch.Tensor, it: int) -> torch.Tensor:
        k, c, h, w = xc.shape
        eps = float(self.eps)
        delta = xb - xc
        side, win, win2, mask = _two_windows(xc, self.fraction(it))
        old = delta[win]
        spare = (eps - _l1(delta, (1, 2, 3))).clamp_min(0.0)  # unused budget of the whole image
        mass = _l1(delta * mask, (2, 3))  # what the two windows hold, per channel
        new = _bump_l1(side, xc.device) * _signs((k, c, 1, 1), xc.device) + old / (_l1(old, (2, 3)) + 1e-12)
        new = new / (_l1(new, (2, 3)) + 1e-12) * (spare / c + mass) * c
        delta[win2] = 0.0
        delta[win] = new
        return self._project(xc, delta)


def _bump_grid(x: torch.Tensor, bump) -> torch.Tensor:
    """The start of Square in L2 and L1: a grid of bumps of side H // 5, a random sign per image and
    channel in each cell (before the projection onto the ball)."""
    n, c, h, w = x.shape
    side = max(h // 5, 1)
    margin_px = (h - side * 5) // 2 if h >= 5 else 0
    delta = torch.zeros_like(x)
    for top in range(margin_px, h - side + 1, side):
        for left in range(margin_px, w - side + 1, side):
            delta[:, :, top : top + side, left : left + side] += bump(side, x.device) * _signs((n, c, 1, 1), x.device)
    return delta


def _two_windows(xc: torch.Tensor, fraction: float):
    """One iteration's two random windows of Square in L2 and L1: side s (odd, at least 3, covering
    about ``fraction`` of the image), their slices and the mask of both (the official code's windows)."""
    _, _, h, w = xc.shape
    side = max(round(math.sqrt(fraction * h * w)), 3)
    side = min(side + (side % 2 == 0), h, w)
    top, left = (int(v) for v in torch.randint(0, h - side + 1, (2,)))
    top2, left2 = (int(v) for v in torch.randint(0, w - side + 1, (2,)))
    win = (slice(None), slice(None), slice(top, top + side), slice(left, left + side))
    win2 = (slice(None), slice(None), slice(top2, top2 + side), slice(left2, left2 + side))
    mask = torch.zeros_like(xc)
    mask[win] = 1.0
    mask[win2] = 1.0
    return side, win, win2, mask
