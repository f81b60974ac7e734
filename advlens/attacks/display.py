"""Pictures of attacks for people: images, amplified perturbations, with the scale stated.

A perturbation delta = x_adv - x is tiny (a few /255), so it is shown as mid-grey + k * delta with
a round amplification k (1, 2, 5, 10, 20, 50, ...) chosen so the largest change just fits:
k * max|delta| <= 0.5. Mid-grey means "no change"; the caption states k.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import to_uint8_hwc

_NICE = (1, 2, 4, 5, 8, 10)


def image_rgb(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (1, C, H, W) in [0, 1], C = 1 or 3 -> RGB uint8 (H, W, 3). Kept here rather than
    taken from :mod:`advlens.attribution.display`, whose package imports captum and SciPy (a second
    of the Attack Lab's start for two small functions)."""
    arr = to_uint8_hwc(x)
    return np.ascontiguousarray(np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr)


def enlarge(img: np.ndarray, min_side: int = 224) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor so the shorter side reaches ``min_side``."""
    h, w = img.shape[:2]
    f = max(1, int(np.ceil(min_side / max(1, min(h, w)))))
    return img if f == 1 else np.repeat(np.repeat(img, f, axis=0), f, axis=1)


def nice_scale(max_abs: float, limit: float = 0.5) -> int:
    """The largest round k with k * max_abs <= limit (at least 1)."""
    if max_abs <= 0:
        return 1
    best, decade = 1, 1
    while decade * _NICE[0] * max_abs <= limit:
        for m in _NICE:
            if m * decade * max_abs <= limit:
                best = max(best, m * decade)
        decade *= 10
    return best


def picture(x: torch.Tensor, min_side: int = 224) -> np.ndarray:
    """An image (C, H, W) or (1, C, H, W) in [0, 1] as an RGB picture, enlarged for display."""
    return enlarge(image_rgb(x), min_side)


def perturbation_rgb(delta: torch.Tensor, min_side: int = 224, scale: int | None = None) -> tuple[np.ndarray, int]:
    """(uint8 picture of 0.5 + k * delta, k). ``scale`` fixes k (e.g. to compare two steps)."""
    if delta.ndim == 4:
        delta = delta[0]
    delta = delta.detach().float().cpu()
    delta = torch.where(delta.abs() < 0.5 / 255, torch.zeros_like(delta), delta)  # below half a grey level: none
    k = nice_scale(float(delta.abs().max())) if scale is None else int(scale)
    return picture((0.5 + k * delta).clamp(0.0, 1.0), min_side), k


def step_pictures(
    trajectory, entry: int, x: torch.Tensor, sample: int = 0, scale: int | None = None, min_side: int = 224
) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """The image recorded nearest to trajectory ``entry`` and its amplified perturbation from ``x``.

    Returns (image, perturbation, k, frame entry), or None when no image was kept for ``sample``
    there (images not recorded, or the sample sat out that restart).
    """
    frame = trajectory.nearest_frame(entry)
    if frame is None:
        return None
    img = trajectory.image(frame, sample)
    if img is None:
        return None
    x = x[0] if x.ndim == 4 else x
    pert, k = perturbation_rgb(img - x.float().cpu(), min_side, scale)
    return picture(img, min_side), pert, k, frame
