"""The attention terms of attention rectification and preservation (Wu et al., ACM TOMM 2023,
arXiv 1811.09831), built on the differentiable Grad-CAM of :mod:`advlens.attribution.cam`.

Attention map (the authors' code; methods reference, section 2): Grad-CAM for the true class y at
a late conv layer, with RMS-normalised gradients g <- g / sqrt(mean(g^2)), the map either the
spatial softmax of z = sum_k alpha_k A^k (the training code) or ReLU(z) (the analysis code),
upsampled to the input size, and normalised per sample (``max``: m / max m; ``minmax``; or
``none``). It is computed with ``create_graph=True``, so the loss trains through it.

- **Mask (attention preservation)**: M = 1[CAM > mean(CAM)] per sample, with no gradient through M;
  x_m = (1 - M) * x + M * v erases the attended region with the fill v (``mean``: the per-channel
  mean of the clean batch, an estimate of the dataset mean from N*H*W pixels per channel; ``grey``:
  0.5; ``zero``). With p = softmax(f(.)):

      L_mask = -mean((p(x) - p(x_m))^2) - mean((p(x_adv) - p(x_adv_m))^2)

  Minimising it makes the prediction change when the attended region is erased: the model must
  rely on the region it attends to.
- **Contrast (attention rectification)**: L_contrast = mean((CAM(x) - CAM(x_adv))^2). The authors
  sum; a sum grows with the batch size and the image size, so we take the mean (the weight was
  retuned accordingly; methods reference).

Default fill ``mean``: the authors erase in the normalised input space, (1 - M) * x_norm, which is
the dataset mean in pixel space; mid-grey on MNIST would paint a bright blob on a black background.
"""

from __future__ import annotations

import torch
from torch import nn

from advlens.attribution.cam import DifferentiableCam, differentiable_gradcam

CAM_VARIANTS = ("softmax", "relu")
CAM_NORMALIZE = ("max", "minmax", "none")
ERASE_FILLS = ("mean", "grey", "zero")


def attention_cam(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layer: str | None = None,
    variant: str = "softmax",
    normalize: str = "max",
    rms_grad: bool = True,
) -> DifferentiableCam:
    """The differentiable attention map of ``x`` for the labels ``y``: ``maps`` (N, H, W) and ``logits``.

    Wraps :func:`advlens.attribution.cam.differentiable_gradcam` (double backprop); the model's
    train/eval mode is left as the caller set it.
    """
    if variant not in CAM_VARIANTS:
        raise ValueError(f"the CAM variant must be one of {', '.join(CAM_VARIANTS)}, not {variant!r}")
    if normalize not in CAM_NORMALIZE:
        raise ValueError(f"the CAM normalisation must be one of {', '.join(CAM_NORMALIZE)}, not {normalize!r}")
    return differentiable_gradcam(
        model,
        x,
        y,
        layer,
        variant=variant,
        rms_grad=rms_grad,
        normalize=None if normalize == "none" else normalize,
        upsample_mode="bilinear",
    )


def attended_mask(maps: torch.Tensor) -> torch.Tensor:
    """M = 1[CAM > mean(CAM)] per sample, as a detached float mask (N, 1, H, W)."""
    m = maps.detach()
    mean = m.flatten(1).mean(1).view(-1, 1, 1)
    return (m > mean).to(m.dtype).unsqueeze(1)


def erase_fill(x: torch.Tensor, fill: str) -> torch.Tensor:
    """The erase value v, broadcastable to ``x`` (N, C, H, W); see the module docstring."""
    if fill == "mean":
        return x.detach().mean(dim=(0, 2, 3), keepdim=True)
    if fill == "grey":
        return torch.full_like(x[:1, :, :1, :1], 0.5)
    if fill == "zero":
        return torch.zeros_like(x[:1, :, :1, :1])
    raise ValueError(f"the erase fill must be one of {', '.join(ERASE_FILLS)}, not {fill!r}")


def erase_attended(x: torch.Tensor, mask: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """x_m = (1 - M) * x + M * v."""
    return (1.0 - mask) * x + mask * value


def mask_loss(p: torch.Tensor, p_masked: torch.Tensor, p_adv: torch.Tensor, p_adv_masked: torch.Tensor) -> torch.Tensor:
    """L_mask = -mean((p(x) - p(x_m))^2) - mean((p(x_adv) - p(x_adv_m))^2), means over samples and classes."""
    return -(p - p_masked).pow(2).mean() - (p_adv - p_adv_masked).pow(2).mean()


def contrast_loss(cam: torch.Tensor, cam_adv: torch.Tensor) -> torch.Tensor:
    """L_contrast = mean((CAM(x) - CAM(x_adv))^2) over samples and pixels."""
    return (cam - cam_adv).pow(2).mean()
