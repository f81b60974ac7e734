"""The Training page (AppTest): bad input gives st.error, Start launches a real run that lands in the
store, and reopening the page with ?run=<id> shows its status and curves."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from streamlit.testing.v1 import AppTest

from advlens.jobs.store import RunStore, db_path
from advlens.training import jobs

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "dashboard/training.py")
K = "pgd_at_digits"


def _start(at: AppTest) -> AppTest:
    return next(b for b in at.button if b.label == "Start").click().run()


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_bad_input_shows_an_error_and_starts_nothing():
    at = _page()
    assert any("No runs yet" in i.value for i in at.info)
    at.text_input(key=f"tr_eps_{K}").set_value("-0.1")
    at = _start(at)
    assert not at.exception
    assert any("eps must be >= 0" in e.value for e in at.error), [e.value for e in at.error]
    at.selectbox(key="tr_dataset").set_value("folder").run()
    at.text_input(key="tr_root_folder").input("/nonexistent/images")
    at = _start(at)
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error), [e.value for e in at.error]
    assert not db_path().exists() or RunStore().list_runs() == []


def test_start_a_tiny_run_from_the_page_and_reopen_it():
    at = _page()
    assert at.selectbox(key="tr_objective").value == "pgd_at"
    assert any("1706.06083" in c.value for c in at.caption)  # the source under the formula
    assert at.get("latex"), "the objective's formula is shown with st.latex"
    at.number_input(key=f"tr_hp_{K}_steps").set_value(2)
    at.number_input(key="tr_max_steps").set_value(3)
    at.number_input(key="tr_limit").set_value(128)
    at.number_input(key="tr_val").set_value(32)
    at.number_input(key="tr_eval_size").set_value(32)
    at.number_input(key="tr_eval_steps").set_value(2)
    at = _start(at)
    assert not at.exception, [e.value for e in at.exception]
    assert any("is queued" in s.value or "is running" in s.value for s in at.success), [s.value for s in at.success]
    (rec,) = RunStore().list_runs()
    assert rec.id in str(at.query_params["run"])
    assert rec.objective == "pgd_at" and rec.config["objective_params"]["steps"] == 2
    assert rec.config["max_steps"] == 3 and rec.config["eps"] == 0.15  # the digits default
    try:
        rec = jobs.wait(rec.id, timeout=300)
    finally:
        if rec.active and rec.pid:
            os.kill(rec.pid, signal.SIGKILL)
    assert rec.status == "done", (rec.status, rec.message)

    # A new tab on ?run=<id>: the run is selected, finished, with its curves and its zoo name.
    again = AppTest.from_file(PAGE, default_timeout=120)
    again.query_params["run"] = rec.id
    again.run()
    assert not again.exception, [e.value for e in again.exception]
    assert again.selectbox(key="tr_run").value == rec.id
    assert any(f"run-{rec.id}-pgd_at" in s.value for s in again.success)
    titles = " ".join(c.proto.spec for c in again.get("plotly_chart"))
    assert "Training loss" in titles and "robust_acc" in titles
    assert any(m.label == "Status" and "done" in m.value for m in again.metric)
