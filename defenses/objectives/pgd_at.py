"""PGD adversarial training (Madry, Makelov, Schmidt, Tsipras and Vladu 2018, arXiv 1706.06083).

The saddle-point problem min_theta E max_{||delta||_inf <= eps} CE(f(x + delta), y), with the inner
maximisation approximated by PGD from a uniform random start, in the model's training mode as in
the authors' code. MNIST: eps 0.3, 40 steps of 0.01. CIFAR-10: eps 8/255, 7 steps of 2/255.
"""

from __future__ import annotations

from advlens.params import Param
from advlens.training.adversary import pgd
from advlens.training.objectives import Objective, accuracy_of, cross_entropy, pgd_params, pgd_presets, register


@register
class PGDAT(Objective):
    name = "pgd_at"
    title = "PGD adversarial training (Madry)"
    formula = (
        r"\min_\theta\; \mathbb{E}_{(x,y)}\Big[\max_{\|\delta\|_\infty \le \epsilon}"
        r"\mathrm{CE}\big(f_\theta(x+\delta),\, y\big)\Big]"
    )
    source = (
        "Madry, Makelov, Schmidt, Tsipras, Vladu: Towards Deep Learning Models Resistant to Adversarial "
        "Attacks (ICLR 2018), arXiv 1706.06083"
    )
    hyperparams = (
        *pgd_params(what="PGD (the inner maximisation)"),
        Param("random_start", bool, True, help="start from a uniform random point of the eps-ball"),
    )
    presets = pgd_presets()
    extra_plots = {"Training accuracy on PGD examples": ("train/acc_adv",)}

    def loss(self, model, x, y, ctx):
        x_adv = pgd(ctx.attack_model, x, y, ctx.eps, self.alpha, self.steps, self.random_start)
        logits = model(x_adv)
        return cross_entropy(logits, y), {"acc_adv": accuracy_of(logits, y)}
