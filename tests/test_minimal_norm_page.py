"""The minimal-norm (FMN) curve on the Evaluate page (issue 28): model, dataset, n, norm, steps ->
the robust-accuracy-against-eps curve of one run, labelled as an upper bound, with the points of
earlier evaluations of that model in that norm."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

import dashboard.minimal_norm_section as section

ROOT = Path(__file__).resolve().parents[1]


def _report(model: str, norm: str, eps: float, acc: float, run_id: str = "ev1") -> dict:
    """The fields of a saved evaluation report that the section reads."""
    shown = "8/255 (0.0314)" if norm == "Linf" else f"{eps:g}"
    result = {"model": model, "norm": norm, "eps": eps, "eps_shown": shown, "suite": "standard", "n": 12}
    return {
        "id": run_id,
        "norm": norm,
        "results": [result | {"robust_accuracy": acc, "robust_interval_95": [0.2, 0.8]}],
    }


def test_suite_points_keep_the_model_and_norm_and_the_chart_marks_them():
    reports = [
        _report("digits_small_cnn", "L2", 1.5, 0.5),
        _report("digits_small_cnn", "Linf", 8 / 255, 0.4, "ev2"),
        _report("other", "L2", 1.0, 0.9, "ev3"),
    ]
    points = section.suite_points(reports, "digits_small_cnn", "L2")
    assert [(p["eps"], p["robust_accuracy"]) for p in points] == [(1.5, 0.5)]
    assert points[0]["label"] == "standard suite, n = 12 (ev1)"
    curve = {
        "norm": "Linf",
        "attack": "fmn_linf",
        "n": 4,
        "curve": [
            {"eps": e, "eps_shown": str(e), "robust_accuracy": a, "low": 0.0, "high": 1.0}
            for e, a in ((0.0, 1.0), (0.1, 0.5), (0.2, 0.0))
        ],
    }
    linf_points = section.suite_points(reports, "digits_small_cnn", "Linf")
    fig = go.Figure(section.curve_figure(curve, linf_points).to_dict())  # validates the hand-written spec
    assert "upper bound from one attack (FMN)" in fig.layout.title.text
    assert list(fig.data[1].x) == pytest.approx([0.0, 25.5, 51.0])  # L-inf in grey levels
    assert fig.data[2].x[0] == pytest.approx(8.0) and fig.data[2].y[0] == pytest.approx(40.0)
    assert fig.data[2].error_y.array[0] == pytest.approx(40.0) and fig.data[2].error_y.arrayminus[0] == pytest.approx(
        20
    )


def _evaluate_page(monkeypatch, reports):
    monkeypatch.setattr(section, "_earlier_reports", lambda model_name: reports)
    at = AppTest.from_file(str(ROOT / "dashboard/evaluate.py"), default_timeout=240)
    at.run()
    assert not at.exception, at.exception
    at.selectbox(key="mn_model").set_value("digits_small_cnn")
    at.selectbox(key="mn_dataset").set_value("digits")
    at.number_input(key="mn_n").set_value(8)
    at.selectbox(key="mn_norm").set_value("L2")
    at.number_input(key="mn_steps").set_value(20)
    next(b for b in at.button if b.label == "Compute the curve").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_evaluate_page_draws_the_curve_with_earlier_points(monkeypatch):
    at = _evaluate_page(monkeypatch, [_report("digits_small_cnn", "L2", 1.5, 0.5)])
    assert not [e.value for e in at.error]
    spec = next(c.proto.spec for c in at.get("plotly_chart") if "FMN" in c.proto.spec)
    assert "upper bound from one attack (FMN)" in spec and "standard suite, n = 12 (ev1)" in spec
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "8" and float(metrics["Median smallest perturbation found"]) > 0
    captions = " ".join(c.value for c in at.caption)
    assert "Upper bound from one attack (FMN)" in captions and "the 8 images" in captions
    assert "Images: the first 8 images of the digits test split" in captions  # the subset rule's sentence
    assert "fmn_l2 (steps=20" in captions and "standard suite, n = 12 (ev1) at 1.5: 50.0%" in captions
    assert "Download the curve (JSON)" in [b.proto.label for b in at.get("download_button")]


def test_the_evaluate_page_says_when_there_is_no_earlier_evaluation(monkeypatch):
    at = _evaluate_page(monkeypatch, [_report("digits_small_cnn", "Linf", 8 / 255, 0.4)])
    captions = " ".join(c.value for c in at.caption)
    assert "No finished L2 evaluation of digits_small_cnn yet" in captions


def test_earlier_reports_are_the_finished_evaluations_of_the_store():
    import json

    from advlens.evaluation import EvalSpec
    from advlens.evaluation import jobs as eval_jobs
    from advlens.jobs import RunStore

    spec = EvalSpec(models=["digits_small_cnn"], dataset="digits", eps=[0.05], suite="quick", n=12)
    store = RunStore()
    done = store.create_run(eval_jobs.check_spec(spec).to_dict(), "cpu", kind="evaluate")
    store.create_run(eval_jobs.check_spec(spec).to_dict(), "cpu", kind="evaluate")  # queued: not listed
    (eval_jobs.run_dir(done.id) / "report.json").write_text(json.dumps(_report("digits_small_cnn", "L2", 1.5, 0.5)))
    store.finish(done.id, "done")
    reports = section._earlier_reports("digits_small_cnn")
    assert [r["id"] for r in reports] == [done.id]
    assert section.suite_points(reports, "digits_small_cnn", "L2")[0]["label"] == f"standard suite, n = 12 ({done.id})"
