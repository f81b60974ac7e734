"""Adaptive attacks on input-transform defenses: BPDA and EOT (Athalye, Carlini and Wagner 2018,
"Obfuscated Gradients Give a False Sense of Security", arXiv 1802.00420).

- **BPDA** (Backward Pass Differentiable Approximation): keep a non-differentiable transform t in
  the forward pass and differentiate a stand-in g with g(x) ~ t(x) in the backward pass (the
  identity for JPEG and bit depth). A defended model's BPDA view does exactly that
  (:func:`advlens.models.defended.bpda_view`); on any other model the option changes nothing.
- **EOT** (Expectation over Transformation): against a random transform, ascend the expected
  loss, whose gradient is estimated by averaging over ``eot`` independent draws:

      grad E_t[L(f(t(x)), y)] ~ (1/N) sum_{i=1..N} grad L(f(t_i(x)), y)

PGD and APGD take both as parameters (``bpda``, ``eot``); the evaluation suites switch them on for
defended models by themselves (:func:`adaptive_settings`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.defended import bpda_view, is_random, needs_bpda
from ..params import Param

EOT_DRAWS = 20  # AutoAttack's rand version (Croce and Hein 2020) averages over 20 draws


def adaptive_params() -> tuple[Param, Param]:
    return (
        Param(
            "bpda",
            bool,
            False,
            help="BPDA: differentiate a defended model's non-differentiable transforms through a stand-in "
            "(the identity for JPEG and bit depth); no effect on an undefended model",
        ),
        Param(
            "eot",
            int,
            1,
            1,
            1000,
            help="EOT: average every gradient over this many random draws of a randomized defense (1: off)",
        ),
    )


def loss_gradient(model: nn.Module, x: torch.Tensor, objective, draws: int = 1):
    """(gradient of objective(logits).sum() w.r.t. x averaged over ``draws`` forward passes, the mean
    logits, the mean per-sample objective). ``x`` is not modified. One draw is a plain gradient."""
    x = x.detach().requires_grad_(True)
    grad = logits_sum = values_sum = None
    for _ in range(draws):
        logits = model(x)
        values = objective(logits)
        (g,) = torch.autograd.grad(values.sum(), x)
        if grad is None:
            grad, logits_sum, values_sum = g, logits.detach(), values.detach()
        else:
            grad, logits_sum, values_sum = grad + g, logits_sum + logits.detach(), values_sum + values.detach()
    if draws == 1:
        return grad, logits_sum, values_sum
    return grad / draws, logits_sum / draws, values_sum / draws


def gradient_model(model: nn.Module, bpda: bool) -> nn.Module:
    return bpda_view(model) if bpda else model


def adaptive_settings(model: nn.Module, attack_cls) -> dict:
    """The adaptive options an evaluation gives ``attack_cls`` on ``model``: BPDA through
    non-differentiable transforms, EOT over 20 draws for random ones (nothing for a bare model)."""
    names = {p.name for p in attack_cls.params()}
    out = {}
    if "bpda" in names and needs_bpda(model):
        out["bpda"] = True
    if "eot" in names and is_random(model):
        out["eot"] = EOT_DRAWS
    return out
