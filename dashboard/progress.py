"""Running a slow engine call from a page: a progress bar with an ETA, a Stop button, and a memo.

Streamlit interrupts a running script at its next UI update when the user clicks anything; the
progress callback catches that interruption, asks the engine to stop (it returns its best result
so far), and re-raises it afterwards so Streamlit reruns.
"""

from __future__ import annotations

import time

import streamlit as st

from advlens.threads import interactive, take_turns
from dashboard.session_memo import memo_get, memo_put

MEMO_SIZE = 6
STOP_KEY = "atk_stop_requested"
SLOW_S = 60  # a call projected to take longer than this gets a warning with the way out


def request_stop() -> None:
    st.session_state[STOP_KEY] = True


def eta_text(step: int, total: int, elapsed: float) -> str:
    """``step 5/500 · 3 s so far · about 4 min left`` (from the time the steps so far took)."""
    if step <= 0:
        return f"step 0/{total}"
    left = elapsed / step * max(0, total - step)
    return f"step {step}/{total} · {_duration(elapsed)} so far · about {_duration(left)} left"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def with_progress(title: str, work, slow_hint: str = ""):
    """Run ``work(progress, should_stop)`` with a progress bar, a running ETA and a Stop button.

    The first steps time the rest: when the whole run is projected past :data:`SLOW_S`, a warning
    says how long it will take and how to get out (Stop keeps the result so far; ``slow_hint``).

    Streamlit interrupts a running script at its next UI update when the user clicks anything;
    the progress callback catches that interruption, asks the engine to stop (the attack returns
    its best result so far), and re-raises it afterwards so Streamlit reruns.
    """
    bar = st.progress(0.0, text=f"{title}: starting")
    warn_box = st.empty()
    stop_box = st.empty()
    stop_box.button("Stop", key="atk_stop", on_click=request_stop, help="Stop the attack and keep its result so far")
    state = {"interrupt": None, "last": 0.0, "t0": time.monotonic(), "warned": False}

    def progress(step: int, total: int) -> None:
        if state["interrupt"] is not None:
            return
        take_turns()  # a long call lets the sessions waiting in line go first (advlens.threads)
        now = time.monotonic()
        if step < total and now - state["last"] < 0.1:
            return
        state["last"] = now
        elapsed = now - state["t0"]
        try:
            if not state["warned"] and step > 0 and elapsed / step * total > SLOW_S:
                state["warned"] = True
                warn_box.warning(
                    f"{title} will take about {_duration(elapsed / step * total)} here. **Stop** keeps its result "
                    f"so far.{' ' + slow_hint if slow_hint else ''}"
                )
            bar.progress(min(1.0, step / max(1, total)), text=f"{title}: {eta_text(step, total, elapsed)}")
        except BaseException as exc:  # Streamlit's rerun request (Stop or any click) lands here
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            state["interrupt"] = exc

    def waiting(place: int) -> None:  # the CPU policy (advlens.threads) lets a few heavy calls run at once
        bar.progress(0.0, text=f"{title}: waiting for the CPU, number {place} in line")

    try:
        with interactive(waiting):
            state["t0"] = time.monotonic()
            result = work(progress=progress, should_stop=lambda: state["interrupt"] is not None)
    except Exception:
        clear((bar, warn_box, stop_box))
        raise
    return result, state["interrupt"], (bar, warn_box, stop_box)


def run_and_memo(key, title: str, work, rejected: str) -> bool:
    """Run ``work`` under :func:`with_progress` and memoise its result under ``key``; False (with the
    message) when the engine rejected the settings. Another click's interruption is re-raised."""
    try:
        result, interrupt, widgets = with_progress(title, work)
    except ValueError as exc:  # AttackConfigError and the smoothing checks
        st.error(f"{rejected}: {exc}")
        return False
    memo_put(key, result, MEMO_SIZE)
    if interrupt is not None:
        raise interrupt
    clear(widgets)
    return True


def result_on_click(clicked: bool, key, title: str, work, rejected: str):
    """The memoised result under ``key``, computed first when ``clicked`` (see :func:`run_and_memo`);
    None when there is none yet or the engine rejected the settings. ``work`` takes the keywords
    ``progress`` and ``should_stop`` (an engine call with the rest of its arguments bound)."""
    if clicked and not run_and_memo(key, title, work, rejected):
        return None
    return memo_get(key)


def clear(widgets) -> None:
    for w in widgets:
        w.empty()
