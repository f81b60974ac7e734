"""Accuracy of a model on a whole :class:`~advlens.data.ImageDataset`.

The training loop that used to live here (and built the shipped digits model) is now the real
trainer: ``python -m advlens build-default-model`` (:mod:`advlens.cli.default_model`). This helper
stays because ``tests/test_pretrained.py`` imports it.
"""

from __future__ import annotations

from ..data import ImageDataset
from ..models import Classifier
from .evaluate import clean_accuracy


def accuracy(model: Classifier, data: ImageDataset, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on every image of ``data``."""
    return clean_accuracy(model, data.pixels, data.labels, batch_size)
