"""Sparse-RS in L0, pixels (Croce, Andriushchenko, Singh, Flammarion and Hein 2022, "Sparse-RS: a
versatile framework for query-efficient sparse black-box adversarial attacks", AAAI 2022,
arXiv 2006.12834).

A score-based black-box attack (logits only, no gradient) on at most ``eps`` pixels, each set to
a corner of the colour cube (every channel 0 or 1). Start from ``eps`` random pixels with random
corners. At iteration i, for every image not broken yet, swap a random ``max(1, p_i * eps)`` of
the changed pixels for as many unchanged ones (the swapped-out pixels get their clean values
back, the new ones random corners), and keep the proposal when the loss decreases (or the image
is misclassified). The loss is the logit margin z_y - max_{j != y} z_j (untargeted) or
CE toward the target. p_i starts at ``p_init`` and shrinks at fixed iterations (the paper's L0
schedule for 10,000 queries, stretched to the query budget). One forward pass per iteration on
the images still unbroken.

``changed_pixels(x, x_adv)`` gives the mask of the pixels the attack changed (for display).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Attack, AttackConfigError, Param, steps
from .losses import margin
from .trajectory import Rows

# (last iteration of 10,000, divisor of p_init) of the authors' L0 schedule
_SCHEDULE = ((0, 1), (50, 2), (200, 4), (500, 5), (1000, 6), (2000, 8), (4000, 10), (6000, 12), (8000, 15))


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    it = int(it / n_iters * 10000)
    div = 20
    for last, d in _SCHEDULE:
        if it <= last:
            div = d
            break
    return p_init / div


def changed_pixels(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool: the pixels where any channel changed."""
    return (x_adv != x).any(1)


class SparseRS(Attack):
    name = "sparse_rs"
    title = "Sparse-RS (L0 pixels, black-box)"
    paper = "Croce et al. 2022, arXiv 2006.12834"
    norm = "L0"
    iterative = True
    uses_gradients = False
    PARAMS = (
        Param("eps", int, 10, 0, 100_000, "pixels", "L0 budget: the number of pixels (all channels) changed"),
        steps(1000, 100_000, "queries (one forward pass each)"),
        Param("p_init", float, 0.3, 0.0001, 1.0, "", "initial fraction of the changed pixels swapped per query"),
    )

    def check_config(self) -> None:
        size = getattr(self.model, "input_size", None)
        if size is not None and self.eps > size[1] * size[2]:
            raise AttackConfigError(f"eps = {self.eps} pixels is more than the image has ({size[1] * size[2]})")

    def _objective(self, logits, y, target):
        if target is None:
            return margin(logits, y)
        return F.cross_entropy(logits, target, reduction="none")

    def _corners(self, k: int, c: int, m: int, device) -> torch.Tensor:
        return torch.randint(0, 2, (k, c, m), device=device).float()

    def _perturb(self, x, y, target):
        with torch.no_grad():
            return self._search(x, y, target)

    def _search(self, x, y, target):
        k, c, h, w = x.shape
        eps, hw, device = int(self.eps), h * w, x.device
        rows = Rows(x, y, target, self.steps)
        flat = x.reshape(k, c, hw)
        order = torch.rand(k, hw, device=device).argsort(1)
        inside, outside = order[:, :eps].clone(), order[:, eps:].clone()  # changed / unchanged pixels
        best = flat.clone()
        best.scatter_(2, inside[:, None].expand(k, c, eps), self._corners(k, c, eps, device))
        logits = self.model(best.view_as(x))
        loss = self._objective(logits, y, target)
        done = margin(logits, y, target) < 0
        self.record_step(rows, 0, best.view_as(x), logits, -margin(logits, y, target))
        for it in range(1, self.steps):
            todo = (~done).nonzero()[:, 0]
            if todo.numel() == 0 or eps == 0 or eps == hw:
                break
            m = max(int(p_selection(self.p_init, it, self.steps) * eps), 1)
            out_i = torch.randperm(eps, device=device)[:m]
            in_i = torch.randperm(hw - eps, device=device)[:m]
            cand = best[todo].clone()
            leave = inside[todo][:, out_i]
            enter = outside[todo][:, in_i]
            cand.scatter_(2, leave[:, None].expand(-1, c, m), flat[todo].gather(2, leave[:, None].expand(-1, c, m)))
            cand.scatter_(2, enter[:, None].expand(-1, c, m), self._corners(len(todo), c, m, device))
            logits = self.model(cand.view(-1, c, h, w))
            new_loss = self._objective(logits, y[todo], None if target is None else target[todo])
            succ = margin(logits, y[todo], None if target is None else target[todo]) < 0
            accept = (new_loss < loss[todo]) | succ
            keep = todo[accept]
            loss[keep] = new_loss[accept]
            best[keep] = cand[accept]
            done[keep] = succ[accept]
            swapped_in, swapped_out = inside[keep], outside[keep]
            swapped_in[:, out_i], swapped_out[:, in_i] = enter[accept], leave[accept]
            inside[keep], outside[keep] = swapped_in, swapped_out
            if self.trajectory is not None:
                full = self.model(best.view_as(x))
                self.record_step(rows, it, best.view_as(x), full, -margin(full, y, target), last=it == self.steps - 1)
            if self.tick(it, self.steps):
                break
        return best.view_as(x)
