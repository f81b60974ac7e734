"""FGSM, the Fast Gradient Sign Method (Goodfellow, Shlens and Szegedy 2015, arXiv 1412.6572).

One step of size eps along the sign of the input gradient of the cross-entropy:

    untargeted:  x' = clip_[0,1](x + eps * sign(grad_x CE(f(x), y)))
    targeted:    x' = clip_[0,1](x - eps * sign(grad_x CE(f(x), t)))
"""

from __future__ import annotations

from .base import Attack, linf_eps
from .losses import ce_objective


class FGSM(Attack):
    name = "fgsm"
    title = "FGSM"
    paper = "Goodfellow et al. 2015, arXiv 1412.6572"
    norm = "Linf"
    PARAMS = (linf_eps(),)

    def _perturb(self, x, y, target):
        grad, _, _ = self.loss_gradient(x, lambda z: ce_objective(z, y, target))
        return (x + self.eps * grad.sign()).clamp_(0.0, 1.0)
