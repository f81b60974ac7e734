"""Keeping a page's whole state in the URL, so that any experiment (and any lesson) is a link.

:func:`synced` creates a widget whose value starts from ``?key=...`` (when the link holds a readable
value) or from its default, and writes the value back to the URL on every run. Pages call it
instead of passing ``value=``/``index=`` to the widget.

:func:`apply_lesson_link` makes a link with ``?lesson=...`` behave like a fresh visit: the first run
that sees a new lesson value forgets the session's widget state, so every page reads its settings
from that link again (and the same link, followed again from the Lessons page, resets them again).
Memoised results and internal keys (their names start with ``_`` or ``advlens_``) are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

LESSON_PARAM = "lesson"
LESSON_SEEN = "_lesson_link"
LESSON_TOPIC = "topic"  # the Lessons page's choice of lesson; a step link "<slug>-<step>" sets it
KEPT_PREFIXES = ("_", "advlens_")


def url_text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def parse_like(raw: str, default):
    """``raw`` read as the type of ``default``; ValueError when it cannot be."""
    if isinstance(default, bool):
        if raw not in ("0", "1", "true", "false"):
            raise ValueError(raw)
        return raw in ("1", "true")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        value = float(raw)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(raw)
        return value
    return raw


def seed(
    key: str,
    default,
    choices: Sequence | None = None,
    check: Callable[[object], bool] | None = None,
    url_key: str | None = None,
    read_url: bool = True,
) -> None:
    """Put the link's value (or ``default``) in ``st.session_state[key]`` unless the session holds one.
    A value that cannot be read, is not among ``choices`` or fails ``check`` falls back to ``default``.
    ``url_key``: the name in the link when it differs from the widget's key; ``read_url`` False: start
    from ``default`` (the link was read already, e.g. by the same field under another key)."""
    if key in st.session_state:
        return
    raw = st.query_params.get(url_key or key) if read_url else None
    value = default
    if raw is not None:
        try:
            value = parse_like(raw, default)
        except ValueError:
            value = default
        if (choices is not None and value not in choices) or (check is not None and not check(value)):
            value = default
    st.session_state[key] = value


def write(key: str, value) -> None:
    text = url_text(value)
    if st.query_params.get(key) != text:
        st.query_params[key] = text


def synced(
    widget,
    key: str,
    default,
    *args,
    choices: Sequence | None = None,
    check=None,
    url_key: str | None = None,
    read_url: bool = True,
    **kwargs,
):
    """``widget(*args, key=key, **kwargs)`` whose value lives in the URL under ``url_key`` (default: ``key``).

    ``choices`` (a selectbox's or radio's options; taken from the first positional argument after the
    label when not given), the widget's ``min_value``/``max_value`` and ``check`` validate the link's value."""
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if check is None and (lo is not None or hi is not None):

        def check(v):
            return (lo is None or v >= lo) and (hi is None or v <= hi)

    if choices is None and len(args) >= 2 and isinstance(args[1], (list, tuple, range)):
        choices = list(args[1])
    if key in st.session_state and choices is not None and st.session_state[key] not in choices:
        del st.session_state[key]  # e.g. another model with other layers: start from the default again
    seed(key, default, choices, check, url_key, read_url)
    value = widget(*args, key=key, **kwargs)
    write(url_key or key, value)
    return value


def apply_lesson_link() -> None:
    """Forget the session's widget state the first time a run sees a new ``?lesson=`` value."""
    lesson = st.query_params.get(LESSON_PARAM)
    if not lesson or st.session_state.get(LESSON_SEEN) == lesson:
        return
    for key in list(st.session_state.keys()):
        if not str(key).startswith(KEPT_PREFIXES):
            del st.session_state[key]
    st.session_state[LESSON_SEEN] = lesson
    # back on the Lessons page the user finds the lesson this step belongs to (an unknown slug,
    # e.g. Home's showcase, is dropped there by the radio's choices)
    st.session_state[LESSON_TOPIC] = lesson.rsplit("-", 1)[0]


def forget_lesson_link() -> None:
    """Called by the Lessons page: following any lesson link afterwards applies it afresh."""
    st.session_state.pop(LESSON_SEEN, None)
