"""Sparse perturbations for people: which pixels an L0 or L1 attack changed, and how many.

A sparse perturbation (Sparse-RS, FMN-L0/L1, APGD-L1) touches few pixels, often by a lot, so the
amplified-difference picture hides it; the mask shows the clean image in grey with every
changed pixel (any channel changed by at least half a grey level) in red.
"""

from __future__ import annotations

import numpy as np
import torch

from .display import enlarge, image_rgb

RED = (230, 40, 40)


def changed_mask(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """(H, W) bool for one image (C, H, W): the pixels where a channel moved by >= half a grey level."""
    return ((x_adv.float() - x.float()).abs() >= 0.5 / 255).any(0)


def sparse_summary(x: torch.Tensor, x_adv: torch.Tensor) -> dict:
    """Changed pixels, changed values (pixel x channel) and the L1 norm of one image's perturbation."""
    delta = x_adv.float() - x.float()
    return {
        "pixels": int(changed_mask(x, x_adv).sum()),
        "values": int((delta.abs() >= 0.5 / 255).sum()),
        "of_pixels": int(x.shape[-1] * x.shape[-2]),
        "l1": float(delta.abs().sum()),
    }


def mask_picture(x: torch.Tensor, x_adv: torch.Tensor, min_side: int = 224) -> np.ndarray:
    """The clean image, dimmed to grey, with the changed pixels in red, enlarged for display."""
    grey = image_rgb(x).mean(2, keepdims=True).repeat(3, axis=2) * 0.6 + 40
    out = grey.astype(np.uint8)
    out[changed_mask(x, x_adv).numpy()] = RED
    return enlarge(out, min_side)
