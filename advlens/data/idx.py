"""MNIST and Fashion-MNIST in their canonical (gzip) IDX files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from .base import DataError, ImageDataset, from_numpy_hwc

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def parse_idx(blob: bytes, name: str = "IDX file") -> np.ndarray:
    """Decode an IDX file (gzip-compressed or raw) into a numpy array."""
    if blob[:2] == b"\x1f\x8b":
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError) as exc:
            raise DataError(f"{name} is a corrupt gzip file ({exc}).") from None
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] not in _DTYPES:
        raise DataError(f"{name} is not an IDX file (bad magic number).")
    ndim = blob[3]
    header = 4 + 4 * ndim
    if len(blob) < header:
        raise DataError(f"{name} is truncated (header).")
    dims = [int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_DTYPES[blob[2]])
    count = int(np.prod(dims)) if dims else 0
    if len(blob) - header != count * dtype.itemsize:
        raise DataError(
            f"{name} is truncated or has trailing bytes: header says {dims}, {len(blob) - header} data bytes present."
        )
    return np.frombuffer(blob, dtype=dtype, offset=header).reshape(dims)


def find_idx_file(root: Path, stem: str) -> Path | None:
    for candidate in (root / f"{stem}.gz", root / stem, root / stem.replace("-idx", ".idx")):
        if candidate.is_file():
            return candidate
    return None


def load_idx_dataset(root: str | Path, split: str, name: str, class_names: tuple[str, ...]) -> ImageDataset:
    root = Path(root)
    if split not in FILES:
        raise DataError(f"{name}: split must be 'train' or 'test', not {split!r}")
    img_stem, lbl_stem = FILES[split]
    paths = [find_idx_file(root, s) for s in (img_stem, lbl_stem)]
    if None in paths:
        missing = [s for s, p in zip((img_stem, lbl_stem), paths) if p is None]
        raise DataError(f"{name}: {', '.join(m + '.gz' for m in missing)} not found in {root}.")
    images = parse_idx(paths[0].read_bytes(), paths[0].name)
    labels = parse_idx(paths[1].read_bytes(), paths[1].name)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{name}: images {images.shape} and labels {labels.shape} do not match.")
    if labels.size and (labels.max() >= len(class_names)):
        raise DataError(f"{name}: label {int(labels.max())} out of range for {len(class_names)} classes.")
    return ImageDataset(
        name,
        from_numpy_hwc(images.astype(np.uint8)),
        torch.from_numpy(labels.astype(np.int64)),
        class_names,
        split,
        info={"source": str(root), "official_order": True},
    )
