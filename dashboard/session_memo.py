"""This session's expensive results, kept until their inputs change, and the CPU policy's queue
around every heavy engine call a page makes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import streamlit as st

MEMO_KEY = "advlens_memo"


def memo_get(key: tuple):
    """A result this session computed earlier for ``key`` (see :func:`session_memo`), or None."""
    store: OrderedDict = st.session_state.setdefault(MEMO_KEY, OrderedDict())
    if key in store:
        store.move_to_end(key)
        return store[key]
    return None


def memo_put(key: tuple, value, size: int = 12) -> None:
    store: OrderedDict = st.session_state.setdefault(MEMO_KEY, OrderedDict())
    store[key] = value
    store.move_to_end(key)
    while len(store) > size:
        store.popitem(last=False)


def session_memo(key: tuple, compute: Callable[[], object], size: int = 12):
    """This session's last ``size`` expensive results (attacks, views), keyed by their inputs.

    Streamlit reruns the page on every widget change; the memo keeps a result until its inputs
    change. Results hold tensors, so they stay per session instead of in ``st.cache_data``.
    """
    value = memo_get(key)
    if value is None:
        value = heavy(compute)
        memo_put(key, value, size)
    return value


def heavy(compute: Callable[[], object]):
    """Run one heavy engine call under the CPU policy (:mod:`advlens.threads`): it waits for a free
    slot, with its place in line shown, and runs with the policy's torch threads."""
    from advlens.threads import interactive

    box = None

    def waiting(place: int) -> None:
        nonlocal box
        box = box or st.empty()
        box.caption(f"Waiting for the CPU: number {place} in line (other sessions are computing).")

    with interactive(waiting):
        if box is not None:
            box.empty()
        return compute()
