"""The Attention and Features pages under Streamlit's AppTest, on the digits model, with bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard.image_picker import CURRENT_KEY, CurrentExample  # noqa: E402

TIMEOUT = 180
ROOT = Path(__file__).resolve().parents[1]
ATTENTION = str(ROOT / "dashboard" / "attention.py")
FEATURES = str(ROOT / "dashboard" / "features.py")


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def current_example(digits_test) -> CurrentExample:
    x, y = digits_test.item(5)
    torch.manual_seed(0)
    x_adv = (x + 0.1 * torch.randn_like(x).sign()).clamp(0, 1)
    return CurrentExample("digits_small_cnn", x, y, x_adv, "test noise", {"eps": 0.1}, "digits test #5")


def test_attention_page_standalone_and_bad_input():
    at = AppTest.from_file(ATTENTION, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert errors(at) == []
    assert any("PGD L-inf" in m.value for m in at.markdown)
    assert len(at.dataframe) == 2  # pair metrics and per-map metrics
    pair = at.dataframe[0].value
    assert pair["metric"].iloc[0] == "top-20% IoU" and 0.0 <= float(pair["value"].iloc[0]) <= 1.0

    for bad in (0.0, 150.0):
        at.number_input(key="att_k").set_value(bad).run()
        assert not at.exception
        assert any("(0, 100]" in e for e in errors(at)), errors(at)
    at.number_input(key="att_k").set_value(10.0).run()
    assert errors(at) == [] and at.dataframe[0].value["metric"].iloc[0] == "top-10% IoU"

    at.text_input(key="att_layer_text").set_value("net.no_such_layer").run()
    assert not at.exception
    assert any("no layer 'net.no_such_layer'" in e for e in errors(at))
    at.text_input(key="att_layer_text").set_value("net.conv1").run()
    assert errors(at) == []

    at.selectbox(key="att_method").set_value("saliency").run()
    assert not at.exception and errors(at) == []
    at.selectbox(key="att_target").set_value("own_pred").run()
    assert not at.exception and errors(at) == []

    at.text_input(key="att_eps").set_value("-3/255").run()  # a negative budget: the attack refuses it
    assert not at.exception
    assert any("Attack settings rejected" in e for e in errors(at))


def test_attention_page_dataset_analysis():
    at = AppTest.from_file(ATTENTION, default_timeout=TIMEOUT).run()
    at.number_input(key="ana_n").set_value(24)
    at.number_input(key="ana_steps").set_value(3)
    at.text_input(key="ana_eps").set_value("25/255")
    at.button(key="ana_run").click().run()
    assert not at.exception, at.exception
    assert errors(at) == []
    assert any("first 24 images" in m.value for m in at.markdown)
    table = at.dataframe[-1].value
    assert "top-k% IoU" in set(table["metric"])
    at.text_input(key="ana_eps").set_value("-1/255")
    at.button(key="ana_run").click().run()
    assert not at.exception
    assert any("could not run" in e for e in errors(at))


def test_attention_page_uses_the_attack_lab_example(digits_test):
    at = AppTest.from_file(ATTENTION, default_timeout=TIMEOUT)
    at.session_state[CURRENT_KEY] = current_example(digits_test)
    at.run()
    assert not at.exception, at.exception
    assert any("Attack Lab example" in i.value for i in at.info)
    assert any("test noise" in m.value for m in at.markdown)
    at.toggle(key="att_other").set_value(True).run()  # switch to a picked image
    assert not at.exception
    assert not any("Attack Lab example" in i.value for i in at.info)
    assert any("PGD L-inf" in m.value for m in at.markdown)


def test_features_page_and_bad_input(digits_test):
    at = AppTest.from_file(FEATURES, default_timeout=TIMEOUT)
    at.session_state[CURRENT_KEY] = current_example(digits_test)
    at.run()
    assert not at.exception, at.exception
    assert errors(at) == []
    # the divergence verdict is stated either way
    assert len(at.success) + len(at.warning) == 1
    assert "divergence" in (at.success[0].value if at.success else at.warning[0].value)
    ratio = float(at.metric[0].value)
    assert 0.0 < ratio < 1.5

    at.selectbox(key="feat_op").set_value("mean").run()
    assert not at.exception and errors(at) == []
    assert float(at.metric[0].value) < 1.0  # a 3x3 box filter shrinks the adversarial noise
    at.number_input(key="feat_kernel").set_value(4).run()
    assert not at.exception
    assert any("odd" in e for e in errors(at)), errors(at)
    at.number_input(key="feat_kernel").set_value(3).run()

    at.text_input(key="feat_layer_text").set_value("net.fc2").run()
    assert not at.exception
    assert any("not a spatial feature map" in e for e in errors(at)), errors(at)
    at.text_input(key="feat_layer_text").set_value("bogus.layer").run()
    assert not at.exception
    assert any("no layer 'bogus.layer'" in e for e in errors(at))


def test_attention_page_compares_a_second_model_on_the_same_image():
    """The toggle shows another model's clean and adversarial maps on the page's image; only models of
    the same input size are offered, and the transfer outcome is named."""
    at = AppTest.from_file(ATTENTION, default_timeout=TIMEOUT)
    at.query_params["att_second_on"] = "1"
    at.query_params["att_second"] = "mnist_small_cnn_pgd_at"
    at.run()
    assert not at.exception, at.exception
    assert errors(at) == []
    picker = at.selectbox(key="att_second")
    assert picker.value == "mnist_small_cnn_pgd_at"
    offered = {str(o) for o in picker.options}
    assert not any("cifar10" in o or "efficientnet" in o for o in offered)  # other input sizes are not offered
    lines = [m.value for m in at.markdown if "mnist_small_cnn_pgd_at" in m.value and "transfer attack" in m.value]
    assert len(lines) == 1, [m.value for m in at.markdown]
    captions = [i.caption for im in at.get("image") for i in im.proto.imgs]
    assert sum(c.startswith("clean ·") for c in captions) == 2, captions  # the page's model, then the second
    assert sum(c.startswith("adversarial ·") for c in captions) == 2, captions


def test_the_second_model_maps_the_new_image_when_the_attacked_image_changes(digits_test, monkeypatch):
    """A new clean/adversarial pair on which both models predict what they predicted before must still
    get its own maps from the second model (the maps were once keyed by the model names only)."""
    import dashboard.cam_pair as cam_pair_module

    seen = []
    real = cam_pair_module.compute_map

    def recording(model, x, *args, **kwargs):
        seen.append(x[1:].clone())  # the adversarial image of the pair
        return real(model, x, *args, **kwargs)

    monkeypatch.setattr(cam_pair_module, "compute_map", recording)
    x, y = digits_test.item(5)
    at = AppTest.from_file(ATTENTION, default_timeout=TIMEOUT)
    at.query_params["att_second_on"] = "1"
    at.query_params["att_second"] = "mnist_small_cnn_pgd_at"
    for scale in (0.01, 0.02):  # noise too small to change either model's prediction
        torch.manual_seed(0)
        x_adv = (x + scale * torch.randn_like(x).sign()).clamp(0, 1)
        at.session_state[CURRENT_KEY] = CurrentExample("digits_small_cnn", x, y, x_adv, "noise", {}, "digits test #5")
        at.run()
        assert not at.exception, at.exception
        lines = [m.value for m in at.markdown if "mnist_small_cnn_pgd_at" in m.value]
        assert len(lines) == 1 and "held" in lines[0], lines  # the same predictions both times
        assert any(torch.equal(s, x_adv) for s in seen), "the second model's maps were not computed on this image"


def test_a_finished_study_job_is_read_once_and_not_polled(monkeypatch):
    import streamlit as st

    from advlens import attention_study as study
    from advlens.jobs import RunStore

    spec = study.StudySpec(model="digits_small_cnn", dataset="digits", n=4, eps=0.2, steps=1)
    monkeypatch.setattr(study, "spawn_worker", lambda *a, **k: 0)
    store = RunStore()
    rec = study.submit(spec, store)
    assert study.execute(rec.id, store, echo=False).status == "done"
    loads, every = [], []
    load, fragment = study.load_result, st.fragment
    monkeypatch.setattr(study, "load_result", lambda job_id: loads.append(job_id) or load(job_id))

    def spy(*args, **kwargs):
        if args:  # @st.fragment on a function
            return fragment(*args, **kwargs)
        deco = fragment(**kwargs)
        return lambda f: (every.append(kwargs.get("run_every")) if f.__name__ == "study_job_panel" else None) or deco(f)

    monkeypatch.setattr(st, "fragment", spy)
    at = AppTest.from_file(ATTENTION, default_timeout=TIMEOUT)
    at.session_state["ana_job"] = rec.id
    at.run()
    at.run()
    assert not at.exception, at.exception
    assert loads == [rec.id] and every == [None, None]  # the result read once; no polling of a finished job
    assert any("first 4 images" in m.value for m in at.markdown)

    queued = study.submit(spec, store)  # an active job is polled until it stops
    at.session_state["ana_job"] = queued.id
    every.clear()
    at.run()
    assert every == [2]
    at.button(key="ana_stop").click().run()
    assert not at.exception, at.exception
    assert store.require(queued.id).status == "cancelled" and every[-1] is None and loads == [rec.id]
    at.button(key="ana_resume").click().run()  # resumed: polled again
    assert not at.exception, at.exception
    assert store.require(queued.id).status == "queued" and every[-1] == 2
