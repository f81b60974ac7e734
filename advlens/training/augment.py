"""Data augmentation as batched torch ops on the training device.

- Random crop with padding (Krizhevsky et al. 2012; the standard CIFAR-10 recipe with 4 px, and a
  random shift of up to 2 px for MNIST-like digits): zero-pad by ``p`` on every side, then cut an
  H x W window at an offset drawn uniformly in ``[0, 2p]^2`` for each image independently.
- Random horizontal flip with probability 1/2 (off by default for digits: a mirrored 3 is no digit).

Randomness comes from the given generator (or torch's default one), so a resumed run that restores
the RNG state draws the same augmentations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image random crop of a zero-padded batch: the same as a random shift of <= ``padding`` px."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device="cpu").to(x.device)
    rows = offsets[0][:, None] + torch.arange(h, device=x.device)[None, :]  # (N, H)
    cols = offsets[1][:, None] + torch.arange(w, device=x.device)[None, :]  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing with (N,1,1), (N,H,1), (N,1,W) on dims 0, 2, 3 gives (N, H, W, C).
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    mask = torch.rand(x.shape[0], generator=generator, device="cpu").lt(0.5).to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


class Augment:
    """The training augmentation of a run: crop with padding, then (optionally) flip."""

    def __init__(self, crop_padding: int = 0, flip: bool = False):
        self.crop_padding = int(crop_padding)
        self.flip = bool(flip)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        return x

    def describe(self) -> str:
        parts = [f"random crop, padding {self.crop_padding}px"] if self.crop_padding else []
        if self.flip:
            parts.append("horizontal flip")
        return ", ".join(parts) or "none"
