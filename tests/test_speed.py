"""What keeps the app quick (issue 26), checked by behaviour, never by timing: the Home page runs no
attack (its example is precomputed and honest), chart specs stay valid without plotly's validation,
and the cached zoo listing follows the files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from streamlit.testing.v1 import AppTest

from advlens import showcase

ROOT = Path(__file__).resolve().parents[1]


def test_the_first_home_render_runs_no_attack(monkeypatch):
    from advlens.attacks.base import Attack

    calls = []
    monkeypatch.setattr(Attack, "__call__", lambda self, *a, **k: calls.append(type(self).__name__))
    monkeypatch.setattr(showcase, "compute", lambda *a, **k: calls.append("showcase.compute"))
    at = AppTest.from_file(str(ROOT / "dashboard/home.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    assert calls == []
    captions = " ".join(c.value for c in at.caption) + " ".join(str(i.proto) for i in at.get("image"))
    rec, why = showcase.load()
    assert rec is not None, why
    assert f"attacked: {rec['adv_top'][0]}" in captions and "clean: Egyptian cat" in captions


def test_without_the_precomputed_files_the_home_page_offers_to_compute(monkeypatch, tmp_path):
    from advlens.attacks.base import Attack

    calls = []
    monkeypatch.setattr(Attack, "__call__", lambda self, *a, **k: calls.append(type(self).__name__))
    monkeypatch.setattr(showcase, "SHOWCASE_DIR", tmp_path / "no_showcase")
    at = AppTest.from_file(str(ROOT / "dashboard/home.py"), default_timeout=180).run()
    assert not at.exception and calls == []
    assert any("build-showcase" in i.value for i in at.info), [i.value for i in at.info]
    assert at.button(key="home_showcase_run")


def test_the_precomputed_showcase_is_what_its_pictures_do(lite0):
    rec, why = showcase.load()
    assert rec is not None, why
    assert rec["settings"] == showcase.SHOWCASE and rec["success"]
    clean, adv = (torch.from_numpy(rec[k]).permute(2, 0, 1).float() / 255 for k in ("clean", "adv"))
    assert clean.shape == (3, 224, 224)
    assert float((adv - clean).abs().max()) <= showcase.SHOWCASE["eps"] + 1e-6
    from advlens.predict import predict_proba

    probs = predict_proba(lite0, torch.stack([clean, adv]))
    names = lite0.class_names
    assert names[int(probs[0].argmax())] == rec["clean_top"][0] == "Egyptian cat"
    assert int(probs[1].argmax()) == showcase.SHOWCASE["target"]
    assert rec["adv_top"] == (names[showcase.SHOWCASE["target"]], pytest.approx(float(probs[1].max()), abs=1e-3))


def test_a_missing_or_stale_showcase_is_reported_not_computed(tmp_path):
    rec, why = showcase.load(tmp_path / "nothing")
    assert rec is None and "missing" in why
    folder = tmp_path / "copy"
    shutil.copytree(showcase.SHOWCASE_DIR, folder)
    meta = json.loads((folder / "showcase.json").read_text())
    meta["settings"]["steps"] = 3
    (folder / "showcase.json").write_text(json.dumps(meta))
    rec, why = showcase.load(folder)
    assert rec is None and "other settings" in why
    (folder / "adv.png").write_bytes(b"not a png")
    meta["settings"] = showcase.SHOWCASE
    (folder / "showcase.json").write_text(json.dumps(meta))
    rec, why = showcase.load(folder)
    assert rec is None and "decoded" in why


def test_chart_specs_pass_plotly_validation():
    from advlens.predict import TopK
    from dashboard.charts import line_chart, topk_bars

    bars = topk_bars(TopK([3, 8], ["3", "8"], [0.9, 0.1]), "Top-5", highlight="8")
    line = line_chart(
        [0, 1, 2], {"loss": [1.0, 0.5, 0.2], "L2": [0, 1, 2]}, "Loss", "call", "loss", marker_x=1, log_y=True
    )
    for fig in (bars, line):
        go.Figure(fig.to_dict())  # raises on any invalid property
    assert line.layout.yaxis.type == "log"
    (shape,) = line.layout.shapes
    assert (shape.x0, shape.x1, shape.yref) == (1, 1, "paper")
    assert list(bars.data[0].y) == ["8", "3"] and list(bars.data[0].marker.color) == ["#ff9f1c", "#1f77b4"]


def test_the_zoo_listing_follows_the_model_folder():
    from advlens.models import build_model, save_checkpoint
    from advlens.paths import user_models_dir
    from advlens.zoo import list_models

    before = [e.name for e in list_models()]
    assert "mine" not in before
    user_models_dir().mkdir(parents=True, exist_ok=True)
    save_checkpoint(build_model("small_cnn"), user_models_dir() / "mine")
    assert "mine" in [e.name for e in list_models()]
    entries = list_models()
    entries[0].name = "changed by a caller"
    assert list_models()[0].name != "changed by a caller"  # callers get copies
    for p in user_models_dir().glob("mine.*"):
        p.unlink()
    assert [e.name for e in list_models()] == before


def test_enlarge_repeats_pixels_like_nearest_neighbour():
    from advlens.attacks.display import enlarge, image_rgb

    img = image_rgb(torch.rand(1, 28, 28))
    big = enlarge(img, 224)
    assert big.shape == (224, 224, 3)
    assert np.array_equal(big[::8, ::8], img)
