"""Standard training: empirical risk minimisation with the cross-entropy."""

from __future__ import annotations

from advlens.training.objectives import Objective, accuracy_of, cross_entropy, register


@register
class Standard(Objective):
    name = "standard"
    title = "Standard training"
    formula = r"\min_\theta\; \mathbb{E}_{(x,y)}\Big[\mathrm{CE}\big(f_\theta(x),\, y\big)\Big]"
    source = "Empirical risk minimisation with the cross-entropy loss (no adversary)"
    uses_eps = False

    def loss(self, model, x, y, ctx):
        logits = model(x)
        return cross_entropy(logits, y), {"acc": accuracy_of(logits, y)}
