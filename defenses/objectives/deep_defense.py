"""Deep Defense (Yan, Guo and Zhang, "Deep Defense: Training DNNs with Improved Adversarial
Robustness", NeurIPS 2018, arXiv 1803.00404).

A regulariser on the DeepFool perturbation r(x), computed differentiably by unrolling up to
``max_iter`` DeepFool iterations with ``create_graph=True`` (:func:`defenses.deepfool_diff.deepfool`):

    L = CE(f(x), y) + lambda * mean_i R_i,
    R_i = exp(-c * ||r(x_i)|| / ||x_i||)   if x_i is classified correctly (push the boundary away),
    R_i = exp( d * ||r(x_i)|| / ||x_i||)   if not, with DeepFool run toward the true label
                                            (pull the sample toward its class),

norms with 1e-5 inside. The authors' defaults (their code): lambda 15, c 25, d 5, 5 DeepFool
iterations, overshoot 0.02, all classes as candidates, fine-tuning a clean model for 5 epochs
(SGD, lr 5e-4, momentum 0.9).

``ratio_cap`` (a choice the paper did not face): the misclassified term uses min(||r||/||x||, cap).
Starting from a well-trained model (the paper's setting) the misclassified samples lie near a
boundary and their ratio stays far below 1; from a weak model, 5 linearised steps toward a distant
true class can return ||r|| several times ||x||, and exp(d * ratio) overflows the loss (we saw 1e8
after 4 steps). Beyond the cap the term is constant (no gradient): a "distance" larger than the
image itself is not a meaningful DeepFool estimate. Default 1.0; 0 turns the cap off (the
authors' code). The clean model to fine-tune from is the run's ``init_from`` (a zoo name or a
checkpoint path; :mod:`advlens.training.init_from`), which the training page preselects for this
objective. As in their code, DeepFool runs on the network in its training mode and
ignores the [0, 1] box (``clip``: off).

After each epoch the objective reports rho_2 = mean ||r||_2 / ||x||_2 (:func:`defenses.deepfool_diff.rho2`:
DeepFool with 50 iterations from the model's prediction) on a fixed batch of training images.
"""

from __future__ import annotations

import torch

from advlens.data import to_float
from advlens.params import Param
from advlens.training.objectives import EpochContext, EpochVerdict, Objective, accuracy_of, cross_entropy, register
from defenses.deepfool_diff import NORM_EPS, deepfool, rho2


def deep_defense_regularizer(
    ratio: torch.Tensor, correct: torch.Tensor, c: float, d: float, cap: float = 0.0
) -> torch.Tensor:
    """R_i = exp(-c * ratio_i) where ``correct``, exp(d * min(ratio_i, cap)) elsewhere (per sample; cap 0: none)."""
    wrong_ratio = ratio.clamp(max=cap) if cap > 0 else ratio
    return torch.where(correct, torch.exp(-c * ratio), torch.exp(d * wrong_ratio))


@register
class DeepDefense(Objective):
    name = "deep_defense"
    title = "Deep Defense (DeepFool regulariser)"
    formula = (
        r"\mathrm{CE}\big(f_\theta(x), y\big) + \lambda\,\frac{1}{m}\sum_i \begin{cases}"
        r"\exp\!\big(-c\,\|r(x_i)\|_2/\|x_i\|_2\big) & f_\theta(x_i) = y_i\\"
        r"\exp\!\big(d\,\min(\|r(x_i)\|_2/\|x_i\|_2,\ \kappa)\big) & \text{otherwise}\end{cases},"
        r"\quad r = \mathrm{DeepFool}_\theta(x)\ \text{(unrolled, differentiable)}"
    )
    source = (
        "Yan, Guo, Zhang: Deep Defense: Training DNNs with Improved Adversarial Robustness (NeurIPS 2018), "
        "arXiv 1803.00404"
    )
    uses_eps = False
    fine_tunes = True
    hyperparams = (
        Param("lam", float, 15.0, 0.0, 1e4, help="weight lambda of the regulariser"),
        Param("c", float, 25.0, 0.0, 1e4, help="slope for correctly classified samples: exp(-c ||r||/||x||)"),
        Param("d", float, 5.0, 0.0, 1e4, help="slope for misclassified samples: exp(d ||r||/||x||)"),
        Param("max_iter", int, 5, 1, 50, help="unrolled DeepFool iterations"),
        Param("overshoot", float, 0.02, 0.0, 1.0, help="DeepFool overshoot"),
        Param("candidates", int, 10, 2, 1000, help="classes DeepFool considers, the origin included (authors: all)"),
        Param("ratio_cap", float, 1.0, 0.0, 100.0, help="cap of ||r||/||x|| in exp(d * min(ratio, cap)); 0: none"),
        Param("rho_images", int, 100, 0, 10_000, help="images of the fixed batch for rho_2 after each epoch (0: off)"),
    )
    extra_plots = {
        "Deep Defense terms": ("train/ce", "train/reg"),
        "rho_2 = ||r|| / ||x|| (DeepFool)": ("deepfool/rho2", "train/rho"),
        "Training accuracy": ("train/acc",),
    }

    notes = (
        "The authors fine-tune a clean model for 5 epochs with SGD (lr 5e-4, momentum 0.9): set "
        "**Start from** (`init_from`) to a clean model: the shipped `digits_small_cnn` or a standard run. `train/rho` is the 5-iteration ratio "
        "on the training batches (correct samples); `deepfool/rho2` is DeepFool-50 on a fixed batch."
    )

    def loss(self, model, x, y, ctx):
        logits = model(x)
        ce = cross_entropy(logits, y)
        correct = logits.detach().argmax(1) == y
        res = deepfool(
            model,
            x,
            y,
            toward=~correct,
            candidates=self.candidates,
            max_iter=self.max_iter,
            overshoot=self.overshoot,
            clip=False,
            norm_eps=NORM_EPS,
            create_graph=True,
        )
        ratio = res.ratio(x, NORM_EPS)
        reg = deep_defense_regularizer(ratio.float(), correct, self.c, self.d, self.ratio_cap).mean()
        n_ok = correct.sum().clamp(min=1)
        rho = (ratio.detach() * correct).sum() / n_ok
        return ce + self.lam * reg, {"ce": ce.detach(), "reg": reg.detach(), "rho": rho, "acc": accuracy_of(logits, y)}

    def on_epoch_end(self, ctx: EpochContext) -> EpochVerdict | None:
        if self.rho_images <= 0:
            return None
        x, y = ctx.guard_batch
        x = to_float(x[: self.rho_images].to(ctx.device))
        out = rho2(
            ctx.model,
            x,
            y[: self.rho_images].to(ctx.device),
            max_iter=50,
            overshoot=self.overshoot,
            candidates=self.candidates,
        )
        ctx.log(
            f"DeepFool rho_2 on {out['images']} fixed training images: {out['rho2']:.4f} (fooled {out['fooled']:.0%})"
        )
        return EpochVerdict(metrics={"deepfool/rho2": out["rho2"], "deepfool/fooled": out["fooled"]})
