"""TRADES (Zhang, Yu, Jiao, Xing, El Ghaoui and Jordan 2019, arXiv 1901.08573).

L = CE(f(x), y) + beta * KL(f(x) || f(x')), where x' maximises the KL term in the eps-ball: start at
x + 0.001 N(0, I), then ``steps`` sign-gradient steps of ``step_size``, generated with the model in
eval mode (as in the authors' code); the KL is summed over classes and averaged over the batch.
beta = 6. MNIST: 40 steps of 0.01 (eps 0.3); CIFAR-10: 10 steps of 0.007 (eps 8/255).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from advlens.models.modes import model_mode
from advlens.params import PIXEL, Param
from advlens.training.adversary import sign_ascent
from advlens.training.objectives import Objective, accuracy_of, cross_entropy, pgd_presets, register


def kl_sum(logits_adv: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """sum_i KL(p_clean_i || softmax(logits_adv_i)), the TRADES attack objective (batch sum)."""
    return F.kl_div(F.log_softmax(logits_adv.float(), dim=1), p_clean, reduction="sum")


@register
class TRADES(Objective):
    name = "trades"
    title = "TRADES"
    formula = (
        r"\min_\theta\; \mathbb{E}\Big[\mathrm{CE}\big(f_\theta(x), y\big) + \beta \max_{\|x'-x\|_\infty"
        r"\le\epsilon} \mathrm{KL}\big(f_\theta(x)\,\|\,f_\theta(x')\big)\Big]"
    )
    source = (
        "Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan: Theoretically Principled Trade-off between Robustness "
        "and Accuracy (ICML 2019), arXiv 1901.08573"
    )
    hyperparams = (
        Param("beta", float, 6.0, 0.0, 1000.0, help="weight of the robustness (KL) term"),
        Param("steps", int, 10, 1, 1000, help="sign-gradient steps that maximise the KL"),
        Param("step_size", float, 0.007, 0.0, 1.0, PIXEL, help="step size of those steps"),
        Param("init_std", float, 0.001, 0.0, 1.0, help="std of the Gaussian start x + std * N(0, I)"),
    )
    presets = pgd_presets(alpha="step_size", cifar=(10, 0.007))
    extra_plots = {"TRADES terms": ("train/ce", "train/kl")}

    def loss(self, model, x, y, ctx):
        attack_model = ctx.attack_model
        with torch.no_grad(), model_mode(attack_model, False):
            p_clean = F.softmax(attack_model(x).float(), dim=1)
        x_adv = sign_ascent(
            attack_model,
            x,
            lambda z: kl_sum(z, p_clean),
            ctx.eps,
            self.step_size,
            self.steps,
            start="normal",
            noise_std=self.init_std,
            train=False,
        )
        logits = model(x)
        logits_adv = model(x_adv)
        ce = cross_entropy(logits, y)
        kl = F.kl_div(F.log_softmax(logits_adv.float(), dim=1), F.softmax(logits.float(), dim=1), reduction="batchmean")
        return ce + self.beta * kl, {
            "ce": ce.detach(),
            "kl": kl.detach(),
            "acc": accuracy_of(logits, y),
            "acc_adv": accuracy_of(logits_adv, y),
        }
