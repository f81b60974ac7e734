"""The Evaluate page (AppTest): a new evaluation is validated and queued; a finished one shows its
curves, the cascade, the checklist, a gallery that links to the Attack Lab, and its exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from advlens.evaluation import EvalSpec
from advlens.evaluation import jobs as eval_jobs
from advlens.jobs.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def finished_evaluation():
    """A quick evaluation of the shipped model, run in this process as its worker would."""
    spec = EvalSpec(models=["digits_small_cnn"], dataset="digits", eps=[0.05, 0.1], suite="quick", n=12, checklist=True)
    store = RunStore()
    rec = store.create_run(eval_jobs.check_spec(spec).to_dict(), "cpu", kind="evaluate")
    monkey = eval_jobs.run_checklist

    def light(model, x, y, ev, **kw):  # the checklist with CI-sized attacks
        return monkey(model, x, y, ev, square_queries=50, stronger=(20, 1), **kw)

    eval_jobs.run_checklist = light
    try:
        done = eval_jobs.execute(rec.id, store, echo=False)
    finally:
        eval_jobs.run_checklist = monkey
    assert done.status == "done", done.message
    return done


def test_a_finished_evaluation_shows_curves_cascade_checklist_gallery_and_exports(finished_evaluation):
    run_id = finished_evaluation.id
    at = AppTest.from_file(str(ROOT / "dashboard/evaluate.py"), default_timeout=120)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, at.exception
    titles = [e.label for e in at.expander]
    parts = [t for t in titles if t.startswith("digits_small_cnn at eps")]
    assert len(parts) == 2 and "robust" in parts[1] and "[" in parts[1]
    assert at.get("plotly_chart"), "the robustness curves"
    frames = [df.value for df in at.dataframe]
    cascade = next(f for f in frames if "stage" in f.columns)
    assert list(cascade["stage"]) == ["clean", "apgd_ce", "apgd_dlr"]
    checklist = next(f for f in frames if "verdict" in f.columns)
    assert len(checklist) == 6 and checklist["why"].str.len().min() > 10
    assert any("Images: the first 12 images of the digits test split" in m.value for m in at.markdown)
    captions = " ".join(c.value for c in at.caption)
    assert "n = 12" in captions and "broken by apgd_" in captions
    links = [b for b in at.get("link_button")]
    assert links and all("attack?model=digits_small_cnn" in b.proto.url for b in links)
    assert "image_idx=" in links[0].proto.url and "image_src=Dataset+item" in links[0].proto.url
    downloads = [b.proto.label for b in at.get("download_button")]
    assert {"HTML report", "JSON", "CSV"} <= set(downloads)


def test_the_form_refuses_a_bad_budget_and_queues_a_good_evaluation(monkeypatch):
    launched = []
    monkeypatch.setattr(eval_jobs, "spawn_worker", lambda run_id, command, store=None: launched.append(command) or 0)
    at = AppTest.from_file(str(ROOT / "dashboard/evaluate.py"), default_timeout=120)
    at.run()
    at.text_input(key="ev_eps").set_value("8")
    at.multiselect[0].set_value(["digits_small_cnn"])
    at.button[0].click().run()
    assert not at.exception and any("above 1" in e.value for e in at.error)
    assert not RunStore().list_runs(kind="evaluate")
    at.text_input(key="ev_eps").set_value("8/255, 0.1")
    at.button[0].click().run()
    assert not at.error, [e.value for e in at.error]
    (rec,) = RunStore().list_runs(kind="evaluate")
    assert rec.status == "queued" and rec.config["eps"] == [8 / 255, 0.1] and rec.config["suite"] == "standard"
    assert launched and launched[0][-3:] == ["evaluate", "--run-id", rec.id]
    assert any("the first 100 images of the digits test split" in m.value for m in at.success)
    # exactly these images: queued with their indices, and a warning that they cover 3 classes only
    at.text_area(key="ev_indices").set_value("3, 7, 11")
    at.text_input(key="ev_eps").set_value("0.1")
    at.button[0].click().run()
    assert not at.error, [e.value for e in at.error]
    newest = RunStore().list_runs(kind="evaluate")[0]
    assert newest.config["indices"] == [3, 7, 11] and newest.config["offset"] == 0
    assert any("cover 3 of the 10 classes" in w.value for w in at.warning)
