"""Evaluation during and after training: clean accuracy and PGD robust accuracy.

Robust accuracy follows the evaluation rules of the methods reference (section 5): L-inf PGD
(Madry et al. 2018, arXiv 1706.06083) from :class:`advlens.attacks.pgd.PGD`, in eval mode, with a
random start, ``steps`` steps of ``alpha`` (default ``2.5 * eps / steps``) and ``restarts``
restarts that keep the worst case per image; the reported value is the fraction of images still
classified correctly, on the same images as the clean accuracy.
"""

from __future__ import annotations

import torch
from torch import nn

from ..attacks.pgd import PGD
from ..data import to_float
from ..models.modes import eval_mode, model_device


def clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on images ``x`` (uint8 or float in [0,1]) with labels ``y``."""
    correct = robust_predictions(model, x, y, eps=0.0, steps=0, batch_size=batch_size)
    return float(correct.float().sum()) / max(1, len(x))


def robust_predictions(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    alpha: float | None = None,
    restarts: int = 1,
    batch_size: int = 500,
) -> torch.Tensor:
    """Boolean per image: still correct under PGD (eval mode). ``eps == 0`` gives clean correctness."""
    device = model_device(model)
    out = []
    for start in range(0, len(x), batch_size):
        xb = to_float(x[start : start + batch_size].to(device))
        yb = y[start : start + batch_size].to(device)
        if eps > 0 and steps > 0:
            attack = PGD(
                model, eps=float(eps), steps=int(steps), step_size=alpha, restarts=int(restarts), random_start=True
            )
            xb = attack(xb, yb)
        with torch.no_grad(), eval_mode(model):
            out.append((model(xb).argmax(1) == yb).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, *args, **kw) -> float:
    """The fraction of images classified correctly after PGD-``steps`` (the options of
    :func:`robust_predictions`: ``alpha``, ``restarts``, ``batch_size``)."""
    correct = robust_predictions(model, x, y, eps, steps, *args, **kw)
    return float(correct.float().mean()) if len(correct) else 0.0
