"""A universal adversarial perturbation: one L-inf perturbation that fools a model on most images of a
dataset (Moosavi-Dezfooli, Fawzi, Fawzi and Frossard 2017, arXiv 1610.08401), computed with the
stochastic-gradient variant of Shafahi, Najibi, Xu, Dickerson, Davis and Goldstein (2020, "Universal
adversarial training", arXiv 1811.11304, Alg. 1), which replaces the original's per-image DeepFool
steps and their accumulation by sign-gradient ascent on a mini-batch loss:

    delta <- Pi_{||delta||_inf <= eps}( delta + alpha * sign( grad_delta (1/B) sum_i L(f(clip(x_i + delta)), y_i) ) )

with the per-image loss L = min(kappa, -margin) (the margin of :func:`.losses.margin`, capped at kappa so that
images already fooled by kappa stop pulling; Shafahi et al. cap the cross-entropy the same way). Targeted:
the margin to the target class. The attack's batch is the *dataset*: ``attack(x, y)`` returns every image
with the same ``delta`` added (kept in ``attack.delta``), so every image's perturbation has the budget.
"""

from __future__ import annotations

import math

import torch

from ..params import Param
from .base import Attack, linf_eps, linf_step_size, steps
from .losses import is_success, margin
from .resumable import Resumable


def add_universal(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``x`` (N, C, H, W) with the perturbation ``delta`` (C, H, W or 1, C, H, W) added, kept in [0, 1]."""
    return (x + delta.reshape(1, *x.shape[1:]).to(x)).clamp(0.0, 1.0)


class UniversalPerturbation(Resumable, Attack):
    name = "universal"
    title = "Universal perturbation (SGD)"
    paper = "Moosavi-Dezfooli et al. 2017, arXiv 1610.08401; SGD variant: Shafahi et al. 2020, arXiv 1811.11304"
    norm = "Linf"
    iterative = True
    PARAMS = (
        linf_eps(0.1),
        steps(10, 1000, "epochs (passes over the images)"),
        linf_step_size(None, "eps / 10"),
        Param("batch_size", int, 128, 1, 4096, "", "images per gradient step"),
        Param("kappa", float, 2.0, 0.0, 100.0, "", "cap of the loss: images fooled by this logit margin stop pulling"),
    )

    def _perturb(self, x, y, target):
        n = len(x)
        alpha = self.step_size if self.step_size is not None else self.eps / 10
        delta = torch.zeros(1, *x.shape[1:], device=x.device)
        batches = math.ceil(n / self.batch_size)
        # the fooling rate over each epoch's batches (each seen with the perturbation as it was then): free,
        # from the logits the gradient steps compute anyway
        start, self.history = self.restored({"delta": delta})
        for epoch in range(start, self.steps):
            order = torch.randperm(n).to(x.device)
            fooled = 0
            for b in range(batches):
                idx = order[b * self.batch_size : (b + 1) * self.batch_size]
                tb = target[idx] if target is not None else None

                def objective(z, yb=y[idx], tb=tb):
                    return (-margin(z, yb, tb)).clamp(max=self.kappa)

                grad, logits, _ = self.loss_gradient(add_universal(x[idx], delta), objective)
                fooled += int(is_success(logits, y[idx], tb).sum())
                delta = (delta + alpha * grad.sum(0, keepdim=True).sign()).clamp_(-self.eps, self.eps)
            self.history.append(fooled / n)
            stop = self.tick(epoch + 1, self.steps)
            self.checkpoint(epoch + 1, {"delta": delta}, self.history, force=stop)
            if stop:
                break
        self.delta = delta[0].detach()
        return add_universal(x, delta)
