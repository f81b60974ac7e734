"""The job store as a page opens it: one error line, never a traceback, when ``ADVLENS_HOME`` cannot hold
it (read-only, full, or missing), so that the page can still show what needs no store."""

from __future__ import annotations

import streamlit as st

from advlens.jobs import RunStore
from advlens.paths import HomeError


def open_store() -> RunStore | None:
    """The run store, checked by reaping dead workers (a write); None after one error line when it
    cannot be opened or written."""
    try:
        store = RunStore()
        store.reap_dead()
        return store
    except HomeError as exc:
        st.error(f"{exc} Background jobs (training, evaluation, certification) need it.")
        return None
