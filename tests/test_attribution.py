"""Attribution maps: Grad-CAM against a hand computation, Grad-CAM++, the differentiable CAM,
the uniform compute_map API, the attention view and the shared-scale display."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advlens.attribution import (
    METHODS,
    LayerError,
    attention_view,
    compute_map,
    differentiable_gradcam,
    gradcam,
    gradcam_plus_plus,
    resolve_targets,
)
from advlens.attribution.display import diverging_rgb, enlarge, heat_rgb, joint_normalize, overlay, signed_difference
from advlens.models import build_model


@pytest.fixture
def tiny():
    """A randomly initialised small CNN (1x28x28, 10 classes) in eval mode."""
    torch.manual_seed(0)
    return build_model("small_cnn").eval()


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.rand(3, 1, 28, 28)


def hand_activations_and_grads(model, x, target, layer="net.conv2"):
    store = {}
    h = model.get_submodule(layer).register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        logits = model(x)
    finally:
        h.remove()
    score = logits.gather(1, target.view(-1, 1)).sum()
    (g,) = torch.autograd.grad(score, store["a"])
    return store["a"].detach(), g.detach()


def test_gradcam_matches_hand_computation(tiny, batch):
    target = torch.tensor([3, 7, 0])
    a, g = hand_activations_and_grads(tiny, batch, target)
    w = g.mean(dim=(2, 3), keepdim=True)  # spatial mean of dS/dA
    hand = F.relu((w * a).sum(1))  # ReLU(sum_k w_k A_k), 14x14
    ours = gradcam(tiny, batch, target, layer="net.conv2", upsample_mode=None)
    assert ours.shape == (3, 14, 14)
    assert float(hand.abs().max()) > 0
    torch.testing.assert_close(ours, hand, atol=1e-5, rtol=1e-5)
    up = gradcam(tiny, batch, target, layer="net.conv2")
    assert up.shape == (3, 28, 28)
    hand_up = F.interpolate(hand.unsqueeze(1), size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(up, hand_up, atol=1e-5, rtol=1e-5)


def test_gradcam_default_layer_and_int_target(tiny, batch):
    assert tiny.default_cam_layer() == "net.relu2"  # the rectified conv2 output: see small_cnn's docstring
    a = gradcam(tiny, batch, 5)
    b = gradcam(tiny, batch, torch.tensor([5, 5, 5]), layer="net.relu2")
    torch.testing.assert_close(a, b)


def test_batched_maps_equal_single_maps(tiny, batch):
    target = torch.tensor([1, 2, 3])
    for method in ("gradcam", "gradcam++", "saliency"):
        full = compute_map(tiny, batch, method, target=target)
        for i in range(3):
            one = compute_map(tiny, batch[i : i + 1], method, target=target[i : i + 1])
            torch.testing.assert_close(full[i : i + 1], one, atol=1e-5, rtol=1e-4)


def test_gradcam_plus_plus_matches_formula(tiny, batch):
    target = torch.tensor([2, 4, 6])
    a, g = hand_activations_and_grads(tiny, batch, target)
    a, g = a.double(), g.double()
    sum_a = a.sum(dim=(2, 3), keepdim=True)
    denom = 2 * g**2 + sum_a * g**3
    alpha = torch.where(g != 0, g**2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(g))
    w = (alpha * F.relu(g)).sum(dim=(2, 3), keepdim=True)
    hand = F.relu((w * a).sum(1)).float()
    ours = gradcam_plus_plus(tiny, batch, target, layer="net.conv2", upsample_mode=None)
    torch.testing.assert_close(ours, hand, atol=1e-5, rtol=1e-4)
    assert float(ours.max()) > 0


def test_every_method_shape_and_no_param_grads(tiny, batch):
    tiny.train()  # attribution must run in eval mode and put the mode back
    target = torch.tensor([0, 1, 2])
    for name in METHODS:
        opts = {"n_steps": 8} if name == "integrated_gradients" else {"nt_samples": 4} if name == "smoothgrad" else {}
        maps = compute_map(tiny, batch, name, target=target, **opts)
        assert maps.shape == (3, 28, 28), name
        assert torch.isfinite(maps).all() and float(maps.min()) >= 0, name
    assert tiny.training
    assert all(p.grad is None for p in tiny.parameters())
    assert all(p.requires_grad for p in tiny.parameters())


def test_smoothgrad_is_reproducible(tiny, batch):
    a = compute_map(tiny, batch, "smoothgrad", target=1, nt_samples=4, seed=3)
    b = compute_map(tiny, batch, "smoothgrad", target=1, nt_samples=4, seed=3)
    c = compute_map(tiny, batch, "smoothgrad", target=1, nt_samples=4, seed=4)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_bad_layer_target_and_method(tiny, batch):
    with pytest.raises(LayerError, match="net.conv1"):
        compute_map(tiny, batch, "gradcam", layer="net.nope", target=0)
    with pytest.raises(LayerError, match="not a spatial"):
        compute_map(tiny, batch, "gradcam", layer="net.fc1", target=0)
    with pytest.raises(ValueError, match="out of range"):
        compute_map(tiny, batch, "gradcam", target=10)
    with pytest.raises(ValueError, match="3 images"):
        compute_map(tiny, batch, "gradcam", target=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="unknown attribution method"):
        compute_map(tiny, batch, "lime", target=0)


def test_differentiable_gradcam_has_weight_gradients(tiny, batch):
    target = torch.tensor([3, 7, 0])
    cam = differentiable_gradcam(tiny, batch, target, variant="relu")
    # the same numbers as the captum Grad-CAM
    torch.testing.assert_close(cam.maps.detach(), gradcam(tiny, batch, target), atol=1e-5, rtol=1e-4)
    assert cam.maps.requires_grad
    tiny.zero_grad(set_to_none=True)
    cam.maps.pow(2).sum().backward()
    conv1 = tiny.get_submodule("net.conv1").weight.grad
    fc2 = tiny.get_submodule("net.fc2").weight.grad  # reached only through the gradient (double backprop)
    assert conv1 is not None and float(conv1.abs().sum()) > 0
    assert fc2 is not None and float(fc2.abs().sum()) > 0


@pytest.fixture
def digits3(digits_test):
    x, y = digits_test.batch([0, 1, 2])
    return x, y


def test_differentiable_gradcam_options(digits_model, digits3):
    tiny = digits_model
    batch, target = digits3
    soft = differentiable_gradcam(tiny, batch, target, variant="softmax", upsample_mode=None)
    torch.testing.assert_close(soft.layer_maps.sum(dim=(1, 2)), torch.ones(3), atol=1e-5, rtol=0)
    normed = differentiable_gradcam(tiny, batch, target, normalize="max", rms_grad=True)
    torch.testing.assert_close(normed.maps.detach().flatten(1).max(1).values, torch.ones(3), atol=1e-4, rtol=0)
    mm = differentiable_gradcam(tiny, batch, target, normalize="minmax")
    assert float(mm.maps.detach().min()) >= 0 and float(mm.maps.detach().max()) <= 1 + 1e-6
    # RMS-normalising the gradient rescales each image's map by one positive factor
    raw = differentiable_gradcam(tiny, batch, target).maps.detach()
    rms = differentiable_gradcam(tiny, batch, target, rms_grad=True).maps.detach()
    ratio = rms.flatten(1).max(1).values / raw.flatten(1).max(1).values
    torch.testing.assert_close(rms, raw * ratio.view(-1, 1, 1), atol=1e-4, rtol=1e-3)
    with pytest.raises(ValueError):
        differentiable_gradcam(tiny, batch, target, variant="sigmoid")


def test_resolve_targets():
    cp, ap = torch.tensor([1, 2, 3]), torch.tensor([4, 2, 5])
    y = torch.tensor([1, -1, 0])
    tc, ta = resolve_targets("true", clean_pred=cp, adv_pred=ap, y=y)
    assert tc.tolist() == [1, 2, 0] and ta.tolist() == [1, 2, 0]
    tc, ta = resolve_targets("own_pred", clean_pred=cp, adv_pred=ap)
    assert tc.tolist() == [1, 2, 3] and ta.tolist() == [4, 2, 5]
    tc, ta = resolve_targets("adv_pred", clean_pred=cp, adv_pred=ap)
    assert tc.tolist() == ta.tolist() == [4, 2, 5]
    tc, ta = resolve_targets(7, clean_pred=cp, adv_pred=ap, num_classes=10)
    assert tc.tolist() == ta.tolist() == [7, 7, 7]
    with pytest.raises(ValueError):
        resolve_targets("sideways", clean_pred=cp, adv_pred=ap)


def test_attention_view_identical_images(digits_model, digits3):
    batch, y = digits3
    v = attention_view(digits_model, batch, batch.clone(), y)
    assert v.metrics["iou"].tolist() == [1.0, 1.0, 1.0]
    assert float(v.metrics["com_shift"].abs().max()) < 1e-4
    # Clean and adversarial rows share one batched forward pass; BLAS may sum each row in a different
    # order on a loaded machine, so equal inputs give maps equal up to float32 rounding (2.7e-6 seen).
    assert float(v.diff.abs().max()) < 1e-4
    rows = v.table(0)
    assert rows[0]["metric"] == "top-20% IoU" and rows[0]["clean vs adversarial"] == 1.0
    assert any(r["metric"].startswith("faithfulness") for r in rows)


def test_attention_view_shared_scale(digits_model, digits3):
    tiny = digits_model
    batch, _ = digits3
    torch.manual_seed(2)
    x_adv = (batch + 0.3 * torch.randn_like(batch)).clamp(0, 1)
    v = attention_view(tiny, batch, x_adv, None, target="own_pred", k_percent=10)
    both = torch.stack([v.clean_map, v.adv_map], 1).flatten(1)
    torch.testing.assert_close(v.vmin, both.min(1).values)
    torch.testing.assert_close(v.vmax, both.max(1).values)
    # exactly one of the two maps reaches 1 on the shared scale (unless both do)
    for i in range(3):
        assert max(float(v.clean_norm[i].max()), float(v.adv_norm[i].max())) == pytest.approx(1.0)
    torch.testing.assert_close(v.diff, v.adv_norm - v.clean_norm)
    assert v.targets_clean.tolist() == v.clean_pred.tolist()
    assert v.targets_adv.tolist() == v.adv_pred.tolist()
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        attention_view(tiny, batch, x_adv, k_percent=0)
    with pytest.raises(LayerError):
        attention_view(tiny, batch, x_adv, layer="net.conv9")


def test_joint_normalize_keeps_relative_strength():
    a = torch.zeros(1, 4, 4)
    a[0, 1, 1] = 2.0
    b = a * 0.5
    (na, nb), lo, hi = joint_normalize(a, b)
    assert float(na.max()) == 1.0 and float(nb.max()) == 0.5  # never rescaled on its own
    assert lo.tolist() == [0.0] and hi.tolist() == [2.0]
    d, s = signed_difference(na, nb)
    assert float(d.min()) == -0.5 and float(s[0]) == 0.5
    (z,), _, _ = joint_normalize(torch.ones(2, 3, 3))
    assert float(z.abs().max()) == 0.0


def test_colour_maps():
    m = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    rgb = heat_rgb(m, "jet")
    ref = cv2.cvtColor(cv2.applyColorMap((m * 255).round().astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    assert rgb.dtype == np.uint8 and np.array_equal(rgb, ref)
    div = diverging_rgb(np.array([[-1.0, 0.0, 1.0]]))
    assert tuple(div[0, 0]) == (0, 0, 255)  # negative -> blue
    assert min(div[0, 1]) >= 254  # zero -> white
    assert tuple(div[0, 2]) == (255, 0, 0)  # positive -> red
    img = torch.rand(1, 1, 28, 28)
    ov = overlay(img, torch.rand(14, 14).numpy(), alpha=0.4)
    assert ov.shape == (28, 28, 3) and ov.dtype == np.uint8
    assert enlarge(ov, 224).shape == (224, 224, 3)
    with pytest.raises(ValueError):
        heat_rgb(m, "rainbow-unicorn")


def fgsm(model, x, y, eps):
    """A local one-step attack for the analysis tests (the attacks package has its own tests)."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x + eps * g.sign()).clamp(0, 1).detach()


