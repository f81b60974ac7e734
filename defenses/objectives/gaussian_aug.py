"""Gaussian data augmentation, the training of randomized smoothing's base classifier (Cohen,
Rosenfeld and Kolter 2019, arXiv 1902.02918).

The base classifier f is trained on inputs with the same Gaussian noise the smoothed classifier
g(x) = argmax_c P(f(x + e) = c), e ~ N(0, sigma^2 I), will add, so that f classifies noisy images
well and g's top-class probability (hence its certified radius sigma * Phi^-1(p_A)) is large:

    min_theta E_{(x, y)} E_{e ~ N(0, sigma^2 I)} CE(f(x + e), y)

The noise is not clipped to [0, 1], as in the authors' code. Certify the trained model with
``python -m advlens certify --sigma`` at the same sigma.
"""

from __future__ import annotations

import torch

from advlens.params import Param
from advlens.training.objectives import Objective, accuracy_of, cross_entropy, register


@register
class GaussianAugmentation(Objective):
    name = "gaussian_aug"
    title = "Gaussian augmentation (randomized smoothing)"
    formula = (
        r"\min_\theta\; \mathbb{E}_{(x,y)}\, \mathbb{E}_{\varepsilon \sim \mathcal{N}(0, \sigma^2 I)}"
        r"\Big[\mathrm{CE}\big(f_\theta(x + \varepsilon),\, y\big)\Big]"
    )
    source = "Cohen, Rosenfeld, Kolter: Certified Adversarial Robustness via Randomized Smoothing (ICML 2019), arXiv 1902.02918"
    uses_eps = False
    hyperparams = (
        Param(
            "sigma",
            float,
            0.25,
            0.001,
            2.0,
            help="standard deviation of the training noise (certify at the same sigma)",
        ),
    )
    notes = "Certify the result with randomized smoothing at the same sigma (Attack Lab, Evaluate, `advlens certify`)."

    def loss(self, model, x, y, ctx):
        logits = model(x + self.sigma * torch.randn_like(x))
        return cross_entropy(logits, y), {"acc": accuracy_of(logits, y)}
