"""Image folders: one subfolder per class (``root/<class>/*.png``), optionally under a split
folder (``root/train/<class>/...``). ``../shared/data/cifar10-jpeg.tar.gz`` unpacked loads as one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from .base import DataError, ImageDataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def resolve_split_root(root: Path, split: str | None) -> Path:
    if split and (root / split).is_dir():
        return root / split
    if split and not (root / split).is_dir() and any((root / s).is_dir() for s in ("train", "test")):
        raise DataError(f"{root} has no '{split}' folder.")
    return root


def _read(path: Path, channels: int, hw: tuple[int, int] | None) -> np.ndarray:
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    img = cv2.imread(str(path), flag)
    if img is None:
        raise DataError(f"{path} could not be decoded as an image.")
    if channels == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if hw is not None and img.shape[:2] != hw:
        img = cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    return img


def load_image_folder(
    root: str | Path,
    split: str | None = None,
    channels: int = 3,
    size: tuple[int, int] | None = None,
    name: str | None = None,
    limit_per_class: int | None = None,
) -> ImageDataset:
    """Read every image below ``root/<class>/``. Images are resized to ``size`` (H, W), or to the
    first image's size when all must agree. Classes are the sorted subfolder names."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist.")
    base = resolve_split_root(root, split)
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{base} has no class subfolders; expected {base}/<class>/<image>.")
    paths, labels = [], []
    for i, c in enumerate(classes):
        files = sorted(p for p in (base / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if limit_per_class is not None:
            files = files[:limit_per_class]
        paths += files
        labels += [i] * len(files)
    if not paths:
        raise DataError(f"{base} has class folders but no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    hw = tuple(size) if size is not None else _read(paths[0], channels, None).shape[:2]
    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(lambda p: _read(p, channels, hw), paths, chunksize=256))
    stack = np.stack(arrays)
    pixels = torch.from_numpy(stack).unsqueeze(1) if channels == 1 else torch.from_numpy(stack).permute(0, 3, 1, 2)
    return ImageDataset(
        name or root.name,
        pixels.contiguous(),
        torch.tensor(labels),
        tuple(classes),
        split or "all",
        item_names=[f"{p.parent.name}/{p.name}" for p in paths],
        info={"source": str(base), "files": True},  # item names are the files (class/name)
    )


def unpack_folder_archive(archive: str | Path, target: str | Path) -> Path:
    """Unpack an image-folder tarball (e.g. ``cifar10-jpeg.tar.gz``) once; returns ``target``.

    ``target`` is the folder the archive's single top folder becomes (``.../cifar10-jpeg``); an
    existing ``target/train`` and ``target/test`` are taken as already unpacked. The ``data``
    extraction filter refuses links, devices and paths outside the folder.
    """
    import tarfile

    archive, target = Path(archive), Path(target)
    if (target / "train").is_dir() and (target / "test").is_dir():
        return target
    if not archive.is_file():
        raise DataError(f"{archive} not found: the image-folder archive is needed to unpack {target.name}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(target.parent, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive} could not be unpacked: {exc}") from None
    if not (target / "train").is_dir():
        raise DataError(f"{archive} did not unpack to {target}/train and {target}/test.")
    return target
