"""Feature-denoising operators against OpenCV and their formulas; the suppression ratio; the view."""

from __future__ import annotations

import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from advlens.attribution import LayerError
from defenses.denoise import (
    OPERATORS,
    bilateral_filter,
    denoise,
    mean_filter,
    median_filter,
    nonlocal_means,
    relative_suppression,
    suppression_ratio,
)
from defenses.denoise_view import denoise_view


@pytest.fixture
def plane():
    """One 9x13 channel with values in [0, 10) (odd sizes catch transposed borders)."""
    torch.manual_seed(0)
    return torch.rand(1, 1, 9, 13) * 10


@pytest.mark.parametrize("k", [3, 5])
def test_mean_filter_matches_cv2_blur_everywhere(plane, k):
    ours = mean_filter(plane, k)[0, 0].numpy()
    ref = cv2.blur(plane[0, 0].numpy(), (k, k))  # default border: BORDER_REFLECT_101
    np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("k", [3, 5])
def test_median_filter_matches_cv2_median_blur_everywhere(plane, k):
    ours = median_filter(plane, k)[0, 0].numpy()
    ref = cv2.medianBlur(plane[0, 0].numpy(), k)  # border: replicate
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("d,sigma_space,sigma_color", [(5, 1.5, 2.0), (3, 1.0, 1.0), (7, 3.0, 5.0)])
def test_bilateral_filter_matches_cv2(plane, d, sigma_space, sigma_color):
    ours = bilateral_filter(plane, d, sigma_space, sigma_color)[0, 0].numpy()
    ref = cv2.bilateralFilter(plane[0, 0].numpy(), d, sigma_color, sigma_space)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_filters_work_per_channel_and_per_sample():
    torch.manual_seed(1)
    x = torch.rand(2, 3, 8, 8)
    for fn in (mean_filter, median_filter):
        full = fn(x, 3)
        for n in range(2):
            for c in range(3):
                torch.testing.assert_close(full[n, c], fn(x[n : n + 1, c : c + 1], 3)[0, 0])


def test_nonlocal_means_leaves_constant_map_unchanged():
    c = torch.full((2, 6, 5, 7), 0.7)
    torch.testing.assert_close(nonlocal_means(c, "gaussian"), c)
    torch.manual_seed(2)
    theta, phi = torch.randn(3, 6), torch.randn(3, 6)
    torch.testing.assert_close(nonlocal_means(c, "embedded_gaussian", theta, phi), c)


def test_nonlocal_gaussian_and_dot_match_formulas():
    torch.manual_seed(3)
    x = torch.randn(2, 8, 4, 5)
    n, c, h, w = x.shape
    g = x.reshape(n, c, h * w)
    f = torch.einsum("nci,ncj->nij", g, g) / math.sqrt(c)
    gauss = torch.einsum("nij,ndj->ndi", f.softmax(-1), g)
    torch.testing.assert_close(nonlocal_means(x, "gaussian").reshape(n, c, -1), gauss, atol=1e-5, rtol=1e-5)
    no_temp = torch.einsum("nij,ndj->ndi", (f * math.sqrt(c)).softmax(-1), g)
    torch.testing.assert_close(
        nonlocal_means(x, "gaussian", scale=False).reshape(n, c, -1), no_temp, atol=1e-5, rtol=1e-5
    )
    # dot product, both evaluation orders (C < HW here, C > HW below)
    dot = torch.einsum("nci,ncj,ndj->ndi", g, g, g) / (h * w)
    torch.testing.assert_close(nonlocal_means(x, "dot_product").reshape(n, c, -1), dot, atol=1e-4, rtol=1e-5)
    wide = torch.randn(1, 40, 3, 3)
    gw = wide.reshape(1, 40, 9)
    torch.testing.assert_close(
        nonlocal_means(wide, "dot_product").reshape(1, 40, -1),
        torch.einsum("nci,ncj,ndj->ndi", gw, gw, gw) / 9,
        atol=1e-4,
        rtol=1e-5,
    )


def test_embedded_gaussian_accepts_modules_or_weights():
    torch.manual_seed(4)
    x = torch.randn(2, 6, 4, 4)
    theta = nn.Conv2d(6, 3, 1, bias=False)
    phi = nn.Conv2d(6, 3, 1, bias=False)
    a = nonlocal_means(x, "embedded_gaussian", theta, phi)
    b = nonlocal_means(x, "embedded_gaussian", theta.weight.detach(), phi.weight.detach()[:, :, 0, 0])
    torch.testing.assert_close(a, b)
    # theta and phi get gradients, so a trainable block can learn them
    a.sum().backward()
    assert float(theta.weight.grad.abs().sum()) > 0 and float(phi.weight.grad.abs().sum()) > 0
    torch.testing.assert_close(nonlocal_means(x, "embedded_gaussian"), nonlocal_means(x, "gaussian"))
    with pytest.raises(ValueError, match="embedding weights"):
        nonlocal_means(x, "embedded_gaussian", torch.randn(3, 5), torch.randn(3, 5))


