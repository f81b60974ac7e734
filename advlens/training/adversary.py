"""The training-time adversary: a thin adapter over :mod:`advlens.attacks` for objectives.

The attack classes of :mod:`advlens.attacks` always run the model in eval mode, validate their
inputs (a device sync) and ascend the cross-entropy. Adversarial training needs three more
things, so objectives call this adapter instead:

- the model mode is the objective's choice: Madry's PGD-AT and Wong's Fast-AT generate in train
  mode (batch-norm uses batch statistics), TRADES in eval mode;
- any differentiable loss of the logits: TRADES ascends ``KL(f(x) || f(x'))``;
- one start (no restarts) and just ``x'`` back, with no checks, in the training hot path.

The ascent is the projected sign-gradient step of FGSM/PGD (Goodfellow 2015; Madry 2018)::

    x' <- Proj_{B_inf(x, eps) ∩ [0,1]^d} (x' + alpha * sign(grad_x' L(f(x'))))

The projection and the box bounds come from :mod:`advlens.attacks.pgd`, so both share one
definition. Robust accuracy for evaluation uses the attack classes themselves
(:mod:`advlens.training.evaluate`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.pgd import linf_bounds, project_linf_
from ..models.modes import model_mode

LossOfLogits = Callable[[torch.Tensor], torch.Tensor]


def ce_sum(y: torch.Tensor) -> LossOfLogits:
    """The untargeted cross-entropy to ascend, summed so per-sample gradients stay unscaled."""
    return lambda logits: F.cross_entropy(logits.float(), y, reduction="sum")


def sign_ascent(
    model: nn.Module,
    x: torch.Tensor,
    loss_fn: LossOfLogits,
    eps: float,
    alpha: float,
    steps: int,
    start: str = "uniform",
    noise_std: float = 0.001,
    train: bool | None = None,
) -> torch.Tensor:
    """Projected sign-gradient ascent of ``loss_fn(model(x'))`` in the L-inf ball of radius ``eps``.

    ``start``: "zero" (x' = x: FGSM and Step-LL), "uniform" (x' = x + U(-eps, eps): PGD, Fast-AT) or
    "normal" (x' = x + noise_std * N(0, 1): TRADES). Returns a detached batch in [0, 1].
    """
    x = x.detach()
    if eps <= 0 or steps <= 0:
        return x.clone()
    eps_t = torch.full((len(x),) + (1,) * (x.ndim - 1), float(eps), device=x.device, dtype=x.dtype)
    bounds = linf_bounds(x, eps_t)
    if start == "uniform":
        x_adv = x + torch.empty_like(x).uniform_(-eps, eps)
    elif start == "normal":
        x_adv = x + noise_std * torch.randn_like(x)
    elif start == "zero":
        x_adv = x.clone()
    else:
        raise ValueError(f"unknown start {start!r}: use zero, uniform or normal")
    project_linf_(x_adv, *bounds)
    with model_mode(model, train):
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = loss_fn(model(x_adv))
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach()
            with torch.no_grad():
                x_adv.add_(grad.sign(), alpha=alpha)
                project_linf_(x_adv, *bounds)
    return x_adv.detach()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, train: bool | None = None) -> torch.Tensor:
    """x' = clip(x + eps * sign(grad_x CE(f(x), y))) (Goodfellow et al. 2015, arXiv 1412.6572)."""
    return sign_ascent(model, x, ce_sum(y), eps, eps, 1, start="zero", train=train)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = True,
    train: bool | None = None,
) -> torch.Tensor:
    """Madry's PGD on the cross-entropy, one start, no restarts (the training fast path)."""
    return sign_ascent(model, x, ce_sum(y), eps, alpha, steps, start="uniform" if random_start else "zero", train=train)
