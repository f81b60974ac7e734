"""Links between pages that carry a page's state in the URL.

:func:`page_link` is ``st.page_link`` with query parameters. When a page runs on its own (``AppTest``
on one file, or ``streamlit run dashboard/home.py``) no navigation knows the other pages, so the link
becomes a plain Markdown link to the same URL.
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st
from streamlit.errors import StreamlitAPIException

# URL path -> the page's file, as streamlit_app.py registers them
PAGE_FILES = {
    "lessons": "dashboard/lessons.py",
    "attack": "dashboard/attack_lab.py",
    "attention": "dashboard/attention.py",
    "features": "dashboard/features.py",
    "training": "dashboard/training.py",
    "compare": "dashboard/compare.py",
    "evaluate": "dashboard/evaluate.py",
}


def page_link(path: str, label: str, query_params: dict, icon: str | None = None) -> None:
    try:
        st.page_link(PAGE_FILES[path], label=label, icon=icon, query_params=query_params)
    except StreamlitAPIException:  # the page runs on its own: no navigation to resolve the file
        st.markdown(f"[{label}](/{path}?{urlencode(query_params)})")
