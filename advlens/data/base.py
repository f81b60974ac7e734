"""The one dataset interface: images in [0,1], labels, and class names."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


class DataError(ValueError):
    """Data that cannot be loaded. The message tells a person what to do."""


@dataclass
class ImageDataset:
    """A labelled image set held in memory.

    ``pixels`` is uint8 (N, C, H, W) or float in [0,1]; ``images`` always gives float32 in [0,1].
    A label of -1 means "unknown" (e.g. a photo with no ImageNet class): attacks then use the
    model's clean prediction as the true class.
    """

    name: str
    pixels: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    split: str = "test"
    item_names: list[str] | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.pixels.ndim != 4:
            raise DataError(f"{self.name}: images must be N x C x H x W, got shape {tuple(self.pixels.shape)}")
        if len(self.pixels) != len(self.labels):
            raise DataError(f"{self.name}: {len(self.pixels)} images but {len(self.labels)} labels")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.pixels.shape[1:])

    @property
    def images(self) -> torch.Tensor:
        return to_float(self.pixels)

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return to_float(self.pixels[idx]), self.labels[idx]

    def item(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < len(self):
            raise DataError(f"index {index} is out of range: {self.name} ({self.split}) has {len(self)} images")
        x, y = self.batch([index])
        return x, int(y[0])

    def subset(self, indices) -> ImageDataset:
        idx = torch.as_tensor(indices, dtype=torch.long)
        names = [self.item_names[i] for i in idx.tolist()] if self.item_names else None
        return ImageDataset(
            self.name, self.pixels[idx], self.labels[idx], self.class_names, self.split, names, dict(self.info)
        )

    def item_name(self, index: int) -> str:
        if self.item_names:
            return self.item_names[index]
        label = int(self.labels[index])
        cls = self.class_names[label] if 0 <= label < len(self.class_names) else "?"
        return f"{self.name}[{index}] ({cls})"


def to_float(pixels: torch.Tensor) -> torch.Tensor:
    if pixels.dtype == torch.uint8:
        return pixels.float().div_(255.0)
    return pixels.float()


def from_numpy_hwc(arrays: np.ndarray) -> torch.Tensor:
    """(N, H, W[, C]) uint8 numpy -> (N, C, H, W) uint8 torch."""
    t = torch.from_numpy(np.ascontiguousarray(arrays))
    if t.ndim == 3:
        return t.unsqueeze(1)
    return t.permute(0, 3, 1, 2).contiguous()
