"""Attention maps that always show something (issue 30): the empty-map check and its fixes in the engine,
metrics that name an empty map, budgets in the field's order, and the pages (AppTest) with the shipped
``mnist_small_cnn`` on MNIST 7 (test #0), where Grad-CAM at ``conv2`` is empty."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from advlens.attribution import attention_view, compute_map
from advlens.attribution.empty import check_maps, empty_maps
from advlens.budget import format_linf, linf_text, parse_linf
from dashboard.cam_pair import CAM_MEMO_KEY

ROOT = Path(__file__).resolve().parents[1]
SEVEN = "MNIST 7 (test #0)"
TIMEOUT = 180


@pytest.fixture(scope="module")
def seven():
    from advlens.data.catalog import load_dataset
    from advlens.zoo import load_model

    ds = load_dataset("mnist_samples")
    x, y = ds.batch([ds.item_names.index(SEVEN)])
    return load_model("mnist_small_cnn", "cpu"), x, y


def test_an_empty_map_is_named_with_its_reason_and_checked_fixes(seven):
    model, x, y = seven
    assert model.default_cam_layer() == "net.relu2"
    default = compute_map(model, x, "gradcam", None, y)
    assert not bool(empty_maps(default).any()) and float(default.max()) > 0  # the default shows something
    conv2 = compute_map(model, x, "gradcam", "net.conv2", y)
    assert bool(empty_maps(conv2).all())  # the case: all zero after Grad-CAM's ReLU
    assert check_maps(model, "gradcam", None, {"clean": (x, y, default)}) is None
    empty = check_maps(model, "gradcam", "net.conv2", {"clean": (x, y, conv2), "adversarial": (x, y, default)})
    assert empty.which == "clean" and empty.message() == (
        "The clean Grad-CAM at net.conv2 is empty: every channel-weighted sum is negative before Grad-CAM's ReLU."
    )
    assert 1 <= len(empty.fixes) <= 3 and empty.fixes[0].layer == "net.relu2"
    assert {f.method for f in empty.fixes} >= {"gradcam", "layercam"}
    for fix in empty.fixes:  # every offered fix shows something on this image
        shown = compute_map(model, x, fix.method, fix.layer, y, **({"relu": False} if fix.signed else {}))
        assert float(shown.abs().max()) > 0, fix
    # a map is empty when it is zero, or nearly zero next to its signed map
    maps = torch.tensor([[[0.0, 0.0]], [[1e-5, 0.0]], [[0.5, 0.0]]])
    assert empty_maps(maps).tolist() == [True, False, False]
    assert empty_maps(maps, signed=torch.tensor([[[-1.0, 0.0]]] * 3)).tolist() == [True, True, False]


def test_metrics_name_the_empty_map(seven):
    model, x, y = seven
    view = attention_view(model, x, x, y, layer="net.conv2", with_faithfulness=True)
    assert view.empty_names(0) == ["clean", "adversarial"]
    rows = {r["metric"]: r for r in view.table(0)}
    for metric in ("top-20% IoU", "Pearson r", "Spearman rho", "centre-of-mass shift (px)"):
        assert rows[metric]["note"] == "both maps empty", metric
        assert rows[metric]["clean vs adversarial"] != rows[metric]["clean vs adversarial"]  # NaN, not a number
    assert view.empty_note(0) == "the clean and adversarial maps are empty"
    assert rows["entropy (normalised)"]["note"] == "both maps empty"
    assert next(r["note"] for m, r in rows.items() if m.startswith("faithfulness")) == "both maps empty"
    assert rows["attended area"]["clean"] == 0 and rows["attended area"]["note"] == ""  # defined: no area
    fine = attention_view(model, x, x, y, with_faithfulness=False)
    assert fine.empty_names(0) == [] and all(r["note"] == "" for r in fine.table(0))


def test_budgets_read_the_way_the_field_writes_them():
    assert format_linf(0.3) == "0.3 (76.5/255)" and format_linf(8 / 255) == "8/255 (0.0314)"
    assert format_linf(2 / 255) == "2/255 (0.0078)" and format_linf(0.1) == "0.1 (25.5/255)"
    assert format_linf(0.2) == "0.2 (51/255)"  # whole levels too, but the field writes MNIST's 0.2 as a decimal
    assert format_linf(float(torch.tensor(40 / 255))) == "40/255 (0.1569)"  # a float32 norm is still 40 levels
    assert format_linf(0.0314) == "0.0314 (8.007/255)"
    for value in (0.3, 8 / 255, 0.0314, 0.15, 1.0):  # the input form reads back to the same budget
        assert parse_linf(linf_text(value)) == pytest.approx(value, abs=1e-9)
    assert linf_text(0.3) == "0.3" and linf_text(8 / 255) == "8/255"


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _text(at: AppTest) -> str:
    parts = [e.value for kind in ("caption", "markdown", "info", "warning") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts) + "\n".join(f"{m.label} {m.value}" for m in at.metric)


def _empty_warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if " empty" in str(w.value)]


def _cam_maps(at: AppTest) -> list[torch.Tensor]:
    """The maps of every clean/adversarial pair this session computed (the pages' memo)."""
    memo = at.session_state[CAM_MEMO_KEY] if CAM_MEMO_KEY in at.session_state else {}
    return [maps for maps, _ in memo.values()]


def test_attention_page_shows_a_map_and_fixes_an_empty_one_in_one_click():
    at = AppTest.from_file(str(ROOT / "dashboard/attention.py"), default_timeout=TIMEOUT)
    at.query_params.update(model="mnist_small_cnn", image_sample=SEVEN, att_eps="0.3", att_steps="2")
    _run(at)
    assert "0.3 (76.5/255)" in _text(at)
    assert not _empty_warnings(at)
    peak = re.search(r"largest value: clean ([-\d.e]+)", _text(at))
    assert peak and float(peak.group(1)) > 0  # the default clean Grad-CAM is not empty
    at.selectbox(key="att_layer").set_value("net.conv2")
    _run(at)
    (warning,) = _empty_warnings(at)
    assert warning.startswith("The clean") and "Grad-CAM" in warning and "net.conv2" in warning
    assert "every channel-weighted sum is negative before Grad-CAM's ReLU" in warning
    tables = [df.value for df in at.dataframe]
    assert tables[0]["value"].tolist()[:4] == ["both maps empty"] * 4  # IoU, correlations, shift: not "None"
    at.button(key="att_fix_0").click()
    _run(at)
    assert not _empty_warnings(at) and at.selectbox(key="att_layer").value == "net.relu2"


def test_compare_page_shows_two_comparable_pairs_of_maps():
    at = AppTest.from_file(str(ROOT / "dashboard/compare.py"), default_timeout=TIMEOUT)
    at.query_params.update(
        cmp_a="mnist_small_cnn", cmp_b="mnist_small_cnn_pgd_at", cmp_image_sample=SEVEN, cmp_p_eps="0.3"
    )
    _run(at)
    at.button(key="cmp_run").click()
    _run(at)
    assert "0.3 (76.5/255)" in _text(at) and not _empty_warnings(at)
    captions = [i.caption for im in at.get("image") for i in im.proto.imgs]
    assert sum("Grad-CAM at net.relu2, clean" in c for c in captions) == 2  # one pair per model
    maps = _cam_maps(at)
    assert len(maps) == 2 and all(float(m[0].max()) > 0 and float(m[1].max()) > 0 for m in maps)
    at.selectbox(key="cmp_cam_standard_layer").set_value("net.conv2")
    _run(at)
    assert any("net.conv2" in w and "every channel-weighted sum" in w for w in _empty_warnings(at))


def test_attack_lab_shows_the_clean_grad_cam():
    at = AppTest.from_file(str(ROOT / "dashboard/attack_lab.py"), default_timeout=TIMEOUT)
    at.query_params.update(model="mnist_small_cnn", image_sample=SEVEN, attack="pgd", eps="0.3", steps="2")
    _run(at)
    assert "0.3 (76.5/255)" in _text(at) and not _empty_warnings(at)
    captions = [i.caption for im in at.get("image") for i in im.proto.imgs]
    assert any(c.startswith("Grad-CAM at net.relu2, clean") for c in captions)
    (maps,) = _cam_maps(at)
    assert float(maps[0].max()) > 0


def test_layercam_matches_its_formula():
    """LayerCAM (Jiang et al. 2021): ReLU(sum_k ReLU(dS/dA^k_ij) A^k_ij), by hand on a small CNN."""
    from advlens.attribution.cam import layercam
    from advlens.models import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn").eval()
    x, target = torch.rand(2, 1, 28, 28), torch.tensor([3, 8])
    store = {}
    hook = model.get_submodule("net.conv2").register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        score = model(x).gather(1, target.view(-1, 1)).sum()
    finally:
        hook.remove()
    (g,) = torch.autograd.grad(score, store["a"])
    hand = torch.relu((torch.relu(g) * store["a"]).sum(1)).detach()
    ours = layercam(model, x, target, layer="net.conv2", upsample_mode=None)
    torch.testing.assert_close(ours, hand, atol=1e-5, rtol=1e-4)
    assert float(ours.max()) > 0


def test_a_budget_of_0_3_reads_the_same_on_the_features_and_training_pages():
    feat = AppTest.from_file(str(ROOT / "dashboard/features.py"), default_timeout=TIMEOUT)
    feat.query_params.update(model="mnist_small_cnn", image_sample=SEVEN, feat_eps="0.3", feat_steps="2")
    assert "0.3 (76.5/255)" in _text(_run(feat))
    train = AppTest.from_file(str(ROOT / "dashboard/training.py"), default_timeout=TIMEOUT)
    train.session_state["tr_dataset"] = "digits"
    train.session_state["tr_eps_pgd_at_digits"] = "0.3"
    text = _text(_run(train))
    assert "0.3 (76.5/255)" in text and "76.5/255 (0.3)" not in text
