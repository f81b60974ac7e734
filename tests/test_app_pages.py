"""AppTest: every page of the navigation renders with no exception; the home page works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from advlens.models import build_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PAGES = re.findall(r'st\.Page\("([^"]+)"', (ROOT / "streamlit_app.py").read_text())


def test_navigation_lists_the_pages():
    assert PAGES[0] == "dashboard/home.py"
    for page in PAGES:
        assert (ROOT / page).is_file(), page


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(page):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    assert not at.exception, at.exception
    if page != PAGES[0]:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, f"{page} shows no title"


def test_home_shows_predictions_for_photos_and_digits():
    at = AppTest.from_file(str(ROOT / "dashboard/home.py"), default_timeout=180).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "efficientnet_lite0" in text and "digits_small_cnn" in text
    charts = at.get("plotly_chart")
    assert len(charts) >= 8  # 4 photos + at least 4 digits
    blob = " ".join(c.proto.spec for c in charts)
    assert "Egyptian cat" in blob and "espresso" in blob
    assert any(f'"y":["{d}"' in blob or f'"{d}"]' in blob for d in "0123456789")
    assert "cpu" in " ".join(c.value for c in at.sidebar.caption).lower()


def test_home_imports_a_checkpoint_from_a_path(tmp_path):
    good = save_checkpoint(build_model("small_cnn"), tmp_path / "my_model")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04garbage pickle")
    at = AppTest.from_file(str(ROOT / "dashboard/home.py"), default_timeout=180).run()
    at.text_input(key="ckpt_path").input(str(bad)).run()
    at.button(key="ckpt_import_path").click().run()
    assert not at.exception
    assert any("pickle" in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key="ckpt_path").input(str(good)).run()
    at.button(key="ckpt_import_path").click().run()
    assert not at.exception and any("my_model" in s.value for s in at.success)
    from advlens.zoo import list_models

    assert "my_model" in [e.name for e in list_models()]


def test_topk_bars_keep_numeric_class_names_as_labels():
    from advlens.predict import TopK
    from dashboard.charts import topk_bars

    fig = topk_bars(TopK([3, 8, 5], ["3", "8", "5"], [0.9, 0.06, 0.04]))
    assert fig.layout.yaxis.type == "category"
    assert list(fig.layout.yaxis.categoryarray) == ["5", "8", "3"]  # best at the top
