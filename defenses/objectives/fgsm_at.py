"""FGSM adversarial training (Goodfellow, Shlens and Szegedy 2015, arXiv 1412.6572).

The loss mixes the clean and the FGSM cross-entropy, L = a * CE(x) + (1 - a) * CE(x_fgsm) with
a = 0.5, where x_fgsm = clip(x + eps * sign(grad_x CE(f(x), y))) is computed from the current
weights at every step (the model in its training mode, as in the paper).
"""

from __future__ import annotations

from advlens.params import Param
from advlens.training.adversary import fgsm
from advlens.training.objectives import Objective, accuracy_of, cross_entropy, register


@register
class FGSMAT(Objective):
    name = "fgsm_at"
    title = "FGSM adversarial training"
    formula = (
        r"\tilde{J}(\theta, x, y) = a\, J(\theta, x, y) + (1-a)\, J\big(\theta,\; x + \epsilon\,"
        r"\mathrm{sign}(\nabla_x J(\theta, x, y)),\; y\big)"
    )
    source = "Goodfellow, Shlens, Szegedy: Explaining and Harnessing Adversarial Examples (ICLR 2015), arXiv 1412.6572"
    hyperparams = (
        Param("a", float, 0.5, 0.0, 1.0, help="weight of the clean cross-entropy; 1 - a weighs the FGSM one"),
    )
    extra_plots = {"Training accuracy: clean vs FGSM": ("train/acc", "train/acc_adv")}

    def loss(self, model, x, y, ctx):
        x_adv = fgsm(ctx.attack_model, x, y, ctx.eps)
        logits = model(x)
        logits_adv = model(x_adv)
        ce, ce_adv = cross_entropy(logits, y), cross_entropy(logits_adv, y)
        loss = self.a * ce + (1.0 - self.a) * ce_adv
        return loss, {
            "ce": ce.detach(),
            "ce_adv": ce_adv.detach(),
            "acc": accuracy_of(logits, y),
            "acc_adv": accuracy_of(logits_adv, y),
        }
