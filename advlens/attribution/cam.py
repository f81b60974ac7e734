"""Class activation maps on a conv layer: Grad-CAM, Grad-CAM++ and a differentiable Grad-CAM.

Notation: A^k (h x w) is channel k of the chosen layer's output, S_t the logit of the target class
t, g^k = dS_t / dA^k its gradient.

* **Grad-CAM** (Selvaraju et al. 2017, arXiv 1610.02391), through captum's ``LayerGradCam``:
  alpha_k = mean_ij g^k_ij,  L = ReLU(sum_k alpha_k A^k).
* **Grad-CAM++** (Chattopadhay et al. 2018, arXiv 1710.11063, Eq. 19), our own implementation:
  a^k_ij = (g^k_ij)^2 / (2 (g^k_ij)^2 + sum_ab A^k_ab (g^k_ij)^3)   (0 where g^k_ij = 0),
  w_k = sum_ij a^k_ij ReLU(g^k_ij),  L = ReLU(sum_k w_k A^k).
  The paper differentiates Y = exp(S_t); for a piecewise-linear network the exp factors cancel in
  a^k_ij and leave exp(S_t) > 0 as one per-image factor in w_k, which we drop (as the authors' and
  most public implementations do): it scales each map by a constant and changes no normalised map.
* **LayerCAM** (Jiang et al. 2021, IEEE TIP 30, Eq. 5-6), our own implementation: each position
  weighted by its own positive gradient, L = ReLU(sum_k ReLU(g^k_ij) A^k_ij). It stays non-empty
  where Grad-CAM's channel means cancel out, and works on shallow layers.
* **Differentiable Grad-CAM** (:func:`differentiable_gradcam`): the same map built with
  ``torch.autograd.grad(..., create_graph=True)``, so it carries gradients to the model weights.
  Attention-preserving training (Wu et al., arXiv 1811.09831) trains through it. Options follow
  the authors' code (methods.md, section 2): RMS-normalised gradients
  g <- g / sqrt(mean(g^2) + 1e-10) per image, a ReLU or a spatial-softmax map, and per-image
  normalisation.

Layer maps (h x w) are upsampled to the input size with
``captum.attr.LayerAttribution.interpolate`` (bilinear unless told otherwise).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from ..models.modes import model_device, model_lock
from .hooks import LayerError, inference_guard, resolve_layer
from .targets import as_target_tensor

UPSAMPLE_MODES = ("bilinear", "nearest", "bicubic", "area")


def _prepare(model: nn.Module, x: torch.Tensor, target, layer: str | None):
    if x.ndim != 4:
        raise ValueError(f"images must be a batch N x C x H x W, got shape {tuple(x.shape)}")
    name = layer or model.default_cam_layer()
    module = resolve_layer(model, name)
    device = model_device(model)
    t = as_target_tensor(target, x.shape[0], getattr(model, "num_classes", None), device)
    return name, module, x.detach().to(device).float(), t


def _in_program_batches(method):
    """``method(model, x, target, layer, ...)`` called with exactly the program's batch at a time on a
    program exported with a fixed batch (:func:`advlens.models.exported.in_program_batches`): its
    forward runs a larger input in slices, and the layer hook would keep the last slice's output only."""

    @functools.wraps(method)
    def run(model: nn.Module, x: torch.Tensor, target, layer: str | None = None, **options) -> torch.Tensor:
        from ..models.exported import in_program_batches

        return in_program_batches(model, x, target, lambda xs, ts: method(model, xs, ts, layer, **options))

    return run


