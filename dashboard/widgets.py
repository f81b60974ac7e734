"""The elements every page shares: its set-up (title, device line, lesson links) and the one-line
notice for an empty attention map with its fixes. The pickers, the import box and the session memo
have their own modules (:mod:`dashboard.model_picker`, :mod:`dashboard.image_picker`,
:mod:`dashboard.checkpoint_import`, :mod:`dashboard.session_memo`).

No tensor math here: the widgets call the engine (advlens) and hand tensors to the pages.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import streamlit as st
import torch

from advlens.device import describe_device, force_cpu, get_device
from dashboard.url_state import apply_lesson_link


def configure_device() -> torch.device:
    """Honour ``streamlit run streamlit_app.py -- --cpu`` (ADVLENS_DEVICE=cpu works too)."""
    if "--cpu" in sys.argv[1:]:
        force_cpu()
    return get_device()


def page_setup(title: str, icon: str | None = None) -> None:
    """Title plus the sidebar's device line. Call first on every page.

    ``icon`` is accepted for symmetry with ``st.Page`` but not drawn: the navigation already shows
    each page's Material icon, and emoji fonts are missing on many headless machines.
    """
    apply_lesson_link()
    device = configure_device()
    st.sidebar.caption(f"Device: **{describe_device(device)}**")
    st.title(title)


def empty_map_notice(empty, key: str, apply_fix: Callable[[object], None] | None = None) -> None:
    """One line when a map is empty (an :class:`advlens.attribution.empty.EmptyMap`; nothing for None):
    which map, why, and one button per fix that was checked to show something on the same image.
    ``apply_fix(fix)`` runs on the click, before the rerun, and puts the fix in the page's settings."""
    if empty is None:
        return
    offer = " One click shows instead:" if empty.fixes and apply_fix is not None else ""
    st.warning(empty.message() + offer, icon="⚠️")
    if not offer:
        return
    for col, (i, fix) in zip(st.columns(len(empty.fixes)), enumerate(empty.fixes)):
        col.button(fix.label, key=f"{key}_fix_{i}", on_click=apply_fix, args=(fix,))
