"""Step-LL, the single step toward the least-likely class (Kurakin, Goodfellow and Bengio 2017,
arXiv 1611.01236).

    y_LL = argmin_i f_i(x),   x' = clip_[0,1](x - eps * sign(grad_x CE(f(x), y_LL)))

Given a ``target``, the step goes toward that class instead (targeted FGSM). Success is judged
as usual: any wrong class when untargeted, the target class when targeted.
"""

from __future__ import annotations

import torch

from .fgsm import FGSM


class StepLL(FGSM):
    name = "stepll"
    title = "Step-LL"
    paper = "Kurakin et al. 2017, arXiv 1611.01236"

    def _perturb(self, x, y, target):
        if target is None:
            with torch.no_grad():
                target = self.model(x).argmin(1)
        return super()._perturb(x, y, target)  # one FGSM step toward the least-likely class
