"""Pixel-level attribution maps through captum, reduced to one map (N, H, W) per image.

* **Saliency** (Simonyan et al. 2014, arXiv 1312.6034): |dS_t/dx|, max over colour channels.
* **Integrated Gradients** (Sundararajan et al. 2017, arXiv 1703.01365):
  IG_i(x) = (x_i - x'_i) * integral_0^1 dS_t(x' + a (x - x')) / dx_i da, with the black image x' = 0
  as baseline (``n_steps`` Gauss-Legendre points); the map is |sum over channels of IG|.
* **SmoothGrad** (Smilkov et al. 2017, arXiv 1706.03825) through captum's ``NoiseTunnel``:
  the mean of |dS_t/dx| over ``nt_samples`` copies x + N(0, stdev^2) (stdev in [0,1] pixel
  units), max over colour channels.
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
from torch import nn

from ..models.modes import model_device
from .hooks import inference_guard
from .targets import as_target_tensor


def _prepare(model: nn.Module, x: torch.Tensor, target):
    if x.ndim != 4:
        raise ValueError(f"images must be a batch N x C x H x W, got shape {tuple(x.shape)}")
    device = model_device(model)
    t = as_target_tensor(target, x.shape[0], getattr(model, "num_classes", None), device)
    return x.detach().to(device).float().requires_grad_(True), t


def saliency(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """Vanilla gradient saliency, max_c |dS_t / dx_c| -> (N, H, W)."""
    x, t = _prepare(model, x, target)
    with inference_guard(model):
        attr = Saliency(model).attribute(x, target=t, abs=True)
    return attr.detach().amax(dim=1)


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target,
    n_steps: int = 32,
    baseline: float = 0.0,
    internal_batch_size: int | None = 64,
) -> torch.Tensor:
    """|sum_c IG_c(x)| with a constant baseline image (black by default) -> (N, H, W)."""
    if n_steps < 1:
        raise ValueError("n_steps must be at least 1")
    x, t = _prepare(model, x, target)
    with inference_guard(model):
        attr = IntegratedGradients(model).attribute(
            x,
            baselines=float(baseline),
            target=t,
            n_steps=int(n_steps),
            method="gausslegendre",
            internal_batch_size=internal_batch_size,
        )
    return attr.detach().sum(dim=1).abs()


def smoothgrad(
    model: nn.Module, x: torch.Tensor, target, nt_samples: int = 16, stdev: float = 0.1, seed: int | None = 0
) -> torch.Tensor:
    """SmoothGrad: mean over noisy copies of |dS_t/dx|, max over channels -> (N, H, W).

    ``seed`` fixes the noise so the clean and adversarial maps are drawn with the same noise.
    """
    if nt_samples < 1:
        raise ValueError("nt_samples must be at least 1")
    if stdev < 0:
        raise ValueError("stdev must be non-negative")
    x, t = _prepare(model, x, target)
    with inference_guard(model):
        state = torch.random.get_rng_state()
        if seed is not None:
            torch.manual_seed(seed)
        try:
            attr = NoiseTunnel(Saliency(model)).attribute(
                x,
                nt_type="smoothgrad",
                nt_samples=int(nt_samples),
                stdevs=float(stdev),
                target=t,
                abs=True,
                nt_samples_batch_size=min(int(nt_samples), 16),
            )
        finally:
            torch.random.set_rng_state(state)
    return attr.detach().amax(dim=1)
