"""Clean logit pairing, CLP (Kannan, Kurakin and Goodfellow 2018, arXiv 1803.06373).

No adversary: the cross-entropy on clean images plus lambda times the mean squared distance between
the logits of two *different* clean examples, paired at random (the batch is in random order, so
the first half is paired with the second). The paper adds Gaussian noise to the inputs
(``noise_std``; 0 turns it off). Like ALP, it needs strong attacks to evaluate (Engstrom et al.
2018, arXiv 1807.10272).
"""

from __future__ import annotations

import torch

from advlens.params import Param
from advlens.training.objectives import Objective, accuracy_of, cross_entropy, register


@register
class CLP(Objective):
    name = "clp"
    title = "Clean logit pairing (CLP)"
    formula = (
        r"\mathrm{CE}\big(f_\theta(x), y\big) + \lambda\, \frac{2}{mK}\sum_{i=1}^{m/2}"
        r"\big\|z_\theta(x_i) - z_\theta(x_{i+m/2})\big\|_2^2"
    )
    source = "Kannan, Kurakin, Goodfellow: Adversarial Logit Pairing (2018), arXiv 1803.06373"
    uses_eps = False
    hyperparams = (
        Param("lam", float, 0.5, 0.0, 100.0, help="weight lambda of the clean-pairing term"),
        Param("noise_std", float, 0.0, 0.0, 1.0, help="std of Gaussian noise added to the inputs (0: none)"),
    )
    extra_plots = {"Clean logit pairing term": ("train/pairing",)}

    def loss(self, model, x, y, ctx):
        if self.noise_std > 0:
            x = (x + self.noise_std * torch.randn_like(x)).clamp_(0.0, 1.0)
        logits = model(x)
        half = len(x) // 2
        ce = cross_entropy(logits, y)
        if half == 0:
            pairing = logits.float().sum() * 0.0
        else:
            pairing = (logits[:half].float() - logits[half : 2 * half].float()).pow(2).mean()
        return ce + self.lam * pairing, {"ce": ce.detach(), "pairing": pairing.detach(), "acc": accuracy_of(logits, y)}