def test_operators_are_differentiable():
    torch.manual_seed(5)
    for name in OPERATORS:
        x = torch.rand(1, 4, 6, 6, requires_grad=True)
        denoise(x, name).pow(2).sum().backward()
        assert x.grad is not None and float(x.grad.abs().sum()) > 0, name


def test_bad_parameters():
    x = torch.rand(1, 2, 6, 6)
    with pytest.raises(ValueError, match="odd"):
        mean_filter(x, 4)
    with pytest.raises(ValueError, match="too large"):
        mean_filter(torch.rand(1, 1, 3, 3), 7)
    with pytest.raises(ValueError, match="unknown denoising operator"):
        denoise(x, "wavelet")
    with pytest.raises(ValueError, match="no parameter"):
        denoise(x, "mean", sigma=2)
    with pytest.raises(ValueError, match="N x C x H x W"):
        mean_filter(torch.rand(6, 6))


def test_suppression_ratio():
    torch.manual_seed(6)
    fc = torch.rand(3, 8, 12, 12)
    noise = 0.1 * torch.randn_like(fc)
    fa = fc + noise
    torch.testing.assert_close(suppression_ratio(fc, fa, lambda t: t), torch.ones(3))
    torch.testing.assert_close(suppression_ratio(fc, fa, lambda t: 0.5 * t), torch.full((3,), 0.5))
    torch.testing.assert_close(relative_suppression(fc, fa, lambda t: 0.5 * t), torch.ones(3))
    # i.i.d. noise through a 3x3 box filter keeps about 1/3 of its norm (1/sqrt(9) plus border effects)
    r = suppression_ratio(fc, fa, "mean", kernel_size=3)
    assert float(r.max()) < 0.45 and float(r.min()) > 0.3
    assert float(relative_suppression(fc, fa, "mean").max()) < 0.6  # smooth signal survives, noise does not
    assert torch.isnan(suppression_ratio(fc, fc.clone(), "mean")).all()


def test_denoise_view_on_digits(digits_model, digits_test):
    x, y = digits_test.batch([0, 1])
    torch.manual_seed(7)
    x_adv = (x + 0.15 * torch.randn_like(x).sign()).clamp(0, 1)
    v = denoise_view(digits_model, x, x_adv, "net.conv1", "mean", kernel_size=3)
    assert v.f_clean.shape == (2, 32, 28, 28) and v.d_adv.shape == v.f_adv.shape
    manual = (v.d_adv - v.d_clean).flatten(1).norm(dim=1) / (v.f_adv - v.f_clean).flatten(1).norm(dim=1)
    torch.testing.assert_close(v.ratio, manual)
    torch.testing.assert_close(v.ratio, suppression_ratio(v.f_clean, v.f_adv, "mean", kernel_size=3))
    assert float(v.ratio.max()) < 1.0
    assert set(v.probs) == {"clean", "adv", "clean_denoised", "adv_denoised"}
    for p in v.probs.values():
        torch.testing.assert_close(p.sum(1), torch.ones(2))
    with pytest.raises(LayerError):
        denoise_view(digits_model, x, x_adv, "net.conv5", "mean")
    with pytest.raises(ValueError):
        denoise_view(digits_model, x, x_adv, "net.conv1", "fourier")
    assert all(p.grad is None for p in digits_model.parameters())


def test_advlens_attribution_does_not_import_defenses():
    code = (
        "import sys, advlens.attribution, advlens.attribution.analysis, advlens.attribution.features; "
        "assert not any(m == 'defenses' or m.startswith('defenses.') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bilateral_uses_the_clean_range_sigma_for_both():
    torch.manual_seed(8)
    fc = torch.rand(2, 3, 8, 8)
    fa = fc + 0.5 * torch.randn_like(fc)
    s = fc.flatten(1).std(dim=1) * math.sqrt(3)  # default: std * sqrt(C)
    manual = (bilateral_filter(fa, 5, 1.5, s) - bilateral_filter(fc, 5, 1.5, s)).flatten(1).norm(dim=1) / (
        fa - fc
    ).flatten(1).norm(dim=1)
    torch.testing.assert_close(suppression_ratio(fc, fa, "bilateral"), manual)
    # a per-sample sigma equals filtering each sample with its own scalar sigma
    both = bilateral_filter(fc, 5, 1.5, s)
    for i in range(2):
        torch.testing.assert_close(both[i : i + 1], bilateral_filter(fc[i : i + 1], 5, 1.5, float(s[i])))


def test_denoise_view_refuses_huge_nonlocal(digits_model, digits_test, monkeypatch):
    import defenses.denoise_view as dv

    x, _ = digits_test.batch([0])
    monkeypatch.setattr(dv, "MAX_NONLOCAL_ENTRIES", 1000)
    with pytest.raises(ValueError, match="too large"):
        denoise_view(digits_model, x, x.clone(), "net.conv1", "nonlocal_gaussian")
