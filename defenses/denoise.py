"""Feature-denoising operators on (N, C, H, W) feature maps, as plain differentiable torch functions.

Xie et al., "Feature Denoising for Improving Adversarial Robustness" (CVPR 2019, arXiv 1812.03411),
wrap one of these operators D in a residual block y = x + BN(Conv1x1(D(x))) (methods.md, section 2);
the trainable block of a later issue reuses the functions here. Let x_i in R^C be the feature
vector at position i and N = H*W:

* **Non-local means**, y_i = sum_j w(x_i, x_j) x_j / C(x):
  - ``"gaussian"``: w_ij = softmax_j(x_i . x_j / sqrt(C));
  - ``"embedded_gaussian"``: w_ij = softmax_j(theta(x_i) . phi(x_j) / sqrt(C')), theta and phi being
    1x1 embeddings to C' channels (the paper uses C' = C/2);
  - ``"dot_product"``: w_ij = x_i . x_j, normalised by N.
  The 1/sqrt(C) temperature follows the authors' released code (``non_local_op`` in
  facebookresearch/ImageNet-Adversarial-Training); ``scale=False`` drops it. The dot-product form
  is computed as theta (phi^T g) / N when C < N, which is O(N C^2) instead of O(N^2 C).
* **Mean filter**: the k x k box average, borders reflected as OpenCV's default
  (BORDER_REFLECT_101), so it equals ``cv2.blur`` on each channel.
* **Median filter**: the k x k median, borders replicated as ``cv2.medianBlur`` does.
* **Bilateral filter**: y_i = sum_j w_ij x_j / sum_j w_ij over the window j in Omega(i),
  w_ij = exp(-|p_i - p_j|^2 / (2 s_s^2)) * exp(-||x_i - x_j||^2 / (2 s_r^2)), the range term on the
  whole feature vector (joint over channels); the window is the disc of radius k//2 and borders
  are reflected (BORDER_REFLECT_101), as in ``cv2.bilateralFilter``. Without ``sigma_color``,
  s_r = std(x) * sqrt(C) per sample (features have no fixed scale; see :func:`color_scale`).

**Noise-suppression ratio**: rho = ||D(f(x_adv)) - D(f(x))||_2 / ||f(x_adv) - f(x)||_2 per sample
(< 1: the operator shrinks the adversarial noise). Any smoothing also shrinks the signal, so
:func:`relative_suppression` divides by the signal kept: (||D(fa) - D(fc)|| / ||D(fc)||) /
(||fa - fc|| / ||fc||), which is < 1 only when noise shrinks more than the features do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from advlens.registry import Registry

NONLOCAL_MODES = ("gaussian", "embedded_gaussian", "dot_product")


def _check(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"feature maps must be a tensor N x C x H x W, got {getattr(x, 'shape', type(x))}")
    if not x.is_floating_point():
        x = x.float()
    return x


def _odd_kernel(k: int) -> int:
    if int(k) != k or k < 1 or k % 2 == 0:
        raise ValueError(f"the kernel size must be an odd positive integer, got {k}")
    return int(k)


def _embed(e, x: torch.Tensor) -> torch.Tensor:
    """Apply a 1x1 embedding: a callable (e.g. an ``nn.Conv2d``), or weights (C', C) / (C', C, 1, 1)."""
    if e is None:
        return x
    if callable(e) and not isinstance(e, torch.Tensor):
        return e(x)
    w = torch.as_tensor(e, dtype=x.dtype, device=x.device)
    if w.ndim == 2:
        w = w[:, :, None, None]
    if w.ndim != 4 or w.shape[1] != x.shape[1] or w.shape[2:] != (1, 1):
        raise ValueError(
            f"embedding weights must be (C', {x.shape[1]}) or (C', {x.shape[1]}, 1, 1), got {tuple(w.shape)}"
        )
    return F.conv2d(x, w)


def nonlocal_means(x: torch.Tensor, mode: str = "gaussian", theta=None, phi=None, scale: bool = True) -> torch.Tensor:
    """Non-local means over all positions (formulas in the module docstring) -> same shape as ``x``.

    ``theta``/``phi`` (embedded Gaussian, also accepted by the dot product): callables mapping
    (N, C, H, W) -> (N, C', H, W), or 1x1 weights. Left out, they are the identity, which makes the
    embedded Gaussian equal to the Gaussian.
    """
    x = _check(x)
    if mode not in NONLOCAL_MODES:
        raise ValueError(f"mode must be one of {', '.join(NONLOCAL_MODES)}, not {mode!r}")
    n, c, h, w = x.shape
    g = x.reshape(n, c, h * w)
    th = _embed(theta, x) if mode != "gaussian" else x
    ph = _embed(phi, x) if mode != "gaussian" else x
    if th.shape[1] != ph.shape[1] or th.shape[2:] != x.shape[2:] or ph.shape[2:] != x.shape[2:]:
        raise ValueError("theta and phi must map to the same number of channels and keep H x W")
    ce = th.shape[1]
    th = th.reshape(n, ce, h * w)
    ph = ph.reshape(n, ce, h * w)
    if mode == "dot_product":
        if ce > h * w:
            f = torch.einsum("nci,ncj->nij", th, ph)
            out = torch.einsum("nij,ndj->ndi", f, g)
        else:
            m = torch.einsum("ncj,ndj->ncd", ph, g)
            out = torch.einsum("nci,ncd->ndi", th, m)
        out = out / (h * w)
    else:
        f = torch.einsum("nci,ncj->nij", th, ph)
        if scale:
            f = f / math.sqrt(ce)
        out = torch.einsum("nij,ndj->ndi", f.softmax(dim=-1), g)
    return out.reshape(n, c, h, w)


def _reflect_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    if r == 0:
        return x
    if r >= x.shape[-1] or r >= x.shape[-2]:
        raise ValueError(f"a {2 * r + 1}x{2 * r + 1} window is too large for {x.shape[-2]}x{x.shape[-1]} feature maps")
    return F.pad(x, (r, r, r, r), mode="reflect")


def mean_filter(x: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """k x k box filter per channel, BORDER_REFLECT_101 (= ``cv2.blur``'s default border)."""
    x = _check(x)
    k = _odd_kernel(kernel_size)
    return F.avg_pool2d(_reflect_pad(x, k // 2), k, stride=1)


def median_filter(x: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """k x k median per channel, borders replicated (= ``cv2.medianBlur``)."""
    x = _check(x)
    k = _odd_kernel(kernel_size)
    n, c, h, w = x.shape
    r = k // 2
    padded = F.pad(x, (r, r, r, r), mode="replicate") if r else x
    patches = F.unfold(padded, k).reshape(n, c, k * k, h * w)
    return patches.median(dim=2).values.reshape(n, c, h, w)


def bilateral_filter(
    x: torch.Tensor, kernel_size: int = 5, sigma_space: float = 1.5, sigma_color: float | torch.Tensor | None = None
) -> torch.Tensor:
    """Edge-preserving bilateral filter, joint over channels (formula in the module docstring).

    ``sigma_color`` may be a number, a tensor (N,) (one per sample), or None (each sample's std).
    """
    x = _check(x)
    k = _odd_kernel(kernel_size)
    if sigma_space <= 0:
        raise ValueError("sigma_space must be positive")
    if sigma_color is not None and bool((torch.as_tensor(sigma_color) <= 0).any()):
        raise ValueError("sigma_color must be positive")
    n, c, h, w = x.shape
    r = k // 2
    patches = F.unfold(_reflect_pad(x, r), k).reshape(n, c, k * k, h * w)
    center = x.reshape(n, c, 1, h * w)
    dist2 = (patches - center).pow(2).sum(1, keepdim=True)  # (N, 1, K, HW)
    if sigma_color is None:
        s_r = color_scale(x).view(n, 1, 1, 1)
    else:
        s_r = torch.as_tensor(sigma_color, dtype=x.dtype, device=x.device)
        s_r = s_r.view(n, 1, 1, 1) if s_r.numel() == n and s_r.ndim == 1 else s_r.reshape(())
    dy, dx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    pos2 = (dy.pow(2) + dx.pow(2)).reshape(1, 1, k * k, 1).to(x)
    spatial = torch.exp(-pos2 / (2 * sigma_space**2)) * (pos2 <= r * r).to(x)
    weights = spatial * torch.exp(-dist2 / (2 * s_r**2))
    out = (weights * patches).sum(2) / weights.sum(2)
    return out.reshape(n, c, h, w)


def color_scale(x: torch.Tensor) -> torch.Tensor:
    """The default range sigma of the bilateral filter, per sample (N,): std(x) * sqrt(C).

    Two feature vectors of C channels with values spread by std(x) lie about std(x) * sqrt(2C) apart,
    so this sigma weighs a typical neighbour by about exp(-1); a sigma of std(x) alone would give
    exp(-C) and leave the filter an identity on wide layers.
    """
    c = x.shape[1]
    return (x.detach().flatten(1).std(dim=1) * math.sqrt(c)).clamp(min=1e-12)


_NL_GAUSS = "y_i = sum_j softmax_j(x_i . x_j / sqrt(C)) x_j"
_NL_DOT = "y_i = (1/N) sum_j (x_i . x_j) x_j"


@dataclass(frozen=True)
class Operator:
    name: str
    label: str
    fn: Callable[..., torch.Tensor]
    defaults: dict
    description: str


_BILATERAL = {"kernel_size": 5, "sigma_space": 1.5, "sigma_color": None}
OPERATORS: Registry[Operator] = Registry(
    "denoising operator",
    (
        Operator("nonlocal_gaussian", "Non-local means (Gaussian)", nonlocal_means, {"mode": "gaussian"}, _NL_GAUSS),
        Operator("nonlocal_dot", "Non-local means (dot product)", nonlocal_means, {"mode": "dot_product"}, _NL_DOT),
        Operator("mean", "Mean filter", mean_filter, {"kernel_size": 3}, "k x k box average"),
        Operator("median", "Median filter", median_filter, {"kernel_size": 3}, "k x k median"),
        Operator("bilateral", "Bilateral filter", bilateral_filter, _BILATERAL, "spatial x range Gaussian weights"),
    ),
    ValueError,
)


def get_operator(name: str) -> Operator:
    return OPERATORS.lookup(name)


def denoise(x: torch.Tensor, operator: str = "nonlocal_gaussian", **params) -> torch.Tensor:
    """Apply the named operator with its defaults overridden by ``params``."""
    op = get_operator(operator)
    unknown = set(params) - set(op.defaults) - ({"theta", "phi", "scale"} if op.fn is nonlocal_means else set())
    if unknown:
        raise ValueError(f"{op.label} has no parameter {sorted(unknown)[0]!r}")
    return op.fn(x, **{**op.defaults, **params})


def _norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def shared_params(operator: str, f_clean: torch.Tensor, params: dict) -> dict:
    """Parameters that must be equal for the clean and adversarial features: the bilateral filter's
    default range sigma is taken from the *clean* features, so D is the same operator on both."""
    if operator == "bilateral" and params.get("sigma_color") is None:
        return {**params, "sigma_color": color_scale(_check(f_clean))}
    return params


def _operator(operator, f_clean, params):
    if not isinstance(operator, str):
        return operator
    params = shared_params(operator, f_clean, params)
    return lambda t: denoise(t, operator, **params)


def suppression_ratio(
    f_clean: torch.Tensor, f_adv: torch.Tensor, operator: str | Callable = "nonlocal_gaussian", **params
) -> torch.Tensor:
    """rho = ||D(f_adv) - D(f_clean)|| / ||f_adv - f_clean|| per sample (NaN where f_adv == f_clean)."""
    d = _operator(operator, f_clean, params)
    f_clean, f_adv = _check(f_clean), _check(f_adv)
    before = _norms(f_adv - f_clean)
    after = _norms(d(f_adv) - d(f_clean))
    ratio = after / before.clamp(min=1e-30)
    return torch.where(before > 0, ratio, torch.full_like(ratio, float("nan")))


def relative_suppression(
    f_clean: torch.Tensor, f_adv: torch.Tensor, operator: str | Callable = "nonlocal_gaussian", **params
) -> torch.Tensor:
    """(||D(fa) - D(fc)|| / ||D(fc)||) / (||fa - fc|| / ||fc||): noise shrinkage net of signal shrinkage."""
    d = _operator(operator, f_clean, params)
    f_clean, f_adv = _check(f_clean), _check(f_adv)
    dc, da = d(f_clean), d(f_adv)
    before = _norms(f_adv - f_clean) / _norms(f_clean).clamp(min=1e-30)
    after = _norms(da - dc) / _norms(dc).clamp(min=1e-30)
    ratio = after / before.clamp(min=1e-30)
    return torch.where(before > 0, ratio, torch.full_like(ratio, float("nan")))
