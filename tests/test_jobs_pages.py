"""The certification section of the Evaluate page (AppTest): a few images are certified at once; more
are a job, listed with its progress and a Stop button, resumable, and shown from the store when done."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from advlens import certify as cert
from advlens.jobs import RunStore, api


def _section():
    from advlens.jobs import RunStore
    from dashboard.certify_section import certified_section

    certified_section(RunStore())


def _page():
    at = AppTest.from_function(_section, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.selectbox(key="cert_model").set_value("digits_small_cnn")
    at.selectbox(key="cert_dataset").set_value("digits")
    at.number_input(key="cert_n").set_value(100)
    at.number_input(key="cert_n0").set_value(10)
    return at


def test_a_few_images_are_certified_at_once():
    at = _page()
    at.number_input(key="cert_images").set_value(3)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart") and any("computed here" in c.value or "Abstained" in c.value for c in at.caption)
    assert not RunStore().list_runs(kind=None)  # no job for three images


def test_many_images_are_a_job_with_stop_resume_and_results(monkeypatch):
    launched = []
    monkeypatch.setattr(cert, "spawn_worker", lambda run_id, command, store=None: launched.append(run_id) or 0)
    at = _page()
    at.number_input(key="cert_images").set_value(cert.INLINE_MAX + 1)
    at.button[0].click().run()
    assert not at.exception, at.exception
    (rec,) = RunStore().list_runs(kind="certify")
    assert launched == [rec.id] and rec.status == "queued" and rec.config["images"] == cert.INLINE_MAX + 1
    assert any(f"Certification {rec.id} queued" in s.value for s in at.success)
    assert [b.label for b in at.button if b.key == f"cert_stop_{rec.id}"] == ["Stop"]
    at.button(key=f"cert_stop_{rec.id}").click().run()  # queued: cancelled at once
    assert RunStore().require(rec.id).status == "cancelled"
    at.button(key=f"cert_resume_{rec.id}").click().run()
    assert RunStore().require(rec.id).status == "queued" and launched == [rec.id, rec.id]
    spec = cert.CertifySpec.from_dict({**rec.config, "images": 2})  # the worker, on fewer images for CI
    RunStore().update(rec.id, config=spec.to_dict())
    assert api.execute(rec.id, echo=False).status == "done"
    at.run()
    at.button(key=f"cert_show_{rec.id}").click().run()
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "Clopper-Pearson" in captions and "of 2 images" in captions
    assert any(f"job {rec.id}" in str(c.proto) for c in at.get("plotly_chart"))


def test_a_few_images_wait_their_turn_and_a_stop_keeps_the_images_done(monkeypatch):
    """The inline certification runs under the CPU gate (advlens.threads) with the pages' progress
    helper; Stop (here: the engine raising Stopped) shows the certificates finished before it."""
    from advlens.smoothing import Certificate, Stopped
    from advlens.threads import GATE
    from dashboard import certify_section

    gated = []

    def stopped(model, x, sigma, n0, n, alpha, progress=None, should_stop=None):
        gated.append(GATE.running)
        progress(n0 + n, len(x) * (n0 + n))
        exc = Stopped("stopped")
        exc.partial = [Certificate(0, 0.3, 0.9, 95, n, 0.1)]
        raise exc

    monkeypatch.setattr(certify_section, "certify_batch", stopped)
    at = _page()
    at.number_input(key="cert_images").set_value(3)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert gated == [1]  # in the gate's one slot
    captions = " ".join(c.value for c in at.caption)
    assert "stopped after 1 of 3 images" in captions and "Abstained on 0 of 1 images" in captions


def _job_rows():
    import streamlit as st

    from advlens.jobs import RunStore
    from dashboard.job_panel import job_row, rerun_when_finished

    st.session_state["runs"] = st.session_state.get("runs", 0) + 1
    store = RunStore()
    jobs = store.list_runs(kind="certify")
    rerun_when_finished("test_active_jobs", jobs)
    for rec in jobs:
        job_row(rec, store, "t", f"`{rec.id}` · ")


def test_the_shared_job_row_stops_resumes_and_redraws_the_page_once_when_a_job_ends(monkeypatch):
    """dashboard.job_panel: Stop for an active job, Resume (the generic one) for a cancelled one, and one
    redraw of the whole page when a job this session watched ends."""
    launched = []
    monkeypatch.setattr(api, "spawn_worker", lambda run_id, command, store=None: launched.append(run_id) or 0)
    store = RunStore()
    meta = {"title": "a test job", "module": "advlens.certify"}
    first = store.create_run({"images": 1}, "cpu", kind="certify", meta=meta)
    at = AppTest.from_function(_job_rows, default_timeout=60).run()
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Stop"] and at.session_state["runs"] == 1
    store.update(first.id, status="running", step=500, total_steps=1000)
    at.run()
    assert at.session_state["runs"] == 2 and not at.exception
    store.finish(first.id, "done")  # as its worker does
    at.run()  # the job ended: this run redraws the page once
    assert at.session_state["runs"] == 4 and not at.button and any("**done**" in m.value for m in at.markdown)
    at.run()
    assert at.session_state["runs"] == 5  # once only

    second = store.create_run({"images": 2}, "cpu", kind="certify", meta=meta)
    at.run()
    at.button(key=f"t_stop_{second.id}").click().run()
    assert not at.exception, at.exception
    assert store.require(second.id).status == "cancelled"
    assert [b.label for b in at.button] == ["Resume"]
    at.button(key=f"t_resume_{second.id}").click().run()
    assert not at.exception, at.exception
    assert store.require(second.id).status == "queued" and launched == [second.id]
    assert [b.label for b in at.button] == ["Stop"]
