"""Attention-shift metrics between a clean map and an adversarial map, batched per sample.

All functions take maps as tensors or arrays (N, H, W) (a single (H, W) map is N = 1) and return
one value per sample. Negative values are clipped to 0 where a map is read as a distribution.

* **Top-k% IoU**: R(m) = pixels whose value is among the k% largest (value >= the k-th largest,
  ties included) and above the map's minimum (pixels tied at the minimum carry no attention;
  a constant map's region is the whole map). IoU = |R(a) ∩ R(b)| / |R(a) ∪ R(b)|.
  Wu et al. (arXiv 1811.09831) report IoU ~0.12 when an attack succeeds and ~0.19 when it fails.
* **Pearson** r = cov(a, b) / (sd(a) sd(b)) over pixels; **Spearman** rho = Pearson of the ranks
  (ties get their average rank). NaN for a constant map.
* **Centre of mass** c = sum_ij m_ij (i, j) / sum_ij m_ij; **shift** = ||c(a) - c(b)||_2 in pixels.
  NaN for a map with no mass.
* **Scatter**: the number of 8-connected components of {m >= tau * max(m)} (``cv2.connectedComponents``),
  and the **entropy** H = -sum p log p of p = m / sum m, divided by log(H*W) so it lies in [0, 1]
  (1: attention spread uniformly; 0: on a single pixel).
* **Attended area**: the fraction of pixels with m >= tau * max(m).
* **Faithfulness** (deletion test): p_t(x) - p_t(x with its top-k% region erased); the erase value
  is 0 (``"zero"``), the image's per-channel mean (``"mean"``), 0.5 (``"grey"``) or a number.
  A larger drop means the map points at what the prediction relies on.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from scipy.special import entr
from scipy.stats import rankdata
from torch import nn

from ..models.modes import model_device
from .hooks import inference_guard

ERASE_VALUES = ("zero", "mean", "grey")


def _batch(maps: torch.Tensor | np.ndarray) -> np.ndarray:
    """Maps as a float64 NumPy array (N, H, W). NumPy keeps these small per-map reductions on one
    thread: torch's intra-op threads cost a barrier per op, which dominates on 28x28 maps."""
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    t = np.asarray(maps, dtype=np.float64)
    if t.ndim == 2:
        t = t[None]
    if t.ndim == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 3:
        raise ValueError(f"maps must be N x H x W, got shape {tuple(t.shape)}")
    return t


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _batch(a), _batch(b)
    if a.shape != b.shape:
        raise ValueError(f"the two maps differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a, b


def _out(values: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values)).to(dtype)


def check_percent(k_percent: float, what: str = "top-k%") -> float:
    """``k_percent`` as a float in (0, 100]; ``ValueError`` otherwise."""
    try:
        k = float(k_percent)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in (0, 100], not {k_percent!r}") from None
    if not (0.0 < k <= 100.0) or math.isnan(k):
        raise ValueError(f"{what} must be in (0, 100], got {k_percent}")
    return k


def check_fraction(tau: float, what: str = "threshold") -> float:
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in (0, 1], not {tau!r}") from None
    if not (0.0 < t <= 1.0):
        raise ValueError(f"{what} must be in (0, 1] (a fraction of the map's maximum), got {tau}")
    return t


def _topk_mask(m: np.ndarray, k_percent: float) -> np.ndarray:
    k = check_percent(k_percent)
    n, h, w = m.shape
    flat = m.reshape(n, -1)
    count = max(1, math.ceil(k / 100.0 * h * w))
    kth = -np.partition(-flat, count - 1, axis=1)[:, count - 1 : count]
    lo = flat.min(axis=1, keepdims=True)
    hi = flat.max(axis=1, keepdims=True)
    mask = (flat >= kth) & ((flat > lo) | (hi == lo))
    return mask.reshape(n, h, w)


def topk_mask(maps, k_percent: float = 20.0) -> torch.Tensor:
    """Bool (N, H, W): the top-k% region of each map (see the module docstring for ties)."""
    return torch.from_numpy(_topk_mask(_batch(maps), k_percent))


