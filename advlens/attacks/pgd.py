"""PGD, Projected Gradient Descent (Madry et al. 2018, arXiv 1706.06083), L-inf and L2.

Start from a uniform random point of the eps-ball around x (``random_start``), then take
``steps`` steps of size alpha and project back onto the ball and the [0, 1] box:

    L-inf:  x <- clip_[x-eps, x+eps] ∩ [0,1] (x + alpha * sign(g))
    L2:     x <- clip_[0,1](x + Proj_{||.||_2 <= eps}(x + alpha * g / ||g||_2 - x))

with g = grad_x CE(f(x), y) (untargeted) or grad_x -CE(f(x), t) (targeted). alpha defaults to
2.5 * eps / steps, enough to cross the ball and come back. With ``restarts`` > 1 the attack
reruns from new random points on the images not broken yet, and keeps the worst case per image:
an adversarial point when one was found, else the point of highest loss.

The loop is in place and sync-free when nothing is recorded: one forward and one backward pass
per step, the projection a single clamp against precomputed bounds. Against input-transform
defenses, ``bpda`` and ``eot`` make it adaptive (:mod:`advlens.attacks.adaptive`).
"""

from __future__ import annotations

import torch

from .adaptive import adaptive_params
from .base import Attack, Param, l2_eps, linf_eps, linf_step_size, restarts, steps, worst_case_over_restarts
from .losses import ce_objective, is_success
from .trajectory import Rows


def project_linf_(x_adv: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """In place: clip to [lo, hi] with lo = max(x - eps, 0), hi = min(x + eps, 1)."""
    return x_adv.clamp_(min=lo, max=hi)


def linf_bounds(x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)


def flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm, shaped (N, 1, 1, 1) for broadcasting."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


class PGD(Attack):
    name = "pgd"
    title = "PGD (L-inf)"
    paper = "Madry et al. 2018, arXiv 1706.06083"
    norm = "Linf"
    iterative = True
    PARAMS = (
        linf_eps(),
        steps(10),
        linf_step_size(),
        restarts(1),
        Param("random_start", bool, True, help="start from a uniform random point of the eps-ball"),
        *adaptive_params(),
    )

    #: Per-sample budgets (N,) that override ``eps``; the minimal-eps search sets it.
    eps_per_sample: torch.Tensor | None = None

    def budget(self, x: torch.Tensor) -> torch.Tensor:
        shape = (len(x),) + (1,) * (x.ndim - 1)
        if self.eps_per_sample is not None:
            return self.eps_per_sample.to(x.device, torch.float32).view(shape).clone()
        return torch.full(shape, float(self.eps), device=x.device)

    def step_sizes(self, eps: torch.Tensor) -> torch.Tensor:
        if self.step_size is None:
            return eps * (2.5 / self.steps)
        return torch.full_like(eps, float(self.step_size))

    # ----- the norm-specific parts (the L2 subclass overrides these) ------------------------
    def start(self, x, eps):
        if not self.random_start:
            return x.clone()
        return x + torch.empty_like(x).uniform_(-1.0, 1.0) * eps

    def bounds(self, x, eps):
        return linf_bounds(x, eps)

    def project_(self, x_adv, x, eps, bounds):
        return project_linf_(x_adv, *bounds)

    def step_(self, x_adv, grad, alpha):
        return x_adv.addcmul_(grad.sign_(), alpha)

    # ----- the loop -------------------------------------------------------------------------
    def _perturb(self, x, y, target):
        eps = self.budget(x)
        total = self.steps * self.restarts
        evaluate = self.restarts > 1 or self.trajectory is not None

        def run_one(xs, ys, ts, restart, index):
            es = eps if index is None else eps[index]
            return self._run(xs, ys, ts, es, restart, total, evaluate, index, len(x))

        return worst_case_over_restarts(self, x, y, target, run_one)

    def _run(self, x, y, target, eps, restart, total, evaluate, index, n):
        """One restart; returns (x_adv, final loss, final success), the last two None unless evaluated."""
        model = self.model
        alpha = self.step_sizes(eps)
        bounds = self.bounds(x, eps)
        x_adv = self.project_(self.start(x, eps), x, eps, bounds)
        done = restart * self.steps
        entries = self.restarts * (self.steps + 1)
        rows = Rows(x, y, target, entries, restart=restart, index=index, n=n)

        def objective(logits):
            return ce_objective(logits, y, target)

        for t in range(self.steps):
            grad, logits, loss = self.loss_gradient(x_adv, objective)
            self.record_step(rows, t, x_adv, logits, loss)
            with torch.no_grad():
                self.step_(x_adv, grad, alpha)
                self.project_(x_adv, x, eps, bounds)
            if self.tick(done + t + 1, total):
                break
        if not evaluate:
            return x_adv, None, None
        with torch.no_grad():
            logits = model(x_adv)
            loss = ce_objective(logits, y, target)
        self.record_step(rows, t + 1, x_adv, logits, loss, last=True)
        return x_adv, loss, is_success(logits, y, target)


class PGDL2(PGD):
    name = "pgd_l2"
    title = "PGD (L2)"
    norm = "L2"
    PARAMS = (
        l2_eps(),
        steps(10),
        Param(
            "step_size",
            float,
            None,
            0.0,
            1000.0,
            "L2",
            "L2 length of each step (blank: 2.5 * eps / steps)",
            optional=True,
        ),
        restarts(1),
        Param("random_start", bool, True, help="start from a uniform random point of the eps-ball"),
        *adaptive_params(),
    )

    def start(self, x, eps):
        if not self.random_start:
            return x.clone()
        direction = torch.randn_like(x)
        direction /= flat_norm(direction).clamp_min_(1e-12)
        d = x[0].numel()
        radius = torch.rand(eps.shape, device=x.device).pow_(1.0 / d) * eps
        return x + direction * radius

    def bounds(self, x, eps):
        return None

    def project_(self, x_adv, x, eps, bounds):
        delta = x_adv.sub_(x)
        delta.mul_((eps / flat_norm(delta).clamp_min_(1e-12)).clamp_(max=1.0))
        return delta.add_(x).clamp_(0.0, 1.0)

    def step_(self, x_adv, grad, alpha):
        return x_adv.addcmul_(grad, alpha / flat_norm(grad).clamp_min_(1e-12))
