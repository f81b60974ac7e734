"""Input-transform defenses (methods.md, section 3), each a small :class:`~advlens.transforms.InputTransform`.

| token | what | differentiable | random | BPDA's backward pass |
|---|---|---|---|---|
| ``jpeg75`` | JPEG at quality 75 (OpenCV), Das et al. 2017; Guo et al. 2018 used 75 | no | no | the identity |
| ``bits3`` | bit-depth reduction to 3 bits, Xu et al. 2018 (feature squeezing) | no | no | the identity |
| ``median3`` | 3x3 median filter (OpenCV), Xu et al. 2018 | no | no | (identity + the median in torch) / 2 |
| ``rrp0.1`` | random resize-and-pad (OpenCV), Xie et al. 2018: shrink by up to 10%, pad back at a random offset | no | yes | the same resize and pad in torch |
| ``noise0.25`` | Gaussian noise of std 0.25 (randomized smoothing's noise) | yes | yes | |
| ``mean3``, ``bilateral5``, ``nlmeans``, ``nldot`` | the feature-denoising operators of :mod:`defenses.denoise`, on the input | yes | no | |

The OpenCV operations run on the CPU on 8-bit (JPEG) or float images, one image at a time, so a
plain attack gets no gradient through them; BPDA (Athalye et al. 2018) differentiates the torch
stand-in. The random resize-and-pad draws its sizes and offsets from torch's generator, so a seeded
run repeats, and its torch stand-in uses the same draw as the forward pass.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from advlens.params import Param
from advlens.transforms import InputTransform, TransformError, register_transform

from . import denoise


def _images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) tensor -> (N, H, W, C) float32 array on the CPU."""
    return x.detach().permute(0, 2, 3, 1).to("cpu", torch.float32).numpy()


def _tensor(arr: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).to(like.device, like.dtype)


def _as_hwc(img: np.ndarray, channels: int) -> np.ndarray:
    return img.reshape(img.shape[0], img.shape[1], channels)


@register_transform
class JPEG(InputTransform):
    name = "jpeg"
    title = "JPEG compression"
    paper = "Das et al. 2017, arXiv 1705.02900"
    setting = Param("quality", int, 75, 1, 100, help="JPEG quality (100: least loss)")

    def apply(self, x, draw):
        arrs = np.clip(np.rint(_images(x) * 255.0), 0, 255).astype(np.uint8)
        out = np.empty(arrs.shape, np.float32)
        c = arrs.shape[-1]
        for i, img in enumerate(arrs):
            img = img[..., 0] if c == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(self.value)])
            if not ok:
                raise TransformError("OpenCV could not encode the image as JPEG")
            dec = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if c == 1 else cv2.IMREAD_COLOR)
            dec = dec if c == 1 else cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)
            out[i] = _as_hwc(dec, c).astype(np.float32) / 255.0
        return _tensor(out, x)


@register_transform
class BitDepth(InputTransform):
    name = "bits"
    title = "Bit-depth reduction"
    paper = "Xu et al. 2018 (feature squeezing), arXiv 1704.01155"
    setting = Param("bits", int, 3, 1, 8, help="bits per channel kept")

    def apply(self, x, draw):
        levels = 2 ** int(self.value) - 1
        return torch.round(x * levels) / levels


@register_transform
class Median(InputTransform):
    name = "median"
    title = "Median filter"
    paper = "Xu et al. 2018 (feature squeezing), arXiv 1704.01155"
    setting = Param("size", int, 3, 3, 5, help="window side (3 or 5)", choices=(3, 5))
    approximation = "the average of the identity and the median in torch"

    def apply(self, x, draw):
        arrs = _images(x)
        c = arrs.shape[-1]
        out = np.stack([_as_hwc(cv2.medianBlur(np.ascontiguousarray(img), int(self.value)), c) for img in arrs])
        return _tensor(out, x)

    def approximate(self, x, draw):
        """(x + median(x)) / 2. The median's own gradient reaches one pixel of each window, too sparse
        for sign steps (PGD-40 left 34% standing on the digits at eps 0.1, against 21% with this)."""
        return 0.5 * (x + denoise.median_filter(x, int(self.value)))


