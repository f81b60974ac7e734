"""Datasets that ship with the installed packages: sklearn's digits and scikit-image's photos."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch

from .base import DataError, ImageDataset
from .images import fit_image

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2

# scikit-image sample photos and their ImageNet class (-1: no ImageNet class fits).
SAMPLE_PHOTOS = {
    "chelsea": 285,  # Egyptian cat
    "coffee": 967,  # espresso
    "astronaut": -1,
    "rocket": -1,
}


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    # 8x8 with values 0..16 -> 28x28 in [0,255], white digit on black like MNIST.
    up = np.stack(
        [
            cv2.resize((img / 16.0 * 255.0).astype(np.float32), (28, 28), interpolation=cv2.INTER_LINEAR)
            for img in d.images
        ]
    )
    up = np.clip(up, 0, 255).round().astype(np.uint8)
    return train_test_split(
        up, d.target, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=d.target
    )


def load_digits(split: str = "test") -> ImageDataset:
    """sklearn's 1797 handwritten digits, upsampled to 1x28x28, with a fixed stratified 80/20 split."""
    x_tr, x_te, y_tr, y_te = _digits_arrays()
    if split == "train":
        x, y = x_tr, y_tr
    elif split == "test":
        x, y = x_te, y_te
    else:
        raise DataError(f"digits: split must be 'train' or 'test', not {split!r}")
    return ImageDataset(
        "digits",
        torch.from_numpy(x).unsqueeze(1).contiguous(),
        torch.from_numpy(y),
        tuple(str(i) for i in range(10)),
        split,
        info={"source": "sklearn.datasets.load_digits", "split_seed": DIGITS_SPLIT_SEED, "official_order": True},
    )


def sample_photo(name: str) -> np.ndarray:
    from skimage import data

    if name not in SAMPLE_PHOTOS:
        raise DataError(f"unknown sample photo {name!r}; available: {', '.join(SAMPLE_PHOTOS)}")
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img[..., :3]


def load_sample_photos(size: tuple[int, int, int] = (3, 224, 224)) -> ImageDataset:
    """scikit-image's photos, centre-cropped to ``size``, labelled with ImageNet classes."""
    from ..models.efficientnet_lite import imagenet_class_names

    names = list(SAMPLE_PHOTOS)
    x = torch.stack([fit_image(sample_photo(n), size) for n in names])
    pixels = (x * 255).round().to(torch.uint8)
    return ImageDataset(
        "imagenet_samples",
        pixels,
        torch.tensor([SAMPLE_PHOTOS[n] for n in names]),
        imagenet_class_names(),
        "test",
        item_names=names,
        info={"source": "skimage.data"},
    )
