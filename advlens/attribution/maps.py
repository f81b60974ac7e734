"""One entry point for every attribution method: :func:`compute_map`.

``compute_map(model, x, method, layer, target) -> Tensor (N, H, W)`` at the input resolution,
non-negative, on the CPU. ``layer`` matters for the CAM methods only (default: the model's
``default_cam_layer()``); ``target`` is a class index or a per-sample LongTensor (N,). The model
is put in eval mode for the call and its parameters receive no gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..registry import Registry
from . import cam, saliency

_IG = "|sum_c IG_c| from a black baseline (Sundararajan et al. 2017)"
_SMOOTHGRAD = "gradient saliency averaged over Gaussian-noised copies (Smilkov et al. 2017)"


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    uses_layer: bool
    fn: Callable[..., torch.Tensor]
    description: str


METHODS: Registry[Method] = Registry(
    "attribution method",
    (
        Method("gradcam", "Grad-CAM", True, cam.gradcam, "ReLU(sum_k mean(dS/dA^k) A^k) on a conv layer, upsampled"),
        Method(
            "gradcam++", "Grad-CAM++", True, cam.gradcam_plus_plus, "2nd/3rd-order pixel weights (Chattopadhay 2018)"
        ),
        Method("layercam", "LayerCAM", True, cam.layercam, "ReLU(sum_k ReLU(dS/dA^k_ij) A^k_ij) (Jiang et al. 2021)"),
        Method("saliency", "Saliency", False, saliency.saliency, "max over channels of |dS/dx| (Simonyan et al. 2014)"),
        Method("integrated_gradients", "Integrated Gradients", False, saliency.integrated_gradients, _IG),
        Method("smoothgrad", "SmoothGrad", False, saliency.smoothgrad, _SMOOTHGRAD),
    ),
    ValueError,
)


def get_method(name: str) -> Method:
    return METHODS.lookup(name)


def compute_map(
    model: nn.Module,
    x: torch.Tensor,
    method: str = "gradcam",
    layer: str | None = None,
    target: int | torch.Tensor = 0,
    **options,
) -> torch.Tensor:
    """Attribution maps (N, H, W) of ``method`` for the class ``target``; see :data:`METHODS`.

    ``options`` go to the method (e.g. ``n_steps`` for integrated gradients, ``nt_samples`` and
    ``stdev`` for SmoothGrad, ``upsample_mode`` or ``relu`` for Grad-CAM).
    """
    m = get_method(method)
    maps = m.fn(model, x, target, layer=layer, **options) if m.uses_layer else m.fn(model, x, target, **options)
    return maps.detach().float().cpu()
