"""Attention-shift metrics on synthetic maps with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from advlens.attribution import metrics as M


def blob(h=10, w=10, r0=0, r1=2, c0=0, c1=2, value=1.0):
    m = torch.zeros(h, w)
    m[r0:r1, c0:c1] = value
    return m


def test_identical_maps():
    torch.manual_seed(0)
    a = torch.rand(4, 12, 12)
    assert M.topk_iou(a, a.clone(), 20).tolist() == [1.0] * 4
    torch.testing.assert_close(M.com_shift(a, a.clone()), torch.zeros(4))
    torch.testing.assert_close(M.pearson(a, a.clone()), torch.ones(4))
    torch.testing.assert_close(M.spearman(a, a.clone()), torch.ones(4))


def test_disjoint_and_partial_overlap_iou():
    a = blob(10, 10, 0, 2, 0, 5)  # 10 pixels, top-left
    b = blob(10, 10, 8, 10, 5, 10)  # 10 pixels, bottom-right
    assert M.topk_iou(a, b, 10).tolist() == [0.0]
    # the top-10% region is exactly the 10 pixels of each blob; shifting one by 2 columns leaves 6 shared
    c = blob(10, 10, 0, 2, 2, 7)
    c_only = blob(10, 10, 0, 2, 0, 5)
    assert M.topk_iou(c_only, c, 10).item() == pytest.approx(6 / 14)  # overlap cols 2..4 (2x3=6), union 14
    assert M.topk_iou(a, blob(10, 10, 0, 2, 0, 5), 100).item() == pytest.approx(1.0)


def test_topk_mask_ties_and_minimum():
    m = torch.zeros(1, 10, 10)
    m[0, 0, :3] = 1.0  # 3% non-zero
    mask = M.topk_mask(m, 20)
    assert int(mask.sum()) == 3  # pixels tied at the minimum carry no attention
    assert int(M.topk_mask(torch.ones(1, 4, 4), 25).sum()) == 16  # constant map: the whole map
    ramp = torch.arange(100.0).view(1, 10, 10)
    assert int(M.topk_mask(ramp, 20).sum()) == 20
    assert int(M.topk_mask(ramp, 0.5).sum()) == 1  # at least one pixel


@pytest.mark.parametrize("bad", [0, -5, 100.5, float("nan"), "abc", None])
def test_percent_validation(bad):
    with pytest.raises(ValueError):
        M.topk_mask(torch.rand(1, 4, 4), bad)


def test_correlations():
    torch.manual_seed(1)
    a = torch.rand(2, 8, 8)
    torch.testing.assert_close(M.pearson(a, -a), -torch.ones(2))
    torch.testing.assert_close(M.pearson(a, 3 * a + 2), torch.ones(2))
    cubed = a**5  # monotone but not linear: Spearman 1, Pearson < 1
    torch.testing.assert_close(M.spearman(a, cubed), torch.ones(2))
    assert float(M.pearson(a, cubed).max()) < 0.99
    # a hand-checked value: x = [1, 2, 3, 4], y = [1, 3, 2, 4] -> r = 0.8 (Pearson), rho = 0.8 (Spearman)
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = torch.tensor([[1.0, 3.0], [2.0, 4.0]])
    assert M.pearson(x, y).item() == pytest.approx(0.8, abs=1e-6)
    assert M.spearman(x, y).item() == pytest.approx(0.8, abs=1e-6)
    assert math.isnan(M.pearson(torch.ones(1, 3, 3), a[:1, :3, :3]).item())


def test_center_of_mass_shift():
    a = torch.zeros(1, 10, 10)
    b = torch.zeros(1, 10, 10)
    a[0, 2, 3] = 1.0
    b[0, 5, 7] = 4.0
    assert M.center_of_mass(a).tolist() == [[2.0, 3.0]]
    assert M.com_shift(a, b).item() == pytest.approx(5.0)  # 3-4-5 triangle
    two = torch.zeros(1, 10, 10)
    two[0, 0, 0] = 1.0
    two[0, 0, 4] = 3.0
    assert M.center_of_mass(two).tolist() == [[0.0, 3.0]]  # weighted by mass
    assert torch.isnan(M.center_of_mass(torch.zeros(1, 3, 3))).all()


def test_connected_components_and_area():
    m = torch.zeros(2, 12, 12)
    m[0, 1:3, 1:3] = 1.0
    m[0, 6:8, 6:8] = 0.8
    m[0, 10, 0] = 0.6
    m[0, 0, 11] = 0.4  # below 0.5 * max: not counted
    m[1, 2, 2] = 1.0
    m[1, 3, 3] = 1.0  # touches diagonally: one 8-connected component
    assert M.connected_components(m, 0.5).tolist() == [3, 1]
    assert M.connected_components(m, 0.3).tolist() == [4, 1]
    assert M.attended_area(m, 0.5).tolist() == pytest.approx([9 / 144, 2 / 144])
    assert M.connected_components(torch.zeros(1, 5, 5)).tolist() == [0]
    with pytest.raises(ValueError):
        M.connected_components(m, 0.0)


def test_entropy():
    uniform = torch.ones(1, 4, 4)
    point = torch.zeros(1, 4, 4)
    point[0, 1, 2] = 5.0
    pair = torch.zeros(1, 4, 4)
    pair[0, 0, 0] = pair[0, 3, 3] = 1.0
    assert M.entropy(uniform).item() == pytest.approx(1.0)
    assert M.entropy(point).item() == pytest.approx(0.0)
    assert M.entropy(pair).item() == pytest.approx(math.log(2) / math.log(16))
    assert M.entropy(pair, normalized=False).item() == pytest.approx(math.log(2))
    assert torch.isnan(M.entropy(torch.zeros(1, 2, 2))).all()


def test_shift_metrics_batched_per_sample():
    torch.manual_seed(2)
    a, b = torch.rand(5, 16, 16), torch.rand(5, 16, 16)
    full = M.shift_metrics(a, b, k_percent=15, threshold=0.6)
    assert set(full) == {
        "iou",
        "pearson",
        "spearman",
        "com_shift",
        "components_clean",
        "components_adv",
        "entropy_clean",
        "entropy_adv",
        "area_clean",
        "area_adv",
    }
    for i in range(5):
        one = M.shift_metrics(a[i], b[i], k_percent=15, threshold=0.6)
        for k in full:
            assert full[k][i].item() == pytest.approx(one[k][0].item(), abs=1e-6), k
    with pytest.raises(ValueError, match="differ in shape"):
        M.shift_metrics(a, b[:, :8])


class QuadrantModel(nn.Module):
    """logits = [w * mean(top-left quadrant), 0]; p_0 = sigmoid(w * mean)."""

    num_classes = 2

    def __init__(self, w=4.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        s = self.w * x[:, :, :4, :4].mean(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_faithfulness_known_drops():
    model = QuadrantModel(4.0)
    x = torch.ones(2, 1, 8, 8)
    on = torch.zeros(8, 8)
    on[:4, :4] = 1.0  # the top-left quadrant = 25% of the pixels
    off = torch.zeros(8, 8)
    off[4:, 4:] = 1.0
    maps = torch.stack([on, off])
    t = torch.tensor([0, 0])
    sig = torch.sigmoid
    drop = M.faithfulness(model, x, maps, t, k_percent=25, erase="zero")
    assert drop.tolist() == pytest.approx([float(sig(torch.tensor(4.0)) - 0.5), 0.0], abs=1e-6)
    grey = M.faithfulness(model, x, maps, t, k_percent=25, erase="grey")
    assert grey[0].item() == pytest.approx(float(sig(torch.tensor(4.0)) - sig(torch.tensor(2.0))), abs=1e-6)
    assert M.faithfulness(model, x, maps, t, 25, erase="mean")[0].item() == pytest.approx(0.0, abs=1e-6)
    assert M.faithfulness(model, x, maps, t, 25, erase=0.25)[0].item() == pytest.approx(
        float(sig(torch.tensor(4.0)) - sig(torch.tensor(1.0))), abs=1e-6
    )
    with pytest.raises(ValueError):
        M.faithfulness(model, x, maps, t, 25, erase="blue")
    # maps at a lower resolution are upsampled to the image
    erased = M.erase_topk(x, torch.stack([on[::2, ::2], off[::2, ::2]]), 25)
    assert np.isclose(float(erased[0, 0, :4, :4].sum()), 0.0) and float(erased[0, 0, 4:, 4:].min()) == 1.0
