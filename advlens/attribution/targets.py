"""Which class an attribution map explains.

A map answers "where does the model look for class t?". For a clean image x and its adversarial
x_adv the useful choices of t are:

* ``"true"``: the label y for both maps (labels of -1, "unknown", fall back to the clean
  prediction). This is the choice of Wu et al. (arXiv 1811.09831): the attention for the true class.
* ``"clean_pred"``: the clean prediction argmax f(x) for both maps.
* ``"adv_pred"``: the adversarial prediction argmax f(x_adv) for both maps.
* ``"own_pred"``: each map explains its own image's prediction (clean map: argmax f(x), adversarial
  map: argmax f(x_adv)); this shows where the decision itself comes from.
* an ``int`` class index, or a per-sample ``LongTensor`` of shape (N,), for both maps.
"""

from __future__ import annotations

import torch

TARGET_KINDS = ("true", "clean_pred", "adv_pred", "own_pred")
TARGET_LABELS = {
    "true": "true class",
    "clean_pred": "clean prediction",
    "adv_pred": "adversarial prediction",
    "own_pred": "each image's own prediction",
}


def as_target_tensor(
    target: int | torch.Tensor | list[int], n: int, num_classes: int | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """An int, list or tensor of class indices -> LongTensor (n,), checked against ``num_classes``."""
    if isinstance(target, bool):
        raise ValueError("the target must be a class index, not a bool")
    if isinstance(target, int):
        t = torch.full((n,), int(target), dtype=torch.long)
    else:
        t = torch.as_tensor(target).long().reshape(-1)
        if t.numel() == 1 and n != 1:
            t = t.expand(n).clone()
        if t.numel() != n:
            raise ValueError(f"the target has {t.numel()} class indices for a batch of {n} images")
    if num_classes is not None and ((t < 0) | (t >= num_classes)).any():
        bad = int(t[(t < 0) | (t >= num_classes)][0])
        raise ValueError(
            f"class index {bad} is out of range: the model has {num_classes} classes (0..{num_classes - 1})"
        )
    return t.to(device)


def resolve_targets(
    kind: str | int | torch.Tensor,
    *,
    clean_pred: torch.Tensor,
    adv_pred: torch.Tensor,
    y: torch.Tensor | None = None,
    num_classes: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The class each clean map and each adversarial map explains: (targets_clean, targets_adv)."""
    clean_pred = clean_pred.reshape(-1).long().cpu()
    adv_pred = adv_pred.reshape(-1).long().cpu()
    n = clean_pred.numel()
    if isinstance(kind, str):
        if kind == "true":
            if y is None:
                return clean_pred, clean_pred
            labels = torch.as_tensor(y).long().reshape(-1).cpu()
            if labels.numel() == 1 and n != 1:
                labels = labels.expand(n)
            if labels.numel() != n:
                raise ValueError(f"{labels.numel()} labels for a batch of {n} images")
            t = torch.where(labels >= 0, labels, clean_pred)
            return t, t
        if kind == "clean_pred":
            return clean_pred, clean_pred
        if kind == "adv_pred":
            return adv_pred, adv_pred
        if kind == "own_pred":
            return clean_pred, adv_pred
        raise ValueError(f"unknown target {kind!r}; use one of {', '.join(TARGET_KINDS)} or a class index")
    t = as_target_tensor(kind, n, num_classes)
    return t, t
