"""The Evaluate page's "Reproduce a RobustBench leaderboard row" (issue 25): the standard suite on the
first n images of the original CIFAR-10 test set, as an evaluation job, and our robust accuracy with
its 95% Clopper-Pearson interval beside the figure RobustBench publishes.

It does what ``python -m advlens evaluate --leaderboard`` does
(:mod:`advlens.evaluation.leaderboard`): the ``cifar10`` dataset (the canonical python
batches, in their official order), the entry's own threat model and budget. When the original set
is not here, the section says so, offers its download, and offers the JPEG copy in ``../shared/data``
labelled as the different set it is. A model not in the cache gets its download box.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from advlens.data import DataError
from advlens.data.download import ensure_downloaded
from advlens.data.folder import unpack_folder_archive
from advlens.evaluation import EvalConfigError, EvalSpec
from advlens.evaluation import jobs as eval_jobs
from advlens.evaluation.leaderboard import JPEG_COPY, TEST_SET, leaderboard_rows
from advlens.jobs.store import RunStore
from advlens.models.robustbench import get_catalog_entry, is_cached, list_catalog
from advlens.paths import HomeError, home
from advlens.training.ship import SHARED_DATA
from dashboard.job_panel import rerun_when_finished
from dashboard.model_download import download_box, published_text
from dashboard.url_state import synced

DEFAULT = "rb:cifar10/Linf/Carmon2019Unlabeled"
RUN_KEY = "lb_run"


def original_test_set(root: str) -> tuple[str | None, str]:
    """(the folder holding the original CIFAR-10 batches or None, why not)."""
    if root:
        from dashboard.image_picker import cached_dataset

        try:
            cached_dataset("cifar10", "test", root)
        except DataError as exc:
            return None, str(exc)
        return root, ""
    try:
        return str(ensure_downloaded("cifar10", download=False)), ""
    except DataError as exc:
        return None, str(exc)


def jpeg_copy() -> tuple[str | None, str]:
    archive = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        return None, f"the JPEG copy is not here either ({archive})"
    try:
        return str(unpack_folder_archive(archive, home() / "cache" / "cifar10-jpeg")), ""
    except (DataError, OSError) as exc:
        return None, f"the JPEG copy cannot be unpacked: {exc}"


def test_images(key: str) -> tuple[str, str] | None:
    """(dataset, root) for the run: the original set, or the JPEG copy when the user takes it."""
    root = synced(
        st.text_input,
        f"{key}_root",
        "",
        "Folder with the original CIFAR-10 (cifar-10-python.tar.gz or cifar-10-batches-py/; empty: the download cache)",
    ).strip()
    found, why = original_test_set(root)
    if found is not None:
        st.caption(f"Images: {TEST_SET}.")
        return "cifar10", found
    st.warning(f"The original CIFAR-10 test set is not available: {why}")
    if not root and st.button("Download CIFAR-10 (163 MB)", key=f"{key}_get_cifar"):
        with st.spinner("Downloading CIFAR-10..."):
            try:
                ensure_downloaded("cifar10", download=True)
            except (DataError, OSError) as exc:
                st.error(f"Not downloaded (no network?): {exc}".replace("\n", " "))
            else:
                st.rerun()
    if not synced(st.checkbox, f"{key}_jpeg", False, "Use the JPEG copy in ../shared/data instead (a different set)"):
        return None
    with st.spinner("Unpacking the JPEG copy (once; about 20 s)..."):
        folder, why = jpeg_copy()
    if folder is None:
        st.error(why)
        return None
    st.warning(f"Images: {JPEG_COPY}.")
    return "folder", folder


def comparison(report: dict) -> None:
    """Ours beside the published figure, one table row each, with protocol, n and images."""
    for row in leaderboard_rows(report):
        lo, hi = row["ours_interval"]
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "": "ours",
                        "robust accuracy": f"{row['ours_robust']:.2f}%",
                        "95% interval (Clopper-Pearson)": f"[{lo:.1f}, {hi:.1f}]",
                        "clean accuracy": f"{row['ours_clean']:.2f}%",
                        "n": row["n"],
                        "protocol": row["protocol"],
                    },
                    {
                        "": "published by RobustBench",
                        "robust accuracy": f"{row['published_robust']:.2f}%",
                        "95% interval (Clopper-Pearson)": "",
                        "clean accuracy": f"{row['published_clean']:.2f}%",
                        "n": row["published_n"],
                        "protocol": row["published_protocol"],
                    },
                ]
            ),
            hide_index=True,
        )
        st.caption(f"{row['model']}: our images: {row['images']}.")
        if not row["comparable"]:
            st.warning("Not a reproduction of the row: these are not the leaderboard's images or protocol.")
        elif row["inside"]:
            st.success(f"The published {row['published_robust']:.2f}% is inside our interval [{lo:.1f}, {hi:.1f}].")
        else:
            st.error(f"The published {row['published_robust']:.2f}% is OUTSIDE our interval [{lo:.1f}, {hi:.1f}].")


def show_run(store: RunStore, run_id: str) -> None:
    rec = store.get(run_id)
    if rec is None:
        return
    rerun_when_finished(f"{RUN_KEY}_active", [rec])  # it ended: redraw once, so that the polling stops
    if rec.status != "done":
        st.progress(rec.progress, text=f"Evaluation {rec.id}: {rec.status}, {rec.progress * 100:.0f}% {rec.message}")
        return
    report = eval_jobs.load_report(run_id)
    if report is not None:
        comparison(report)


def leaderboard_section(store: RunStore, key: str = "lb") -> None:
    st.caption(
        "RobustBench's protocol: AutoAttack's standard suite on the first n images of the original CIFAR-10 test "
        "set, at the entry's threat model and budget. Ours comes with its 95% Clopper-Pearson interval; n = 10,000 "
        "reproduces the row, a small n only checks that it is plausible."
    )
    entries = list_catalog("cifar10")
    names = [e.name for e in entries]
    cached = [e.name for e in entries if is_cached(e)]
    default = cached[0] if cached else DEFAULT
    name = synced(
        st.selectbox,
        f"{key}_model",
        default,
        "RobustBench model",
        names,
        format_func=lambda n: n + ("" if n in cached else "  (not downloaded)"),
    )
    entry = get_catalog_entry(name)
    st.caption(published_text(entry))
    if not is_cached(entry):
        if download_box(entry, f"{key}_model"):
            st.rerun()
        return
    n = synced(st.number_input, f"{key}_n", 100, "n: the first n test images", min_value=1, max_value=10_000)
    found = test_images(key)
    if found is None:
        return
    dataset, root = found
    if st.button(f"Run the standard suite on {name}", key=f"{key}_start", type="primary"):
        spec = EvalSpec(
            models=[name],
            dataset=dataset,
            eps=[entry.eps],
            suite="standard",
            norm=entry.threat,
            n=int(n),
            root=root,
            checklist=False,
        )
        try:
            rec = eval_jobs.submit(spec, store)
        except (EvalConfigError, DataError, HomeError) as exc:
            st.error(str(exc))
            return
        st.query_params[RUN_KEY] = rec.id
        st.success(f"Evaluation {rec.id} queued: the standard suite, {entry.threat} eps {entry.eps}, n = {int(n)}.")
    run_id = st.query_params.get(RUN_KEY)
    if run_id:
        rec = store.get(run_id)
        active = rec is not None and rec.active
        st.fragment(run_every=2 if active else None)(show_run)(store, run_id)
