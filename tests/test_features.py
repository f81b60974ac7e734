"""Feature maps: hooks that always come off, channel ranking and status, grids, divergence across depth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advlens.attribution import LayerError, record_outputs
from advlens.attribution.features import (
    STATUS_COLORS,
    Divergence,
    channel_grid,
    clean_and_adv_features,
    divergence_figure,
    layer_divergence,
    layer_features,
    rank_channels,
)


def n_hooks(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_hooks_are_removed_even_on_error(digits_model, digits_test):
    x, _ = digits_test.batch([0, 1])
    before = n_hooks(digits_model)
    with record_outputs(digits_model, ["net.conv1", "net.conv2"]) as feats:
        digits_model(x)
        assert n_hooks(digits_model) == before + 2
    assert set(feats) == {"net.conv1", "net.conv2"}
    assert feats["net.conv1"].shape == (2, 32, 28, 28) and not feats["net.conv1"].requires_grad
    assert n_hooks(digits_model) == before
    with pytest.raises(RuntimeError, match="boom"):
        with record_outputs(digits_model, ["net.conv2"]):
            raise RuntimeError("boom")
    assert n_hooks(digits_model) == before
    with pytest.raises(LayerError, match="net.conv1"):
        with record_outputs(digits_model, ["net.conv7"]):
            pass
    assert n_hooks(digits_model) == before


def test_layer_features_checks_layers(digits_model, digits_test):
    x, _ = digits_test.batch([0])
    feats = layer_features(digits_model, x, ["net.conv2"])
    assert feats["net.conv2"].shape == (1, 64, 14, 14)
    with pytest.raises(LayerError, match="not a spatial"):
        layer_features(digits_model, x, ["net.fc1"])
    with pytest.raises(LayerError):
        layer_features(digits_model, x, [""])


def test_rank_channels_and_status():
    torch.manual_seed(0)
    clean = torch.rand(4, 6, 6) + 0.5
    adv = clean.clone()
    adv[0] *= 0.2  # suppressed
    adv[2] *= 3.0  # emphasised, and the largest change
    adv[3] += 0.01 * torch.randn(6, 6)  # shared
    by_change = rank_channels(clean, adv, n=4, by="change")
    assert by_change[0].index == 2 and by_change[1].index == 0
    status = {c.index: c.status for c in by_change}
    assert status == {0: "suppressed", 1: "shared", 2: "emphasised", 3: "shared"}
    top = by_change[0]
    assert top.relative == pytest.approx(2.0, rel=1e-5)
    assert top.change == pytest.approx(float((adv[2] - clean[2]).abs().mean()), rel=1e-6)
    by_act = rank_channels(clean, adv, n=2, by="activation")
    assert by_act[0].index == 2 and len(by_act) == 2
    with pytest.raises(ValueError):
        rank_channels(clean, adv, by="colour")


def test_channel_grid_colours_and_shared_scale():
    clean = torch.zeros(3, 4, 4)
    clean[:, 0, 0] = 1.0
    adv = clean.clone()
    adv[1] *= 4.0  # emphasised
    adv[2] *= 0.1  # suppressed
    chans = rank_channels(clean, adv, n=3, by="change")
    grid = channel_grid(clean, adv, chans, cols=3, tile_px=32)
    for img in (grid.clean, grid.adversarial, grid.difference):
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert grid.clean.shape == grid.adversarial.shape == grid.difference.shape
    # the border of the first tile carries its status colour
    first = chans[0]
    assert tuple(grid.clean[2, 2 + 16]) == STATUS_COLORS[first.status]
    with pytest.raises(ValueError):
        channel_grid(clean, adv, [], cols=3)


def test_layer_divergence_matches_manual(digits_model, digits_test):
    x, _ = digits_test.batch([0, 1, 2])
    torch.manual_seed(3)
    x_adv = (x + 0.1 * torch.randn_like(x).sign()).clamp(0, 1)
    div = layer_divergence(digits_model, x, x_adv)
    assert div.layers == ["net.conv1", "net.conv2"] and div.values.shape == (3, 2)
    fc, fa = clean_and_adv_features(digits_model, x, x_adv, div.layers)
    for j, name in enumerate(div.layers):
        manual = (fa[name] - fc[name]).flatten(1).norm(dim=1) / fc[name].flatten(1).norm(dim=1)
        torch.testing.assert_close(div.values[:, j], manual)
    same = layer_divergence(digits_model, x, x.clone())
    assert float(same.values.abs().max()) == 0.0
    fig = divergence_figure(div)
    assert len(fig.data) == 4  # three faint per-sample lines and the mean


def test_divergence_trend():
    up = Divergence(["a", "b", "c", "d"], torch.tensor([[0.1, 0.2, 0.4, 0.8]]), [(1,)] * 4)
    t = up.trend()
    assert t["grows"] and t["spearman"] == pytest.approx(1.0) and t["ratio"] == pytest.approx(8.0)
    assert t["max_layer"] == "d"
    down = Divergence(["a", "b", "c"], torch.tensor([[0.9, 0.5, 0.2]]), [(1,)] * 3)
    assert not down.trend()["grows"] and down.trend()["spearman"] == pytest.approx(-1.0)
