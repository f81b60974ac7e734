"""RobustBench models in the model picker: the figures RobustBench publishes, and the download box of
an entry that is not in the cache yet (issue 25).

The box runs the real downloader (:func:`advlens.models.robustbench.fetch`: HTTPS with resume, the
Google Drive confirmation step, a size cap, the SHA-256 and ``weights_only`` checks) with an
``st.progress`` bar and its ETA. Every failure is one line; with no network, that line says so and
names the command that installs a file obtained elsewhere. Nothing is installed unless every check
passed, so a failed download leaves no model behind.
"""

from __future__ import annotations

import streamlit as st

from advlens.models.robustbench import RobustBenchError, fetch, is_cached, list_catalog
from advlens.models.robustbench.catalog import CatalogEntry, approx_bytes
from advlens.models.robustbench.download import format_progress
from advlens.paths import HomeError

DONE_KEY = "advlens_rb_downloaded"  # the entry downloaded on the last run: its success line survives the rerun


def size_text(entry: CatalogEntry) -> str:
    return f"{approx_bytes(entry) / 1e6:,.0f} MB"


def fetch_command(entry: CatalogEntry) -> str:
    return f"python -m advlens fetch-model {entry.name} --from FILE"


def published_text(entry: CatalogEntry) -> str:
    """One line: the published clean and AutoAttack accuracy, with threat model, eps and n."""
    venue = entry.venue.replace("<br>", " ")
    return (
        f"Published by RobustBench: clean {entry.clean:.2f}%, AutoAttack {entry.autoattack:.2f}% "
        f"({entry.threat}, eps {entry.eps}, first {entry.n_test:,} test images) · {entry.architecture}, "
        f"{entry.paper}" + (f" ({venue})" if venue != "N/A" else "")
    )


def missing_entries(names: set[str]) -> list[CatalogEntry]:
    """The catalogue entries that are not in the cache (and not among ``names``, the zoo's)."""
    return [e for e in list_catalog() if e.name not in names and not is_cached(e)]


def download_box(entry: CatalogEntry, key: str) -> bool:
    """What the picker shows for an entry not in the cache (below the published figures): its size, a
    download button with a progress bar, and the command for a file obtained elsewhere. True once
    the model is installed (the caller reruns the page to load it)."""
    st.info(f"**{entry.name}** is not downloaded yet ({size_text(entry)} of weights, from {entry.source}).")
    clicked = st.button(f"Download {entry.name} ({size_text(entry)})", key=f"{key}_download", type="primary")
    st.caption(f"No network here? Download {entry.source} elsewhere, then run `{fetch_command(entry)}`.")
    if not clicked:
        return False
    bar = st.progress(0.0, text="Connecting...")

    def progress(done: int, total: int | None, eta: float | None) -> None:
        bar.progress(min(done / total, 1.0) if total else 0.0, text=format_progress(done, total, eta).strip())

    try:
        fetch(entry.name, progress=progress)
    except (RobustBenchError, HomeError, OSError) as exc:
        bar.empty()
        st.error(f"Not downloaded: {exc}".replace("\n", " "))
        return False
    bar.empty()
    st.session_state[DONE_KEY] = entry.name
    return True


def downloaded_notice(name: str) -> None:
    """The success line after the rerun that follows a download."""
    if st.session_state.get(DONE_KEY) == name:
        del st.session_state[DONE_KEY]
        st.success(f"Downloaded and installed **{name}**: it is in every model picker now.")
