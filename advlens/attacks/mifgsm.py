"""MI-FGSM, the Momentum Iterative FGSM (Dong et al. 2018, arXiv 1710.06081).

Accumulate the L1-normalised gradient with decay mu and step along the sign of the sum:

    g <- mu * g + grad / ||grad||_1,   x <- clip_[x-eps, x+eps] ∩ [0,1] (x + alpha * sign(g))

with alpha = eps / steps by default and no random start, as in the paper. ||grad||_1 is taken as
the mean absolute value (the L1 norm divided by the constant pixel count d), which scales every
term of g alike and so leaves sign(g) unchanged.
"""

from __future__ import annotations

import torch

from .base import Attack, Param, linf_eps, linf_step_size, steps
from .losses import ce_objective
from .pgd import linf_bounds, project_linf_
from .trajectory import Rows


class MIFGSM(Attack):
    name = "mifgsm"
    title = "MI-FGSM"
    paper = "Dong et al. 2018, arXiv 1710.06081"
    norm = "Linf"
    iterative = True
    PARAMS = (
        linf_eps(),
        steps(10),
        linf_step_size(auto="eps / steps"),
        Param("decay", float, 1.0, 0.0, 10.0, "", "momentum decay mu"),
    )

    def _perturb(self, x, y, target):
        eps = float(self.eps)
        alpha = self.step_size if self.step_size is not None else eps / self.steps
        lo, hi = linf_bounds(x, torch.full((), eps, device=x.device))
        momentum = torch.zeros_like(x)
        x_adv = x.clone()
        for t in range(self.steps):
            x_adv.requires_grad_(True)
            logits = self.model(x_adv)
            loss = ce_objective(logits, y, target)
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            x_adv.requires_grad_(False)
            self.record_step(Rows(x, y, target, self.steps + 1), t, x_adv, logits, loss)
            with torch.no_grad():
                l1 = grad.abs().flatten(1).mean(1).clamp_min_(1e-12).view(-1, *([1] * (x.ndim - 1)))
                momentum.mul_(self.decay).add_(grad / l1)
                x_adv.add_(momentum.sign(), alpha=alpha)
                project_linf_(x_adv, lo, hi)
            if self.tick(t + 1, self.steps):
                break
        if self.trajectory is not None:
            with torch.no_grad():
                logits = self.model(x_adv)
            self.record_step(
                Rows(x, y, target, self.steps + 1), t + 1, x_adv, logits, ce_objective(logits, y, target), last=True
            )
        return x_adv