def upsample(maps: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """(N, 1, h, w) layer maps -> (N, 1, H, W) via ``LayerAttribution.interpolate``."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"unknown upsampling mode {mode!r}; use one of {', '.join(UPSAMPLE_MODES)}")
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return LayerAttribution.interpolate(maps, tuple(size), interpolate_mode=mode)


@_in_program_batches
def gradcam(
    model: nn.Module,
    x: torch.Tensor,
    target,
    layer: str | None = None,
    relu: bool = True,
    upsample_mode: str | None = "bilinear",
) -> torch.Tensor:
    """Grad-CAM maps (N, H, W) through captum's ``LayerGradCam`` (``upsample_mode=None``: layer size)."""
    _, module, x, t = _prepare(model, x, target, layer)
    with inference_guard(model):
        maps = LayerGradCam(model, module).attribute(x, target=t, relu_attributions=relu)
    maps = maps.detach()
    if maps.ndim != 4:
        raise LayerError(
            f"layer {layer or model.default_cam_layer()!r} is not a spatial map (its Grad-CAM has "
            f"shape {tuple(maps.shape)}); pick a conv layer"
        )
    if upsample_mode is not None:
        maps = upsample(maps, x.shape[-2:], upsample_mode)
    return maps[:, 0]


def activations_and_gradients(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, module: nn.Module, create_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward and one backward pass: (A, dS_t/dA, logits) for the layer ``module``.

    ``target`` is a LongTensor (N,). With ``create_graph`` the gradient is itself differentiable.
    """
    store: dict[str, torch.Tensor] = {}

    def hook(_m, _i, out):
        store["a"] = out[0] if isinstance(out, (tuple, list)) else out

    with model_lock(model):  # the hook lives only while this call holds the model
        handle = module.register_forward_hook(hook)
        try:
            if not x.requires_grad and not any(p.requires_grad for p in model.parameters()):
                x = x.requires_grad_(True)  # something must require grad for the layer output to have a graph
            logits = model(x)
        finally:
            handle.remove()
    if "a" not in store:
        raise LayerError("the chosen layer was not used in the forward pass")
    acts = store["a"]
    if acts.ndim != 4:
        raise LayerError(
            f"the chosen layer's output is not a spatial map (shape {tuple(acts.shape)}); pick a conv layer"
        )
    score = logits.gather(1, target.view(-1, 1)).sum()
    (grads,) = torch.autograd.grad(score, acts, create_graph=create_graph)
    return acts, grads, logits


@_in_program_batches
def gradcam_plus_plus(
    model: nn.Module, x: torch.Tensor, target, layer: str | None = None, upsample_mode: str | None = "bilinear"
) -> torch.Tensor:
    """Grad-CAM++ maps (N, H, W); formula in the module docstring."""
    _, module, x, t = _prepare(model, x, target, layer)
    with inference_guard(model):
        acts, grads, _ = activations_and_gradients(model, x, t, module)
    acts, grads = acts.detach(), grads.detach()
    g2 = grads.pow(2)
    g3 = grads.pow(3)
    denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(grads != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(g2))
    weights = (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
    maps = F.relu((weights * acts).sum(dim=1, keepdim=True))
    if upsample_mode is not None:
        maps = upsample(maps, x.shape[-2:], upsample_mode)
    return maps[:, 0]


@_in_program_batches
def layercam(
    model: nn.Module, x: torch.Tensor, target, layer: str | None = None, upsample_mode: str | None = "bilinear"
) -> torch.Tensor:
    """LayerCAM maps (N, H, W); formula in the module docstring."""
    _, module, x, t = _prepare(model, x, target, layer)
    with inference_guard(model):
        acts, grads, _ = activations_and_gradients(model, x, t, module)
    maps = F.relu((F.relu(grads.detach()) * acts.detach()).sum(dim=1, keepdim=True))
    if upsample_mode is not None:
        maps = upsample(maps, x.shape[-2:], upsample_mode)
    return maps[:, 0]


@dataclass
class DifferentiableCam:
    """Maps (N, H, W) that carry gradients to the weights, with the forward pass's logits."""

    maps: torch.Tensor
    logits: torch.Tensor
    layer_maps: torch.Tensor  # (N, h, w), before upsampling


def differentiable_gradcam(
    model: nn.Module,
    x: torch.Tensor,
    target,
    layer: str | None = None,
    *,
    variant: str = "relu",
    rms_grad: bool = False,
    normalize: str | None = None,
    upsample_mode: str | None = "bilinear",
    eps: float = 1e-10,
) -> DifferentiableCam:
    """Grad-CAM built with double backprop: d(map)/d(weights) exists.

    ``variant``: ``"relu"`` gives ReLU(sum_k alpha_k A^k); ``"softmax"`` gives the spatial softmax
    exp(z_ij) / sum_ab exp(z_ab) of z = sum_k alpha_k A^k (the form of Wu et al.'s code).
    ``rms_grad``: g <- g / sqrt(mean(g^2) + eps) per image before the channel weights.
    ``normalize``: None, ``"max"`` (map / max) or ``"minmax"`` ((map - min) / (max - min)), per image.
    The model's train/eval mode is left as the caller set it (a trainer may call this in train mode).
    """
    if variant not in {"relu", "softmax"}:
        raise ValueError(f"variant must be 'relu' or 'softmax', not {variant!r}")
    if normalize not in {None, "max", "minmax"}:
        raise ValueError(f"normalize must be None, 'max' or 'minmax', not {normalize!r}")
    _, module, x, t = _prepare(model, x, target, layer)
    acts, grads, logits = activations_and_gradients(model, x, t, module, create_graph=True)
    if rms_grad:
        grads = grads / torch.sqrt(grads.pow(2).mean(dim=(1, 2, 3), keepdim=True) + eps)
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    z = (alpha * acts).sum(dim=1)  # (N, h, w)
    if variant == "relu":
        layer_maps = F.relu(z)
    else:
        n, h, w = z.shape
        layer_maps = torch.softmax(z.reshape(n, h * w), dim=1).reshape(n, h, w)
    maps = layer_maps.unsqueeze(1)
    if upsample_mode is not None:
        maps = upsample(maps, x.shape[-2:], upsample_mode)
    maps = maps[:, 0]
    if normalize is not None:
        flat = maps.reshape(maps.shape[0], -1)
        hi = flat.max(dim=1).values.view(-1, 1, 1)
        if normalize == "max":
            maps = maps / (hi + eps)
        else:
            lo = flat.min(dim=1).values.view(-1, 1, 1)
            maps = (maps - lo) / (hi - lo + eps)
    return DifferentiableCam(maps, logits, layer_maps)
