"""Shipped sample test images: 100 from MNIST and 100 from CIFAR-10 (JPEG q75 copy), 10 per class.

(The CIFAR-10 ones are decoded from the JPEG copy in ``../shared/data``, not the original PNGs.)

They live in ``assets/samples/<name>.npz`` (uint8 images, labels and their index in the test split;
read with ``allow_pickle=False``, so a tampered file cannot run code), so every page has natural
examples offline. ``python -m advlens build-samples`` rebuilds them from ``../shared/data``: the
first ten test images of each class, in test-split order.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..paths import ASSETS_DIR
from .base import DataError, ImageDataset

SAMPLES_DIR = ASSETS_DIR / "samples"
PER_CLASS = 10
# sample set -> (dataset, its label in titles and captions)
SAMPLE_SETS = {"mnist_samples": ("mnist", "MNIST"), "cifar10_samples": ("cifar10", "CIFAR-10")}
MAX_SAMPLE_BYTES = 2_000_000


def first_per_class(labels: torch.Tensor, per_class: int = PER_CLASS) -> torch.Tensor:
    """Indices of the first ``per_class`` images of each class, taken round-robin over the classes (the
    first image of each class, then the second, ...), so the first ten samples show ten classes."""
    seen: dict[int, int] = {}
    keep = []
    for i, y in enumerate(labels.tolist()):
        if seen.get(y, 0) < per_class:
            keep.append((seen.get(y, 0), y, i))
            seen[y] = seen.get(y, 0) + 1
    return torch.tensor([i for _, _, i in sorted(keep)], dtype=torch.long)


def write_samples(name: str, test: ImageDataset, folder: Path = SAMPLES_DIR) -> Path:
    idx = first_per_class(test.labels)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npz"
    np.savez_compressed(
        path,
        images=test.pixels[idx].numpy().astype(np.uint8),
        labels=test.labels[idx].numpy().astype(np.int64),
        indices=idx.numpy().astype(np.int64),
        class_names=np.array(test.class_names, dtype=np.str_),
    )
    return path


@lru_cache(maxsize=4)
def load_samples(name: str, folder: Path = SAMPLES_DIR) -> ImageDataset:
    """The shipped sample set ``name`` (``mnist_samples`` or ``cifar10_samples``)."""
    if name not in SAMPLE_SETS:
        raise DataError(f"unknown sample set {name!r}; available: {', '.join(SAMPLE_SETS)}")
    path = Path(folder) / f"{name}.npz"
    try:
        if path.stat().st_size > MAX_SAMPLE_BYTES:
            raise DataError(f"{path} is larger than {MAX_SAMPLE_BYTES:,} bytes; it is not a sample set.")
        with np.load(path, allow_pickle=False) as f:
            images, labels, indices = f["images"], f["labels"], f["indices"]
            class_names = tuple(str(c) for c in f["class_names"])
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"the sample set {path} cannot be read: {exc}") from None
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels) != len(indices):
        raise DataError(f"the sample set {path} is malformed.")
    source, label = SAMPLE_SETS[name]
    return ImageDataset(
        name,
        torch.from_numpy(images.copy()),
        torch.from_numpy(labels.copy()),
        class_names,
        "test",
        item_names=[f"{label} {class_names[y]} (test #{i})" for y, i in zip(labels.tolist(), indices.tolist())],
        info={"source": f"assets/samples/{name}.npz: the first {PER_CLASS} {label} test images of each class"},
    )
