"""Turning maps into pictures without lying about their scale.

* :func:`joint_normalize` puts the clean and the adversarial map of each image on **one** scale:
  vmin = min(min a, min b), vmax = max(max a, max b), m' = (m - vmin) / (vmax - vmin). A map is never
  rescaled on its own, so a weaker adversarial map looks weaker.
* :func:`signed_difference` gives d = b' - a' on that shared scale and a symmetric limit
  s = max |d| for a diverging colormap centred on 0 (blue: less attention after the attack, red: more).
* :func:`heat_rgb`, :func:`overlay` and :func:`diverging_rgb` colour maps with ``cv2.applyColorMap``
  (a built-in colormap, or a 256-entry blue-white-red lookup table for signed maps).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

COLORMAPS = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "hot": cv2.COLORMAP_HOT,
}


def _np(m) -> np.ndarray:
    if isinstance(m, torch.Tensor):
        m = m.detach().float().cpu().numpy()
    return np.asarray(m, dtype=np.float32)


def _stack(maps) -> list[np.ndarray]:
    out = []
    for m in maps:
        a = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
        a = np.asarray(a, dtype=np.float32)
        out.append(a[None] if a.ndim == 2 else a)
    return out


def joint_normalize(*maps, vmin=None, vmax=None) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Normalise maps (each (N, H, W)) jointly per sample: -> ([m' in [0,1]], vmin (N,), vmax (N,)).

    ``vmin``/``vmax`` override the joint range (a float, or a tensor (N,)). A sample whose maps are
    all equal maps to 0. (NumPy inside: small per-map reductions stay on one thread.)
    """
    if not maps:
        raise ValueError("joint_normalize needs at least one map")
    arrs = _stack(maps)
    if any(a.shape != arrs[0].shape for a in arrs):
        raise ValueError("maps normalised together must have the same shape")
    n = arrs[0].shape[0]
    stacked = np.concatenate([a.reshape(n, -1) for a in arrs], axis=1)
    lo = stacked.min(1) if vmin is None else np.broadcast_to(np.asarray(vmin, np.float32), (n,)).copy()
    hi = stacked.max(1) if vmax is None else np.broadcast_to(np.asarray(vmax, np.float32), (n,)).copy()
    span = (hi - lo).reshape(n, 1, 1)
    safe = np.where(span > 0, span, 1.0)
    out = [
        torch.from_numpy(np.where(span > 0, np.clip((a - lo.reshape(n, 1, 1)) / safe, 0, 1), 0.0).astype(np.float32))
        for a in arrs
    ]
    return out, torch.from_numpy(lo.astype(np.float32)), torch.from_numpy(hi.astype(np.float32))


def signed_difference(clean_norm, adv_norm) -> tuple[torch.Tensor, torch.Tensor]:
    """d = adv' - clean' (both already on the shared scale) and the symmetric limit s = max|d| (N,)."""
    a, b = _stack([clean_norm, adv_norm])
    d = b - a
    s = np.abs(d).reshape(len(d), -1).max(1)
    return torch.from_numpy(d), torch.from_numpy(s)


def to_uint8(map01) -> np.ndarray:
    """A map in [0, 1] (H, W) -> uint8 (H, W)."""
    return (np.clip(_np(map01), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def heat_rgb(map01, colormap: str = "jet") -> np.ndarray:
    """A map in [0, 1] (H, W) -> RGB uint8 (H, W, 3) through an OpenCV colormap."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; use one of {', '.join(COLORMAPS)}")
    bgr = cv2.applyColorMap(to_uint8(map01), COLORMAPS[colormap])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _bwr_lut() -> np.ndarray:
    """256 x 1 x 3 BGR lookup table, linear: blue (0, 0, 1) at 0 -> white at 127.5 -> red (1, 0, 0) at 255."""
    t = np.linspace(-1.0, 1.0, 256)
    r = np.where(t < 0, 1.0 + t, 1.0)
    g = 1.0 - np.abs(t)
    b = np.where(t > 0, 1.0 - t, 1.0)
    lut = np.stack([b, g, r], axis=-1) * 255.0
    return lut.round().clip(0, 255).astype(np.uint8).reshape(256, 1, 3)


BWR_LUT = _bwr_lut()


def diverging_rgb(diff, limit: float | None = None) -> np.ndarray:
    """A signed map (H, W) -> RGB uint8 with 0 white, -limit blue, +limit red (limit = max|diff|)."""
    d = _np(diff)
    s = float(np.abs(d).max()) if limit is None else float(limit)
    scaled = np.zeros_like(d) if s <= 0 else np.clip(d / s, -1.0, 1.0)
    idx = ((scaled + 1.0) * 127.5).round().astype(np.uint8)
    bgr = cv2.applyColorMap(idx, BWR_LUT)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_rgb(x) -> np.ndarray:
    """An image (C, H, W) or (1, C, H, W) in [0, 1] (C = 1 or 3) -> RGB uint8 (H, W, 3)."""
    t = torch.as_tensor(x).detach().float().cpu()
    if t.ndim == 4:
        t = t[0]
    arr = (t.clamp(0, 1).numpy() * 255.0).round().astype(np.uint8).transpose(1, 2, 0)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def overlay(image, map01, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """Blend a coloured map over an image: (1 - alpha) * image + alpha * colour(map) -> RGB uint8."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    img = image if isinstance(image, np.ndarray) and image.dtype == np.uint8 else image_rgb(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    m = _np(map01)
    if m.shape != img.shape[:2]:
        m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = heat_rgb(m, colormap)
    return cv2.addWeighted(img, 1.0 - alpha, heat, alpha, 0.0)


def enlarge(img: np.ndarray, min_side: int = 224) -> np.ndarray:
    """Nearest-neighbour upscaling of a small picture (e.g. 28x28) by an integer factor for display."""
    h, w = img.shape[:2]
    f = max(1, int(np.ceil(min_side / max(1, min(h, w)))))
    if f == 1:
        return img
    return cv2.resize(img, (w * f, h * f), interpolation=cv2.INTER_NEAREST)
