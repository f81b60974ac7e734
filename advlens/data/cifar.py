"""CIFAR-10 in its canonical "python version" batches archive, read without executing code.

The batches are pickles; they are read with a restricted unpickler that only builds dicts,
lists, bytes and numpy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from .base import DataError, ImageDataset, from_numpy_hwc

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def parse_batch(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _SafeUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as exc:
        raise DataError(f"{name} is not a CIFAR batch ({exc}).") from None
    if not isinstance(d, dict):
        raise DataError(f"{name} is not a CIFAR batch (no dict).")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise DataError(f"{name} is not a CIFAR-10 batch (no 'data'/'labels').")
    data = np.asarray(d["data"], dtype=np.uint8)
    labels = np.asarray(d["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataError(f"{name}: data has shape {data.shape}, expected (N, 3072) with N labels.")
    return data.reshape(-1, 3, 32, 32), labels


def _read_members(root: Path, names: list[str]) -> dict[str, bytes]:
    folder = root / FOLDER if (root / FOLDER).is_dir() else root
    if all((folder / n).is_file() for n in names):
        return {n: (folder / n).read_bytes() for n in names}
    archive = root / ARCHIVE if root.is_dir() else root
    if archive.is_file():
        try:
            with tarfile.open(archive, "r:gz") as tar:
                out = {}
                for member in tar.getmembers():
                    base = member.name.rsplit("/", 1)[-1]
                    if base in names and member.isfile():
                        out[base] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{archive} is not a readable tar.gz ({exc}).") from None
        missing = [n for n in names if n not in out]
        if missing:
            raise DataError(f"{archive} lacks {', '.join(missing)}.")
        return out
    raise DataError(f"CIFAR-10 not found in {root}: expected {ARCHIVE} or a {FOLDER}/ folder.")


def load_cifar10_batches(root: str | Path, split: str) -> ImageDataset:
    if split not in SPLIT_FILES:
        raise DataError(f"cifar10: split must be 'train' or 'test', not {split!r}")
    blobs = _read_members(Path(root), SPLIT_FILES[split])
    parts = [parse_batch(blobs[n], n) for n in SPLIT_FILES[split]]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError("cifar10: labels out of range 0..9.")
    pixels = torch.from_numpy(np.ascontiguousarray(data))
    return ImageDataset(
        "cifar10",
        pixels,
        torch.from_numpy(labels),
        CIFAR10_CLASSES,
        split,
        info={"source": str(root), "official_order": True},
    )


__all__ = ["CIFAR10_CLASSES", "load_cifar10_batches", "parse_batch", "from_numpy_hwc"]
