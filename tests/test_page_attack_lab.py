"""The Attack Lab page (AppTest): every attack runs with its defaults, settings round-trip through
the URL, bad settings show st.error, the scrubber, the minimal-eps finder and the shared example."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from advlens.attacks import ATTACKS
from dashboard.session_memo import MEMO_KEY

PAGE = str(Path(__file__).resolve().parents[1] / "dashboard" / "attack_lab.py")


def page(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.query_params["model"] = "digits_small_cnn"
    for k, v in query.items():
        at.query_params[k] = str(v)
    return at.run()


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def levels(shown: str) -> float:
    """The grey levels of a budget shown as ``8/255 (0.0314)`` or ``0.3 (76.5/255)``."""
    return float(re.search(r"([-\d.]+)/255", shown).group(1))


def errors(at) -> list[str]:
    return [e.value for e in at.error]


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_runs_with_its_defaults(name):
    at = page(attack=name)
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at)
    assert at.selectbox(key="atk_name").value == name
    m = metrics(at)
    assert m["Success"] in {"yes", "no"} and m["L-inf"].endswith(")") and "/255" in m["L-inf"] and float(m["L2"]) > 0
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert sum("top-5" in c for c in charts) == 2
    assert len(at.get("download_button")) == 2
    label_only = name.startswith("hopskipjump")  # + distance against label queries
    if ATTACKS[name].iterative:
        assert len(at.select_slider) == 1 and len(charts) == 5 + label_only  # + loss, confidence, norms
    assert ("Distance against label queries" in " ".join(charts)) == label_only
    if name.startswith("fmn_"):  # the curve mode waits for its button
        assert at.button(key="atk_curve_run").label == "Run on n images"
    if ATTACKS[name].norm == "Linf":
        assert levels(m["L-inf"]) <= 32 + 1e-3  # the digits default budget, 32/255
    assert at.query_params["attack"] == [name] or at.query_params["attack"] == name


def test_url_settings_are_read_then_written_back():
    at = page(attack="pgd", eps="40/255", steps=3, target=5, seed=2)
    assert not at.exception and not errors(at)
    assert at.text_input(key="atk_pgd_eps").value == "40/255"
    assert at.number_input(key="atk_pgd_steps").value == 3
    assert at.selectbox(key="atk_target").value == 5 and at.number_input(key="atk_seed").value == 2
    m = metrics(at)
    assert levels(m["L-inf"]) <= 40 + 1e-3
    assert [d.delta for d in at.metric if d.label == "Success"] == ["→ 5"]
    assert len(at.select_slider[0].options) == 4  # steps 0..3
    at.text_input(key="atk_pgd_eps").set_value("0.0784").run()  # either form is read
    assert not at.exception
    assert _qp(at, "eps") == "0.0784" and _qp(at, "steps") == "3" and _qp(at, "target") == "5"
    assert levels(metrics(at)["L-inf"]) <= 20 + 1e-3


def _qp(at, key):
    value = at.query_params[key]
    return value[0] if isinstance(value, list) else value


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("atk_pgd_eps", "-3/255", "eps = -3/255 (-0.0118) is too small"),
        ("atk_pgd_steps", 0, "steps = 0 is too small"),
        ("atk_pgd_eps", "400/255", "eps = 400/255 (1.5686) is too large"),
        ("atk_pgd_eps", "40", "write 40/255"),
    ],
)
def test_bad_parameters_show_an_error(key, value, match):
    at = page(attack="pgd", steps=2)
    (at.text_input if isinstance(value, str) else at.number_input)(key=key).set_value(value).run()
    assert not at.exception
    assert any(match in e for e in errors(at)), errors(at)
    assert not at.metric or "Smallest L-inf eps" not in metrics(at)


def test_target_out_of_range_from_the_link_shows_an_error():
    at = page(attack="pgd", steps=2, target=12)
    assert not at.exception
    assert any("target class '12'" in e and "out of range" in e for e in errors(at)), errors(at)
    assert "L-inf" not in metrics(at)


def test_target_equal_to_the_true_class_shows_an_error():
    at = page(attack="pgd", steps=2, image_src="Dataset item", image_ds="digits", image_idx=3)
    assert not at.exception and not errors(at)
    at.selectbox(key="atk_target").set_value(7).run()  # digits test #3 is a 7
    assert not at.exception
    assert any("differ from the true class" in e for e in errors(at)), errors(at)


def test_targeted_attack_and_scrubber():
    at = page(attack="pgd", eps="64/255", steps=10, target=1, image_src="Dataset item", image_ds="digits", image_idx=3)
    assert not at.exception and not errors(at)
    assert metrics(at)["Success"] == "yes"
    assert "p(target)" in " ".join(c.proto.spec for c in at.get("plotly_chart"))
    at.select_slider[0].set_value(0).run()
    assert not at.exception
    assert any(c.value.startswith("step 0:") for c in at.caption)


def test_manual_mode_waits_for_the_run_button():
    at = page(attack="fgsm", auto=0)
    assert not at.exception and "L-inf" not in metrics(at)
    assert any("Run attack" in i.value for i in at.info)
    at.button(key="atk_run").click().run()
    assert not at.exception and "L-inf" in metrics(at)


def test_a_stop_request_keeps_the_page_quiet():
    at = page(attack="pgd", steps=2)
    at.session_state["atk_stop_requested"] = True
    at.number_input(key="atk_pgd_steps").set_value(3).run()  # new settings, but a stop is pending
    assert not at.exception and "L-inf" not in metrics(at)
    assert any("Stopped" in i.value for i in at.info)
    at.number_input(key="atk_pgd_steps").set_value(4).run()  # the request is consumed: runs again
    assert "L-inf" in metrics(at)


def test_minimal_eps_finder_and_shared_example():
    at = page(attack="fgsm", eps="8/255", image_src="Dataset item", image_ds="digits", image_idx=3)
    assert not at.exception
    current = at.session_state["advlens_current_example"]
    assert current.attack == "fgsm" and current.model_name == "digits_small_cnn" and current.label == 7
    assert tuple(current.x_adv.shape) == (1, 1, 28, 28) and current.params["eps"] == pytest.approx(8 / 255)
    at.number_input(key="atk_me_steps").set_value(10).run()
    at.button(key="atk_me_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    m = metrics(at)
    eps = m["Smallest L-inf eps"]
    assert "/255" in eps and 0 < levels(eps) <= 64
    assert float(m["DeepFool L2"]) > 0


def test_an_interrupted_run_is_kept_after_stop_and_rerun_otherwise():
    """Simulates Streamlit interrupting a run: a Stop click keeps the partial result for good,
    any other interruption runs the attack again."""
    at = page(attack="pgd", steps=3)
    ((key, res),) = at.session_state[MEMO_KEY].items()
    res.extra["interrupted"], res.stopped = True, True
    at.session_state["atk_stop_requested"] = True
    at.run()
    assert not at.exception and at.session_state[MEMO_KEY][key] is res
    assert any("stopped early" in w.value for w in at.warning)
    assert res.extra["interrupted"] is False
    at.run()
    assert at.session_state[MEMO_KEY][key] is res  # kept: no automatic rerun after a Stop
    res.extra["interrupted"] = True  # now an interruption by some other click
    at.run()
    fresh = at.session_state[MEMO_KEY][key]
    assert fresh is not res and not fresh.stopped and not any("stopped early" in w.value for w in at.warning)


def test_switching_model_restores_that_models_defaults():
    at = page(attack="fgsm", eps="50/255", target=3)
    assert at.text_input(key="atk_fgsm_eps").value == "50/255"
    at.selectbox(key="model").select("efficientnet_lite0").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_input(key="atk_fgsm_eps").value == "2/255"  # the ImageNet default
    assert at.selectbox(key="atk_target").value == -1
    assert "Egyptian cat" in " ".join(c.proto.spec for c in at.get("plotly_chart"))  # chelsea, the first photo


@pytest.mark.parametrize("name,unit", [("hopskipjump", "L2"), ("hopskipjump_linf", "L-inf (x/255)")])
def test_label_only_attacks_plot_distance_against_queries(name, unit):
    at = page(attack=name, steps=4, image_src="Dataset item", image_ds="digits", image_idx=3)
    assert not at.exception and not errors(at)
    chart = next(c for c in at.get("plotly_chart") if "Distance against label queries" in c.proto.spec)
    spec = json.loads(chart.proto.spec)
    queries, dist = spec["data"][0]["x"], spec["data"][0]["y"]
    assert len(queries) == 5 and queries == sorted(queries) and queries[0] > 0  # after the start, then 4 iterations
    assert dist[-1] <= dist[0] and spec["layout"]["yaxis"]["title"]["text"] == unit
    assert any("queries in all for this image" in c.value for c in at.caption)


def test_fmn_curve_mode_on_n_images():
    at = page(attack="fmn_linf", steps=20)
    assert not at.exception and not errors(at)
    assert not any("FMN)" in c.proto.spec for c in at.get("plotly_chart"))  # only on a click
    at.selectbox(key="atk_curve_ds").set_value("digits")
    at.number_input(key="atk_curve_n").set_value(8)
    at.button(key="atk_curve_run").click().run()
    assert not at.exception and not errors(at)
    chart = next(c for c in at.get("plotly_chart") if "upper bound from one attack (FMN)" in c.proto.spec)
    spec = json.loads(chart.proto.spec)
    acc = spec["data"][1]["y"]
    assert acc[0] == 100.0 and acc == sorted(acc, reverse=True) and acc[-1] < 100.0
    assert spec["layout"]["xaxis"]["title"]["text"] == "eps (L-inf, x/255)"
    m = metrics(at)
    assert m["Images"] == "8" and "/255" in m["Median smallest perturbation found"]
    captions = " ".join(c.value for c in at.caption)
    assert "Images: the first 8 images of the digits test split" in captions and "fmn_linf (steps=20" in captions


def test_fmn_curve_refuses_a_dataset_of_other_classes(monkeypatch):
    from advlens.data import ImageDataset
    from dashboard import minimal_norm_section as section

    real = section.cached_dataset

    def renamed(name, split, root):
        ds = real(name, split, root)
        return ImageDataset(ds.name, ds.pixels, ds.labels, tuple(f"c{i}" for i in range(10)), ds.split)

    monkeypatch.setattr(section, "cached_dataset", renamed)
    at = page(attack="fmn_l2", steps=5)
    at.number_input(key="atk_curve_n").set_value(4)
    at.button(key="atk_curve_run").click().run()
    assert not at.exception
    assert any("Curve settings rejected" in e and "classes are not the model's" in e for e in errors(at)), errors(at)
