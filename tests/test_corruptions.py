"""The common-corruptions generator and suite (issue 28), on tiny images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advlens.corruptions import NAMES, SEVERITIES, corrupt, disk, motion_kernel
from advlens.evaluation.corruption_suite import evaluate_corruptions, format_table

# L2 distance to the clean image is not monotonic in severity by construction of the published
# constants for these: glass blur's swaps are blurred more at higher severities, elastic's severity 1
# is mostly a 2.6 px affine jitter that shrinks to 1 px, frost trades image weight for texture weight.
NOT_MONOTONIC_IN_L2 = {"glass_blur", "elastic_transform", "frost"}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """4 smooth-ish 3x32x32 images in [0, 1] (a gradient plus blobs and noise), fixed."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2])[None].repeat(4, 1, 1, 1)
    blobs = nn.functional.avg_pool2d(torch.rand(4, 3, 32, 32, generator=g), 5, 1, 2)
    return (0.5 * base + 0.5 * blobs).clamp(0, 1)


@pytest.fixture(scope="module")
def corrupted(images) -> dict[str, list[torch.Tensor]]:
    return {name: [corrupt(images, name, s, seed=0) for s in SEVERITIES] for name in NAMES}


def test_fifteen_corruptions_of_cifar10_c():
    assert len(NAMES) == 15
    assert {"gaussian_noise", "glass_blur", "motion_blur", "frost", "elastic_transform", "jpeg_compression"} <= set(
        NAMES
    )


def test_shape_range_quantised_and_changed(images, corrupted):
    for name, outs in corrupted.items():
        for s, out in zip(SEVERITIES, outs):
            assert out.shape == images.shape and out.dtype == torch.float32, (name, s)
            assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0, (name, s)
            levels = out * 255
            assert torch.allclose(levels, levels.round(), atol=1e-3), (name, s)  # 8-bit, like the published files
            assert float((out - images).abs().max()) > 1 / 255, (name, s)


def test_severity_increases_the_distance_on_average(images, corrupted):
    for name, outs in corrupted.items():
        dist = [float((o - images).flatten(1).norm(dim=1).mean()) for o in outs]
        if name in NOT_MONOTONIC_IN_L2:
            assert max(dist) > 0.5, (name, dist)
            continue
        assert all(b >= a * 0.98 for a, b in zip(dist, dist[1:])), (name, dist)
        assert dist[-1] > dist[0] * 1.2, (name, dist)


def test_deterministic_per_seed_and_image_key(images):
    for name in ("gaussian_noise", "glass_blur", "frost", "elastic_transform", "motion_blur"):
        a = corrupt(images, name, 3, seed=5, keys=[10, 11, 12, 13])
        b = corrupt(images, name, 3, seed=5, keys=[10, 11, 12, 13])
        assert torch.equal(a, b), name
        c = corrupt(images, name, 3, seed=6, keys=[10, 11, 12, 13])
        assert not torch.equal(a, c), name
        # an image's corruption depends on its key, not on the batch it is in
        alone = corrupt(images[2:3], name, 3, seed=5, keys=[12])
        assert torch.equal(alone[0], a[2]), name


def test_greyscale_and_other_sizes():
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    for name in NAMES:
        out = corrupt(x, name, 5, seed=0)
        assert out.shape == x.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0, name


def test_bad_input_is_refused(images):
    with pytest.raises(ValueError, match="severity"):
        corrupt(images, "fog", 6)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(images, "rain", 1)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        corrupt(torch.rand(1, 2, 8, 8), "fog", 1)


def test_kernels_are_normalised_and_point_along_the_angle():
    assert abs(float(disk(1.5, 0.1).sum()) - 1) < 1e-5
    k = motion_kernel(6, 2, 0.0)
    assert abs(float(k.sum()) - 1) < 1e-5
    centre = k.shape[0] // 2
    assert k[centre, centre] == k.max()  # the heaviest tap is the pixel itself (one-sided Gaussian)
    assert k[centre, centre + 3] > 0 and k[centre, centre - 3] == 0  # the blur trails toward +x at angle 0


class _MeanBrightness(nn.Module):
    """Class 1 when the image is bright: contrast and fog move it, a fixed threshold, no training."""

    num_classes, input_size, class_names = 2, (3, 32, 32), ("dark", "bright")

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], 1) * 10


def test_suite_reports_every_cell_and_the_mean(images):
    model = _MeanBrightness()
    y = model(images).argmax(1)
    res = evaluate_corruptions(model, images, y, names=("brightness", "contrast"), seed=0)
    report = res.to_dict()
    assert report["clean_accuracy"] == 1.0
    assert set(report["corruptions"]) == {"brightness", "contrast"}
    cells = [c["accuracy"] for row in report["corruptions"].values() for c in row["severities"]]
    assert len(cells) == 10 and abs(report["mean_corruption_accuracy"] - np.mean(cells)) < 1e-9
    lo, hi = report["mean_interval_95"]
    assert lo <= report["mean_corruption_accuracy"] <= hi
    assert "n = 4" in report["protocol"] and "mCA" in format_table(report)


def _corruption_page():
    from dashboard.corruption_section import corruption_section

    corruption_section()


def test_evaluate_page_section_shows_the_grid_and_the_table():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_corruption_page, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="cc_model").set_value("digits_small_cnn")
    at.selectbox(key="cc_dataset").set_value("digits")
    at.number_input(key="cc_n").set_value(3)
    at.button(key="cc_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("imgs")) + len(at.get("image")) >= 75  # 15 corruptions x 5 severities
    assert len(at.dataframe) == 1 and at.dataframe[0].value.shape == (15, 6)
    assert any("n = 3" in c.value and "mCA" in c.value for c in at.caption)


def test_cli_reports_the_15_x_5_table_without_eps(tmp_path, capsys):
    import json

    from advlens.cli import main

    out = tmp_path / "c.json"
    args = ["evaluate", "--suite", "corruptions", "--model", "digits_small_cnn", "--dataset", "digits", "--n", "4"]
    assert main(args + ["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mean corruption accuracy (mCA)" in text and "n = 4" in text
    assert sum(line.split()[0].rstrip("*") in NAMES for line in text.splitlines() if line.strip()) == 15
    report = json.loads(out.read_text())["results"][0]
    assert len(report["corruptions"]) == 15
    assert all(len(r["severities"]) == 5 for r in report["corruptions"].values())
    assert "first 4 images" in report["protocol"] and report["n"] == 4
    assert main(args + ["--html", str(tmp_path / "c.html")]) == 2
    assert "not available with --suite corruptions" in capsys.readouterr().err
