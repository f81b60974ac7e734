"""The denoising view: a denoising operator applied to one layer's clean and adversarial features.

It shows the observation behind feature denoising (Xie et al., arXiv 1812.03411): the
perturbation appears as noise in the feature maps, and a denoising operator D shrinks it. For the
chosen layer it returns the features f(x), f(x_adv), their denoised versions, the noise-suppression
ratio ||D(fa) - D(fc)|| / ||fa - fc|| and the same ratio net of signal shrinkage (see
:mod:`defenses.denoise`). Optionally it also runs the rest of the network on the denoised features
(the layer's output replaced by D(output)). That substitution is untrained, unlike Xie et al.'s
residual block y = x + BN(Conv1x1(D(x))) learnt by adversarial training, so its predictions only
show what the bare operator does to the decision.

advlens does not import this package; the dashboard imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advlens.attribution.features import clean_and_adv_features
from advlens.attribution.hooks import inference_guard, resolve_layer
from advlens.models.modes import model_device

from .denoise import denoise, get_operator, shared_params

MAX_NONLOCAL_ENTRIES = 2**27  # ~0.5 GB of float32 attention weights


@dataclass
class DenoiseView:
    layer: str
    operator: str
    params: dict
    f_clean: torch.Tensor  # (N, C, H, W)
    f_adv: torch.Tensor
    d_clean: torch.Tensor
    d_adv: torch.Tensor
    ratio: torch.Tensor  # (N,) ||D(fa) - D(fc)|| / ||fa - fc||
    relative_ratio: torch.Tensor  # (N,) the same, each side divided by its clean feature norm
    divergence_before: torch.Tensor  # (N,) ||fa - fc|| / ||fc||
    divergence_after: torch.Tensor  # (N,) ||D(fa) - D(fc)|| / ||D(fc)||
    probs: dict[str, torch.Tensor] | None = None  # "clean", "adv", "clean_denoised", "adv_denoised"


def _norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


@torch.no_grad()
def predictions_with_denoised_layer(
    model: nn.Module, x: torch.Tensor, layer: str, operator: str, **params
) -> torch.Tensor:
    """Softmax of the model when ``layer``'s output is replaced by D(output) (one forward pass)."""
    module = resolve_layer(model, layer)

    def hook(_m, _i, out):
        return denoise(out, operator, **params)  # the batch's own parameters (e.g. bilateral range sigma)

    handle = module.register_forward_hook(hook)
    try:
        with inference_guard(model, freeze_params=False):
            return model(x.to(model_device(model)).float()).softmax(1).cpu()
    finally:
        handle.remove()


def denoise_view(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    layer: str,
    operator: str = "nonlocal_gaussian",
    with_predictions: bool = True,
    **params,
) -> DenoiseView:
    """Features of ``layer`` before and after the operator, for clean and adversarial images."""
    get_operator(operator)
    resolve_layer(model, layer)
    fc, fa = clean_and_adv_features(model, x, x_adv, [layer])
    fc, fa = fc[layer], fa[layer]
    n, _, h, w = fc.shape
    if operator.startswith("nonlocal") and 2 * n * (h * w) ** 2 > MAX_NONLOCAL_ENTRIES:
        raise ValueError(
            f"{layer} has {h}x{w} positions: the non-local operator's {h * w}x{h * w} weight matrix "
            "is too large here; pick a deeper layer or a local filter"
        )
    shared = shared_params(operator, fc, params)
    with torch.no_grad():
        if "sigma_color" in shared and isinstance(shared["sigma_color"], torch.Tensor):
            shared = {**shared, "sigma_color": torch.cat([shared["sigma_color"]] * 2)}
        d = denoise(torch.cat([fc, fa]), operator, **shared)
    dc, da = d[:n], d[n:]
    noise_before, noise_after = _norm(fa - fc), _norm(da - dc)
    div_before = noise_before / _norm(fc).clamp(min=1e-30)
    div_after = noise_after / _norm(dc).clamp(min=1e-30)
    nan = torch.full_like(noise_before, float("nan"))
    ratio = torch.where(noise_before > 0, noise_after / noise_before.clamp(min=1e-30), nan)
    rel = torch.where(div_before > 0, div_after / div_before.clamp(min=1e-30), nan)
    probs = None
    if with_predictions:
        both = torch.cat([x, x_adv])
        with torch.no_grad(), inference_guard(model, freeze_params=False):
            p = model(both.to(model_device(model)).float()).softmax(1).cpu()
        pd = predictions_with_denoised_layer(model, both, layer, operator, **params)
        probs = {"clean": p[:n], "adv": p[n:], "clean_denoised": pd[:n], "adv_denoised": pd[n:]}
    return DenoiseView(layer, operator, dict(params), fc, fa, dc, da, ratio, rel, div_before, div_after, probs)