def test_analysis_splits_by_success(digits_model, digits_test):
    from advlens.attribution.analysis import analyze_attention_shift, distribution_figure, summarize, verdict

    x, y = digits_test.batch(range(48))
    x_adv = fgsm(digits_model, x, y, 0.15)
    a = analyze_attention_shift(digits_model, x, y, x_adv, batch_size=20)
    with torch.no_grad():
        clean_pred = digits_model(x).argmax(1)
        adv_pred = digits_model(x_adv).argmax(1)
    keep = (clean_pred == y).nonzero()[:, 0].numpy()
    assert a.indices.tolist() == keep.tolist()
    assert a.n_clean_wrong == 48 - len(keep)
    assert a.success.tolist() == (adv_pred != y)[keep].tolist()
    assert 0 < a.n_success < len(keep)  # both groups are present at this budget
    per = attention_view(digits_model, x[keep], x_adv[keep], y[keep], with_faithfulness=False)
    np.testing.assert_allclose(a.metrics["iou"], per.metrics["iou"].numpy(), atol=1e-6)
    rows = {r["metric"]: r for r in summarize(a)}
    s = a.metrics["iou"][a.success]
    assert rows["iou"]["success_mean"] == pytest.approx(float(s.mean()))
    assert rows["iou"]["n_success"] == a.n_success and 0.0 <= rows["iou"]["p_value"] <= 1.0
    v = verdict(a)
    assert v["lower_iou_on_success"] == (rows["iou"]["success_mean"] < rows["iou"]["failure_mean"])
    fig = distribution_figure(a, metrics=("iou", "entropy_adv"))
    assert len(fig.data) == 4  # two groups x two metrics