@register_transform
class ResizePad(InputTransform):
    name = "rrp"
    title = "Random resize-and-pad"
    paper = "Xie et al. 2018, arXiv 1711.01991"
    random = True
    setting = Param("shrink", float, 0.1, 0.01, 0.5, help="shrink each image by up to this fraction of its side")
    approximation = "the same resize and pad (same draw) in torch"

    def sample(self, x):
        """Per image: (new height, new width, top, left), the image keeping its aspect ratio."""
        n, _, h, w = x.shape
        scales = 1.0 - float(self.value) * torch.rand(n)
        draws = []
        for s in scales.tolist():
            rh, rw = max(1, round(h * s)), max(1, round(w * s))
            top = int(torch.randint(0, h - rh + 1, ()))
            left = int(torch.randint(0, w - rw + 1, ()))
            draws.append((rh, rw, top, left))
        return draws

    def apply(self, x, draw):
        arrs = _images(x)
        out = np.zeros_like(arrs)
        c = arrs.shape[-1]
        for i, (rh, rw, top, left) in enumerate(draw):
            small = cv2.resize(np.ascontiguousarray(arrs[i]), (rw, rh), interpolation=cv2.INTER_LINEAR)
            out[i, top : top + rh, left : left + rw] = _as_hwc(small, c)
        return _tensor(out, x)

    def approximate(self, x, draw):
        h, w = x.shape[-2:]
        rows = []
        for i, (rh, rw, top, left) in enumerate(draw):
            small = F.interpolate(x[i : i + 1], size=(rh, rw), mode="bilinear", align_corners=False)
            rows.append(F.pad(small, (left, w - rw - left, top, h - rh - top)))
        return torch.cat(rows)


@register_transform
class GaussianNoise(InputTransform):
    name = "noise"
    title = "Gaussian noise"
    paper = "Cohen, Rosenfeld and Kolter 2019 (randomized smoothing), arXiv 1902.02918"
    differentiable = True
    random = True
    setting = Param("sigma", float, 0.25, 0.001, 2.0, help="standard deviation of the noise (pixels in [0,1])")

    def apply(self, x, draw):
        return x + float(self.value) * torch.randn_like(x)


class _Denoiser(InputTransform):
    """A feature-denoising operator of :mod:`defenses.denoise` applied to the image itself."""

    differentiable = True
    paper = "Xie et al. 2019 (feature denoising), arXiv 1812.03411"
    operator = ""
    max_positions = 0  # the non-local operators compare every pair of pixels: cap the image size

    def check_input(self, input_size):
        if self.max_positions and input_size[1] * input_size[2] > self.max_positions:
            side = int(math.sqrt(self.max_positions))
            raise TransformError(f"{self.name} compares every pair of pixels: images up to {side}x{side} only")

    def apply(self, x, draw):
        self.check_input(tuple(x.shape[1:]))
        params = {"kernel_size": int(self.value)} if self.value is not None else {}
        return denoise.denoise(x, self.operator, **params)


@register_transform
class MeanFilter(_Denoiser):
    name = "mean"
    title = "Mean filter"
    operator = "mean"
    setting = Param("size", int, 3, 3, 7, help="window side (odd)", choices=(3, 5, 7))


@register_transform
class Bilateral(_Denoiser):
    name = "bilateral"
    title = "Bilateral filter"
    operator = "bilateral"
    setting = Param("size", int, 5, 3, 7, help="window side (odd)", choices=(3, 5, 7))


@register_transform
class NonLocalGaussian(_Denoiser):
    name = "nlmeans"
    title = "Non-local means (Gaussian)"
    operator = "nonlocal_gaussian"
    max_positions = 64 * 64


@register_transform
class NonLocalDot(_Denoiser):
    name = "nldot"
    title = "Non-local means (dot product)"
    operator = "nonlocal_dot"
