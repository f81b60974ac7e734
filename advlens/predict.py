"""Predictions: top-k classes and probabilities for a batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .models import Classifier
from .models.modes import eval_mode, model_device


class CleanAndAdversarial:
    """Predictions of a result that holds ``clean_probs`` and ``adv_probs`` (N, K)."""

    clean_probs: torch.Tensor
    adv_probs: torch.Tensor

    @property
    def clean_pred(self) -> torch.Tensor:
        return self.clean_probs.argmax(1)

    @property
    def adv_pred(self) -> torch.Tensor:
        return self.adv_probs.argmax(1)


@dataclass
class TopK:
    indices: list[int]
    names: list[str]
    probs: list[float]

    def as_rows(self) -> list[tuple[str, float]]:
        return list(zip(self.names, self.probs))


@torch.no_grad()
def predict_proba(model: Classifier, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, K) on the CPU, in eval mode (the model's modes are left as they were)."""
    with eval_mode(model):
        return model(x.to(model_device(model))).softmax(1).cpu()


def top_k(model: Classifier, x: torch.Tensor, k: int = 5) -> list[TopK]:
    """Top-k predictions for each image of the batch ``x`` (N, C, H, W) in [0,1]."""
    probs = predict_proba(model, x)
    k = min(k, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    return [
        TopK(idx.tolist(), [model.class_names[i] for i in idx.tolist()], val.tolist())
        for val, idx in zip(values, indices)
    ]


def topk_from_probs(probs: torch.Tensor, class_names, k: int = 5) -> TopK:
    """Top-k of one probability vector (already computed, e.g. by an attack)."""
    values, idx = probs.flatten().topk(min(k, probs.numel()))
    return TopK(idx.tolist(), [class_names[i] for i in idx.tolist()], values.tolist())