def test_cli_cam_and_analyze(tmp_path, capsys):
    from advlens.cli import main
    from advlens.cli.args import linf_eps as parse_eps

    assert parse_eps("8/255") == pytest.approx(8 / 255) and parse_eps("0.12") == 0.12
    out = tmp_path / "panel.png"
    assert (
        main(
            [
                "cam",
                "--model",
                "digits_small_cnn",
                "--image",
                "digits:3",
                "--eps",
                "0.12",
                "--steps",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "top-20% IoU" in text and out.is_file()
    assert cv2.imread(str(out)).shape[0] >= 224
    js = tmp_path / "an.json"
    assert (
        main(
            [
                "analyze",
                "--model",
                "digits_small_cnn",
                "--n",
                "24",
                "--eps",
                "0.1",
                "--steps",
                "3",
                "--json-out",
                str(js),
            ]
        )
        == 0
    )
    import json

    data = json.loads(js.read_text())
    assert data["n"] == 24 and data["n_success"] + data["n_failure"] + data["n_clean_wrong"] == 24
    assert {r["metric"] for r in data["summary"]} >= {"iou", "components_adv", "entropy_adv"}
    capsys.readouterr()
    assert main(["cam", "--model", "digits_small_cnn", "--image", "digits:3", "--k", "0"]) == 2
    assert "(0, 100]" in capsys.readouterr().err
    assert main(["cam", "--model", "digits_small_cnn", "--image", "digits:3", "--layer", "net.nope"]) == 2
    assert main(["analyze", "--model", "digits_small_cnn", "--eps", "2"]) == 2
