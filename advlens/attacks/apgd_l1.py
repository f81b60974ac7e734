"""APGD in L1, with the sparsity-adaptive step (Croce and Hein 2021, "Mind the box: l1-APGD for
sparse adversarial attacks on image classifiers", ICML 2021, arXiv 2103.01208).

The L1 ball around an image meets the [0, 1] box in a set whose useful directions are sparse, so
the L1 version of APGD differs from the L-inf/L2 one (:mod:`.apgd`) in four ways:

1. the step changes only the coordinates whose |gradient| is among the top ``k``: with the
   current sparsity s (the number of coordinates the best point so far changes, over the d
   coordinates), ``k = s / 1.5`` (0.2 d at a random start), and the step is
   ``eta * sign(g_k) / ||sign(g_k)||_1``, g_k the gradient kept on those coordinates;
2. every point is projected onto the *intersection* of the eps-L1-ball and the box (the exact
   Euclidean projection, :func:`project_l1_box`), not onto the ball and then clipped;
3. every 4% of the iterations, where the best point became sparser (s shrank by more than 5%),
   the step goes back to eps and the iterate restarts from the best point; elsewhere the step is
   divided by 1.5, never below eps / 10. There is no momentum;
4. AutoAttack's L1 version (``large_reps``) starts at 3 eps for 30% of the iterations, then 2 eps
   for 30%, then eps for the rest, each phase starting from the previous phase's best point
   projected into its ball; only the last phase's adversarial points count.

One gradient evaluation per iteration (times ``eot``). Losses and the targeted variant (APGD-T,
each of the ``targets`` highest wrong classes in turn) are those of :mod:`.apgd`.
"""

from __future__ import annotations

import math

import torch

from .apgd import APGD, APGDDLR, APGDT
from .base import Param
from .trajectory import Rows


def l1_eps(default: float = 12.0) -> Param:
    """The L1 budget; 12 is the L1 threat model of Croce and Hein 2021 on CIFAR-10."""
    return Param(
        "eps",
        float,
        default,
        0.0,
        1e6,
        "L1",
        "L1 budget: the sum of the absolute changes of all pixel values (pixels in [0,1])",
    )


LARGE_REPS = Param(
    "large_reps", bool, True, help="AutoAttack's L1 schedule: 30% of the iterations at 3 eps, 30% at 2 eps, then eps"
)


