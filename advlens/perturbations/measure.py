"""Apply a universal perturbation or a patch to images, and measure its fooling rate on held-out images.

Fooling rate (Moosavi-Dezfooli et al. 2017 count a changed prediction; we count against the label, on the
images the model gets right, so that a mistake the model already made is not credited to the perturbation):

- untargeted: among the held-out images the model classifies correctly, the share misclassified once
  the perturbation is added;
- targeted: among the held-out images not of the target class, the share classified as the target.

A patch lands at one random placement per image (position, scale and rotation drawn from its training
distribution with a fixed seed), so the rate is the expectation the patch was trained for. The rate comes
with n and its 95% Clopper-Pearson interval (:mod:`advlens.intervals`).
"""

from __future__ import annotations

import torch

from ..attacks.patch import Placement, apply_patch, sample_placements
from ..attacks.universal import add_universal
from ..intervals import clopper_pearson
from ..models.modes import eval_mode, model_device

PLACEMENT_SEED = 1234  # the held-out placements of a patch: part of the protocol


def placements_for(tensor: torch.Tensor, meta: dict, n: int, size: tuple[int, int], seed: int = PLACEMENT_SEED):
    """``n`` placements drawn from the patch's training distribution, with ``seed``."""
    p = meta.get("params", {})
    g = torch.Generator().manual_seed(int(seed))
    return sample_placements(n, tensor.shape[-1], size, p.get("min_scale", 1.0), p.get("max_rotation", 0.0), g)


def perturb(
    kind: str, tensor: torch.Tensor, meta: dict, x: torch.Tensor, placement: Placement | None = None, seed: int = 0
) -> torch.Tensor:
    """``x`` (N, C, H, W) with the universal perturbation added, or the patch pasted (at ``placement``,
    or at random placements drawn with ``seed``)."""
    if tuple(tensor.shape[:1]) != tuple(x.shape[1:2]) or (kind == "universal" and tensor.shape != x.shape[1:]):
        shape = "x".join(map(str, tensor.shape))
        raise ValueError(f"this {kind} is {shape}; the images are {'x'.join(map(str, x.shape[1:]))}")
    if kind == "universal":
        return add_universal(x, tensor)
    if tensor.shape[-1] > min(x.shape[-2:]):
        raise ValueError(f"the patch ({tensor.shape[-1]} pixels) is larger than the images")
    if placement is None:
        placement = placements_for(tensor, meta, len(x), tuple(x.shape[-2:]), seed)
    return apply_patch(x, tensor, placement)


@torch.no_grad()
def fooling_rate(
    model, kind: str, tensor: torch.Tensor, meta: dict, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256
) -> dict:
    """The fooling rate on ``(x, y)`` (see the module docstring), with n, k and the 95% interval."""
    target = meta.get("target")
    device = model_device(model)
    clean, adv = [], []
    with eval_mode(model):
        for s in range(0, len(x), batch_size):
            xb = x[s : s + batch_size].to(device)
            xa = perturb(kind, tensor.to(device), meta, xb, seed=PLACEMENT_SEED + s)
            clean.append(model(xb).argmax(1).cpu())
            adv.append(model(xa).argmax(1).cpu())
    clean_pred, adv_pred = torch.cat(clean), torch.cat(adv)
    y = y.cpu()
    if target is None:
        counted = clean_pred == y
        hit = counted & (adv_pred != y)
        what = "correctly classified images misclassified with the perturbation"
    else:
        counted = y != int(target)
        hit = counted & (adv_pred == int(target))
        what = "images not of the target class classified as the target"
    n, k = int(counted.sum()), int(hit.sum())
    lo, hi = clopper_pearson(k, n)
    return {
        "rate": k / n if n else 0.0,
        "k": k,
        "n": n,
        "images": len(x),
        "interval_95": [lo, hi],
        "measure": what + ("; the patch at one random placement per image" if kind == "patch" else ""),
        "per_image": hit.tolist(),
    }
