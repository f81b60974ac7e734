"""Adversarial logit pairing, ALP (Kannan, Kurakin and Goodfellow 2018, arXiv 1803.06373).

L = CE over the clean and the PGD batch together + lambda * mean((z(x) - z(x'))^2), the mean taken
over the batch and the logits (methods reference, section 2), lambda 0.25 to 0.5. Caution from
Engstrom, Ilyas and Athalye 2018 (arXiv 1807.10272): ALP's published ImageNet robustness (27.9%)
fell to 0.6% under a stronger targeted PGD, so evaluate ALP models with strong, many-step attacks.
"""

from __future__ import annotations

from advlens.params import Param
from advlens.training.adversary import pgd
from advlens.training.objectives import Objective, accuracy_of, cross_entropy, pgd_params, pgd_presets, register


@register
class ALP(Objective):
    name = "alp"
    title = "Adversarial logit pairing (ALP)"
    formula = (
        r"\frac{1}{2}\Big[\mathrm{CE}\big(f_\theta(x), y\big) + \mathrm{CE}\big(f_\theta(x'), y\big)\Big]"
        r" + \lambda\, \frac{1}{mK}\sum_{i=1}^{m} \big\|z_\theta(x_i) - z_\theta(x'_i)\big\|_2^2,"
        r"\quad x' = \mathrm{PGD}_\epsilon(x)"
    )
    source = "Kannan, Kurakin, Goodfellow: Adversarial Logit Pairing (2018), arXiv 1803.06373"
    hyperparams = (
        Param("lam", float, 0.5, 0.0, 100.0, help="weight lambda of the logit-pairing term (0.25 to 0.5 in the paper)"),
        *pgd_params(what="PGD (for x')"),
    )
    presets = pgd_presets()
    extra_plots = {
        "Logit pairing term": ("train/pairing",),
        "Training accuracy: clean vs PGD": ("train/acc", "train/acc_adv"),
    }

    notes = (
        "ALP's published ImageNet robustness (27.9%) fell to 0.6% under a stronger targeted PGD "
        "(Engstrom et al. 2018, arXiv 1807.10272): evaluate it with strong, many-step attacks."
    )

    def loss(self, model, x, y, ctx):
        x_adv = pgd(ctx.attack_model, x, y, ctx.eps, self.alpha, self.steps)
        logits = model(x)
        logits_adv = model(x_adv)
        ce = 0.5 * (cross_entropy(logits, y) + cross_entropy(logits_adv, y))
        pairing = (logits.float() - logits_adv.float()).pow(2).mean()
        return ce + self.lam * pairing, {
            "ce": ce.detach(),
            "pairing": pairing.detach(),
            "acc": accuracy_of(logits, y),
            "acc_adv": accuracy_of(logits_adv, y),
        }