def project_l1_box(x: torch.Tensor, delta: torch.Tensor, eps) -> torch.Tensor:
    """The closest perturbation to ``delta`` (Euclidean) with L1 norm at most ``eps`` (a number or
    one per image) that keeps ``x + delta`` in [0, 1].

    Per coordinate the answer is ``sign(d) * clip(|d| - lam, 0, room)``, room being how far that
    coordinate may move in its direction inside the box; ``lam >= 0`` is the smallest value that
    brings the L1 norm down to eps. The sum is piecewise linear in lam with breakpoints
    ``|d| - room`` and ``|d|``: one sort of the 2d breakpoints and a cumulative sum find lam exactly.
    """
    shape = delta.shape
    xf, d = x.flatten(1), delta.flatten(1)
    rows, dim = d.shape
    a = d.abs()
    room = torch.where(d >= 0, 1.0 - xf, xf).clamp_min(0.0)
    budget = torch.as_tensor(eps, dtype=d.dtype, device=d.device).reshape(-1, 1).expand(rows, 1)
    over = torch.minimum(a, room).sum(1, keepdim=True) > budget
    points, order = torch.cat([a - room, a], 1).sort(1)
    # how many coordinates shrink with lam just right of each breakpoint
    active = torch.cat([torch.ones_like(a), -torch.ones_like(a)], 1).gather(1, order).cumsum(1)
    drops = (points.diff(dim=1) * active[:, :-1]).cumsum(1)
    total = room.sum(1, keepdim=True) - torch.cat([torch.zeros_like(budget), drops], 1)  # the L1 norm at each point
    j = (total > budget).sum(1, keepdim=True).clamp(1, 2 * dim - 1) - 1  # the last point still above eps
    lam = points.gather(1, j) + (total.gather(1, j) - budget) / active.gather(1, j).clamp_min(1.0)
    lam = torch.where(over, lam.clamp_min(0.0), torch.zeros_like(lam))
    out = d.sign() * torch.minimum((a - lam).clamp_min(0.0), room)
    # rounding can leave the norm a hair above eps: shrinking toward 0 stays inside the box
    out = out * (budget / out.abs().sum(1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    return out.view(shape)


def _l0(delta: torch.Tensor) -> torch.Tensor:
    return (delta != 0).flatten(1).sum(1).float()


class L1Sparse:
    """The L1 loop that replaces APGD's ``_run`` (see the module docstring)."""

    norm = "L1"

    def phases(self) -> list[tuple[float, int]]:
        eps, n_iter = float(self.eps), self.steps
        if not self.large_reps or n_iter < 3:
            return [(eps, n_iter)]
        first = math.ceil(0.3 * n_iter)
        return [(3 * eps, first), (2 * eps, first), (eps, n_iter - 2 * first)]

    def _run(self, x, y, target, restart, total, index, n):
        phases = self.phases()
        rows = Rows(x, y, target, self.restarts * (self.steps + len(phases)), restart=restart, index=index, n=n)
        noise = torch.randn_like(x)
        start = x + project_l1_box(x, noise, phases[0][0])
        done = 0
        for eps, n_iter in phases:
            start = x + project_l1_box(x, start - x, eps)
            fresh = len(phases) == 1  # a random start: the authors' code begins at sparsity 0.2 d
            start, found, loss, x_adv = self._phase(x, y, target, start, eps, n_iter, fresh, rows, restart, done, total)
            done += n_iter
            if self.stopped:
                break
        shape = (len(x),) + (1,) * (x.ndim - 1)
        return torch.where(found.view(shape), x_adv, start), loss, found

    def _phase(self, x, y, target, x_adv, eps, n_iter, fresh, rows, restart, done, total):
        k, dims = len(x), x[0].numel()
        shape = (k,) + (1,) * (x.ndim - 1)

        def evaluate(point):
            return self.loss_gradient(point, lambda z: self.objective(z, y, target))

        grad, logits, loss = evaluate(x_adv)
        found = self.succeeded(logits, y, target)
        x_best_adv, x_best, grad_best, loss_best = x_adv.clone(), x_adv.clone(), grad.clone(), loss.clone()
        self.record_step(rows, done, x_adv, logits, loss)
        step = torch.full(shape, eps, device=x.device)
        if fresh:
            sparsity, topk = torch.full((k,), float(dims), device=x.device), torch.full((k,), 0.2, device=x.device)
        else:
            sparsity = _l0(x_adv - x)
            topk = sparsity / dims / 1.5
        check_every = max(int(0.04 * n_iter), 1)
        for i in range(n_iter):
            with torch.no_grad():
                g = grad.abs().flatten(1)
                at = ((1.0 - topk) * dims).clamp(0, dims - 1).long().view(-1, 1)
                keep = g >= g.sort(1).values.gather(1, at)
                direction = grad.sign().flatten(1) * keep
                direction /= direction.abs().sum(1, keepdim=True).clamp_min(1e-10)
                moved = x_adv + step * direction.view_as(x)
                x_adv = x + project_l1_box(x, moved - x, eps)
            grad, logits, loss = evaluate(x_adv)
            with torch.no_grad():
                succ = self.succeeded(logits, y, target)
                x_best_adv[succ] = x_adv[succ]
                found |= succ
                improved = loss > loss_best
                x_best[improved] = x_adv[improved]
                grad_best[improved] = grad[improved]
                loss_best = torch.where(improved, loss, loss_best)
            self.record_step(rows, done + i + 1, x_adv, logits, loss, last=i == n_iter - 1)
            if (i + 1) % check_every == 0:
                with torch.no_grad():
                    now = _l0(x_best - x)
                    sparser = now / sparsity.clamp_min(1.0) < 0.95
                    topk, sparsity = now / dims / 1.5, now
                    step = torch.where(sparser.view(shape), torch.full_like(step, eps), step / 1.5)
                    step.clamp_(eps / 10.0, eps)
                    x_adv[sparser] = x_best[sparser]
                    grad[sparser] = grad_best[sparser]
            if self.tick(restart * self.steps + done + i + 1, total):
                break
        return x_best, found, loss_best, x_best_adv


class APGDL1(L1Sparse, APGD):
    name = "apgd_ce_l1"
    title = "APGD-CE (L1)"
    paper = "Croce and Hein 2021, arXiv 2103.01208"
    PARAMS = (l1_eps(),) + APGD.PARAMS[1:3] + (LARGE_REPS,) + APGD.PARAMS[4:]


class APGDDLRL1(L1Sparse, APGDDLR):
    name = "apgd_dlr_l1"
    title = "APGD-DLR (L1)"
    paper = APGDL1.paper
    PARAMS = APGDL1.PARAMS


class APGDTL1(L1Sparse, APGDT):
    name = "apgd_t_l1"
    title = "APGD-T (L1)"
    paper = APGDL1.paper
    PARAMS = (l1_eps(),) + APGDT.PARAMS[1:3] + (LARGE_REPS,) + APGDT.PARAMS[4:]