def topk_iou(a, b, k_percent: float = 20.0) -> torch.Tensor:
    """IoU of the top-k% regions of ``a`` and ``b``, per sample, in [0, 1]."""
    a, b = _pair(a, b)
    ma, mb = _topk_mask(a, k_percent), _topk_mask(b, k_percent)
    n = len(a)
    inter = (ma & mb).reshape(n, -1).sum(1)
    union = (ma | mb).reshape(n, -1).sum(1)
    return _out(inter / union)


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y).sum(1) / den
    r[den == 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def pearson(a, b) -> torch.Tensor:
    """Pearson correlation over pixels, per sample (NaN if either map is constant)."""
    a, b = _pair(a, b)
    return _out(_pearson(a.reshape(len(a), -1), b.reshape(len(b), -1)))


def spearman(a, b) -> torch.Tensor:
    """Spearman rank correlation over pixels, per sample (average ranks for ties)."""
    a, b = _pair(a, b)
    ra = rankdata(a.reshape(len(a), -1), method="average", axis=1)
    rb = rankdata(b.reshape(len(b), -1), method="average", axis=1)
    return _out(_pearson(ra, rb))


def _center_of_mass(m: np.ndarray) -> np.ndarray:
    m = np.clip(m, 0.0, None)
    n, h, w = m.shape
    mass = m.reshape(n, -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (m.sum(axis=2) * np.arange(h)).sum(1) / mass
        c = (m.sum(axis=1) * np.arange(w)).sum(1) / mass
    com = np.stack([r, c], axis=1)
    com[mass == 0] = np.nan
    return com


def center_of_mass(maps) -> torch.Tensor:
    """(N, 2) centre of mass (row, col) in pixels of the non-negative part of each map."""
    return _out(_center_of_mass(_batch(maps)))


def com_shift(a, b) -> torch.Tensor:
    """Distance in pixels between the centres of mass of ``a`` and ``b``."""
    a, b = _pair(a, b)
    return _out(np.linalg.norm(_center_of_mass(a) - _center_of_mass(b), axis=1))


def _binarize(m: np.ndarray, threshold: float) -> np.ndarray:
    tau = check_fraction(threshold)
    hi = m.reshape(len(m), -1).max(axis=1).reshape(-1, 1, 1)
    return (m >= tau * hi) & (hi > 0)


def connected_components(maps, threshold: float = 0.5) -> torch.Tensor:
    """Number of 8-connected regions of the binarised map (``cv2.connectedComponents``), per sample."""
    masks = _binarize(_batch(maps), threshold).astype(np.uint8)
    counts = [cv2.connectedComponents(mk, connectivity=8)[0] - 1 for mk in masks]
    return torch.tensor(counts, dtype=torch.long)


def entropy(maps, normalized: bool = True) -> torch.Tensor:
    """Shannon entropy (nats) of m / sum(m); divided by log(H*W) when ``normalized``. NaN for no mass."""
    m = np.clip(_batch(maps), 0.0, None)
    n, h, w = m.shape
    flat = m.reshape(n, -1)
    mass = flat.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = flat / mass
    ent = entr(p).sum(1)
    if normalized and h * w > 1:
        ent = ent / math.log(h * w)
    ent[mass[:, 0] == 0] = np.nan
    return _out(ent)


def attended_area(maps, threshold: float = 0.5) -> torch.Tensor:
    """Fraction of pixels with m >= threshold * max(m), per sample."""
    b = _binarize(_batch(maps), threshold)
    return _out(b.reshape(len(b), -1).mean(1))


def erase_value(x: torch.Tensor, erase: str | float) -> torch.Tensor:
    """The fill for erased pixels, broadcastable to ``x`` (N, C, H, W)."""
    if isinstance(erase, (int, float)) and not isinstance(erase, bool):
        if not 0.0 <= float(erase) <= 1.0:
            raise ValueError(f"the erase value must lie in [0, 1], got {erase}")
        return torch.full_like(x[:, :, :1, :1], float(erase))
    if erase == "zero":
        return torch.zeros_like(x[:, :, :1, :1])
    if erase == "grey":
        return torch.full_like(x[:, :, :1, :1], 0.5)
    if erase == "mean":
        return x.mean(dim=(2, 3), keepdim=True)
    raise ValueError(f"erase must be one of {', '.join(ERASE_VALUES)} or a number in [0, 1], not {erase!r}")


def erase_topk(x: torch.Tensor, maps, k_percent: float = 20.0, erase: str | float = "zero") -> torch.Tensor:
    """``x`` with the top-k% region of each map replaced by the erase value (all channels)."""
    m = torch.as_tensor(maps).detach().float().cpu()
    if m.ndim == 2:
        m = m.unsqueeze(0)
    if tuple(m.shape[-2:]) != tuple(x.shape[-2:]):
        m = torch.nn.functional.interpolate(
            m.reshape(len(m), 1, *m.shape[-2:]), size=x.shape[-2:], mode="bilinear", align_corners=False
        )[:, 0]
    mask = topk_mask(m, k_percent).unsqueeze(1).to(x.device)
    return torch.where(mask, erase_value(x, erase), x)


@torch.no_grad()
def faithfulness(
    model: nn.Module,
    x: torch.Tensor,
    maps,
    target: torch.Tensor,
    k_percent: float = 20.0,
    erase: str | float = "zero",
    probs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Confidence drop p_t(x) - p_t(x erased at the top-k% of ``maps``), per sample.

    ``probs`` (N, classes) may pass the already known softmax of ``x`` to save a forward pass.
    """
    device = model_device(model)
    x = x.detach().to(device).float()
    t = torch.as_tensor(target).long().view(-1, 1).to(device)
    erased = erase_topk(x, maps, k_percent, erase)
    with inference_guard(model, freeze_params=False):
        if probs is None:
            probs = model(x).softmax(1)
        p_erased = model(erased).softmax(1)
    before = probs.to(device).gather(1, t)[:, 0]
    after = p_erased.gather(1, t)[:, 0]
    return (before - after).float().cpu()


PAIR_METRICS = {
    "iou": "top-k% IoU",
    "pearson": "Pearson r",
    "spearman": "Spearman rho",
    "com_shift": "centre-of-mass shift (px)",
}
MAP_METRICS = {"components": "connected components", "entropy": "entropy (normalised)", "area": "attended area"}


def shift_metrics(clean, adv, k_percent: float = 20.0, threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """Every map-only metric at once, per sample: the pair metrics and each map's scatter and area.

    Keys: ``iou, pearson, spearman, com_shift`` and ``components_clean, components_adv,
    entropy_clean, entropy_adv, area_clean, area_adv``.
    """
    clean, adv = _pair(clean, adv)
    check_percent(k_percent)
    check_fraction(threshold)
    out = {
        "iou": topk_iou(clean, adv, k_percent),
        "pearson": pearson(clean, adv),
        "spearman": spearman(clean, adv),
        "com_shift": com_shift(clean, adv),
    }
    for tag, m in (("clean", clean), ("adv", adv)):
        out[f"components_{tag}"] = connected_components(m, threshold).float()
        out[f"entropy_{tag}"] = entropy(m)
        out[f"area_{tag}"] = attended_area(m, threshold)
    return out
