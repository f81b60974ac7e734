"""A background job's row on a page, written once: its status line, progress bar, Stop and Resume.

Every page that lists jobs of :mod:`advlens.jobs` (certification, the attention study, evaluations,
training runs, universal perturbations, a leaderboard row) draws them with these helpers; what a page
adds of its own (a Show button, a table, a results view) stays in the page. Stop and Resume are the
generic :func:`advlens.jobs.cancel` and :func:`advlens.jobs.resume` (which finds the job's kind from its
row and launches its worker), then a redraw of the whole page.

A page polls the store in a fragment (``st.fragment(run_every=2)``) only while one of its jobs is
active; :func:`rerun_when_finished` redraws the whole page once when such a job ends, so that its result
appears and the polling stops without a click.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import streamlit as st

from advlens import jobs
from advlens.jobs import RunRecord, RunStore, progress_text

RESUMABLE = ("cancelled", "failed")


def rerun_when_finished(session_key: str, records: Iterable[RunRecord]) -> None:
    """Redraw the whole page (once) when a job of ``records`` that was active the last time this ran in
    this session is not active any more. ``session_key`` holds the ids of those active jobs; jobs not in
    ``records`` (another run chosen, say) keep their place in it."""
    records = list(records)
    watched = set(st.session_state.get(session_key) or ())
    ended = [r.id for r in records if r.id in watched and not r.active]
    listed = {r.id for r in records}
    st.session_state[session_key] = (watched - listed) | {r.id for r in records if r.active}
    if ended:
        st.rerun(scope="app")


def stop_button(rec: RunRecord, store: RunStore, box, key: str, label: str = "Stop", toast: str = "") -> None:
    """For an active job: a button that asks it to stop (a queued one is cancelled at once, a running
    one stops at its next step with its state saved), then redraws the page."""
    if rec.active and box.button(label, key=key):
        jobs.cancel(rec.id, store)
        if toast:
            st.toast(toast)
        st.rerun(scope="app")


def resume_button(
    rec: RunRecord,
    store: RunStore,
    box,
    key: str,
    label: str = "Resume",
    resume: Callable[..., RunRecord] | None = None,
) -> None:
    """For a cancelled or failed job: a button that queues it again (it continues from what it saved)
    and redraws the page; an error line when it cannot be resumed. ``resume`` defaults to the generic
    :func:`advlens.jobs.resume`."""
    if rec.status not in RESUMABLE or not box.button(label, key=key):
        return
    try:
        (resume or jobs.resume)(rec.id, store)
    except (ValueError, OSError) as exc:  # the kinds' config errors are ValueErrors; HomeError an OSError
        st.error(f"Cannot resume: {exc}")
        return
    st.rerun(scope="app")


def job_row(
    rec: RunRecord,
    store: RunStore,
    key_prefix: str,
    what: str,
    widths: Sequence[float] = (5, 2, 1),
    with_id: bool = True,
    resume: Callable[..., RunRecord] | None = None,
) -> list:
    """One job as a row of columns: ``what`` (the words naming it, with their separator) then its status
    and message; the progress with :func:`~advlens.jobs.progress_text` while it is active (in the second
    of three columns, or under the status line with two); Stop or Resume in the last column, keyed
    ``{key_prefix}_stop`` / ``{key_prefix}_resume`` (with ``_{id}`` when ``with_id``). Returns the columns,
    for what the page adds (a Show button for a finished job, say)."""
    cols = st.columns(list(widths))
    cols[0].markdown(f"{what}**{rec.status}** {rec.message}")
    if rec.active:
        (cols[1] if len(cols) > 2 else cols[0]).progress(rec.progress, text=progress_text(rec))
    suffix = f"_{rec.id}" if with_id else ""
    stop_button(rec, store, cols[-1], f"{key_prefix}_stop{suffix}")
    resume_button(rec, store, cols[-1], f"{key_prefix}_resume{suffix}", resume=resume)
    return cols
