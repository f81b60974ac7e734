"""The catalogue of datasets and the single entry point :func:`load_dataset`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import DataError, ImageDataset
from .cifar import load_cifar10_batches
from .download import ensure_downloaded
from .folder import load_image_folder
from .idx import FASHION_CLASSES, MNIST_CLASSES, load_idx_dataset
from .offline import load_digits, load_sample_photos
from .samples import SAMPLE_SETS, load_samples


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    input_size: tuple[int, int, int]
    offline: bool
    needs_root: bool = False
    trainable: bool = True  # False: a handful of test images only (sample sets)


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("digits", "sklearn handwritten digits, 28x28 (offline, 1437 train / 360 test)", (1, 28, 28), True),
        DatasetInfo(
            "imagenet_samples",
            "scikit-image sample photos for ImageNet models (offline)",
            (3, 224, 224),
            True,
            trainable=False,
        ),
        DatasetInfo(
            "mnist_samples",
            "100 MNIST test images, 10 per class (shipped, offline)",
            (1, 28, 28),
            True,
            trainable=False,
        ),
        DatasetInfo(
            "cifar10_samples",
            "100 CIFAR-10 test images (JPEG q75 copy), 10 per class (shipped, offline)",
            (3, 32, 32),
            True,
            trainable=False,
        ),
        DatasetInfo("mnist", "MNIST, 60k/10k, gzip IDX (download or local folder)", (1, 28, 28), False),
        DatasetInfo("fashion_mnist", "Fashion-MNIST, 60k/10k, gzip IDX (download or local folder)", (1, 28, 28), False),
        DatasetInfo("cifar10", "CIFAR-10, 50k/10k, python batches (download or local folder)", (3, 32, 32), False),
        DatasetInfo("folder", "an image folder with one subfolder per class", (3, 32, 32), False, True),
    )
}


def list_datasets() -> list[str]:
    return list(DATASETS)


def load_dataset(
    name: str, split: str = "test", root: str | Path | None = None, download: bool = False, **kwargs
) -> ImageDataset:
    """Load a dataset by name.

    ``root`` is a local folder with the canonical files (MNIST: the ``*-ubyte.gz`` files; CIFAR-10:
    ``cifar-10-python.tar.gz`` or ``cifar-10-batches-py/``; ``folder``: the image folder). Without
    it, the cache is used, and filled from the canonical URLs when ``download`` is true.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if name == "digits":
        return load_digits(split)
    if name == "imagenet_samples":
        return load_sample_photos(**kwargs)
    if name in SAMPLE_SETS:
        if split != "test":
            raise DataError(f"{name} holds test images only.")
        return load_samples(name)
    if name == "folder":
        if root is None:
            raise DataError("the 'folder' dataset needs a folder: root/<class>/<image files>.")
        return load_image_folder(root, split=split, **kwargs)
    if root is not None:
        root = Path(root).expanduser()
        if not root.exists():
            raise DataError(f"{name}: the folder {root} does not exist.")
    else:
        root = ensure_downloaded(name, download)
    if name == "mnist":
        return load_idx_dataset(root, split, "mnist", MNIST_CLASSES)
    if name == "fashion_mnist":
        return load_idx_dataset(root, split, "fashion_mnist", FASHION_CLASSES)
    return load_cifar10_batches(root, split)
