"""Fast adversarial training: FGSM with a random start (Wong, Rice and Kolter 2020, arXiv 2001.03994).

delta ~ U(-eps, eps); delta <- Proj(delta + alpha * sign(grad_delta CE(f(x + delta), y))) with
alpha = 1.25 eps; train on CE(f(x + delta), y). Catastrophic overfitting (FGSM robustness
collapsing within an epoch while PGD robustness drops to ~0) is guarded against as in the
authors' code: after each epoch, PGD accuracy on a fixed training batch is measured; if it fell
by more than ``guard_drop`` since the last epoch, training stops and the previous epoch's weights
are kept.
"""

from __future__ import annotations

from advlens.params import Param
from advlens.training.adversary import ce_sum, sign_ascent
from advlens.training.objectives import EpochContext, EpochVerdict, Objective, accuracy_of, cross_entropy, register


@register
class FastAT(Objective):
    name = "fast_at"
    title = "Fast adversarial training (FGSM + random start)"
    formula = (
        r"\delta_0 \sim \mathcal{U}(-\epsilon, \epsilon)^d,\quad \delta = \Pi_{\|\cdot\|_\infty\le\epsilon}"
        r"\big(\delta_0 + \alpha\,\mathrm{sign}(\nabla_\delta \mathrm{CE}(f_\theta(x+\delta_0), y))\big),"
        r"\quad \alpha = 1.25\,\epsilon,\qquad \min_\theta \mathrm{CE}\big(f_\theta(x+\delta), y\big)"
    )
    source = (
        "Wong, Rice, Kolter: Fast is better than free: Revisiting adversarial training (ICLR 2020), arXiv 2001.03994"
    )
    hyperparams = (
        Param("alpha_ratio", float, 1.25, 0.0, 10.0, help="FGSM step as a multiple of eps (alpha = ratio * eps)"),
        Param("guard", bool, True, help="stop when PGD accuracy on a fixed training batch drops sharply"),
        Param("guard_drop", float, 0.2, 0.0, 1.0, help="a drop of PGD accuracy between epochs that stops training"),
        Param("guard_steps", int, 5, 1, 1000, help="PGD steps of the guard's check (the authors used 5)"),
    )
    extra_plots = {
        "Catastrophic-overfitting guard: PGD accuracy on a fixed training batch": ("guard/pgd_acc",),
        "Training accuracy on FGSM-RS examples": ("train/acc_adv",),
    }
    may_restore_previous = True

    def loss(self, model, x, y, ctx):
        x_adv = sign_ascent(ctx.attack_model, x, ce_sum(y), ctx.eps, self.alpha_ratio * ctx.eps, 1, start="uniform")
        logits = model(x_adv)
        return cross_entropy(logits, y), {"acc_adv": accuracy_of(logits, y)}

    def on_epoch_end(self, ctx: EpochContext) -> EpochVerdict | None:
        if not self.guard or self.eps <= 0:
            return None
        x, y = ctx.guard_batch
        acc = ctx.robust_accuracy(ctx.model, x, y, self.eps, self.guard_steps)
        seen = ctx.history.setdefault("guard_pgd_acc", [])
        previous = seen[-1] if seen else None
        verdict = EpochVerdict(metrics={"guard/pgd_acc": acc})
        if previous is not None and previous - acc > self.guard_drop:
            verdict.stop = verdict.restore_previous = True
            verdict.message = (
                f"catastrophic overfitting: PGD-{self.guard_steps} accuracy on a fixed training batch "
                f"fell from {previous:.3f} to {acc:.3f} in epoch {ctx.epoch + 1}; kept the weights "
                f"of epoch {ctx.epoch}"
            )
        else:
            seen.append(acc)
            ctx.log(f"guard: PGD-{self.guard_steps} accuracy on a fixed training batch {acc:.3f}")
        return verdict
