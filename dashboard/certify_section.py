"""The Evaluate page's certification section: randomized smoothing (Cohen et al. 2019).

A few images (at most :data:`advlens.certify.INLINE_MAX`) are certified here, at once; more are a
background job of :mod:`advlens.certify` (its own process, the shared queue), listed below the form
with its progress from the job store, a Stop button, Resume (the finished images are kept) and, when
done, the certified-accuracy curve with its 95% intervals. The section only calls the engine.
"""

from __future__ import annotations

import streamlit as st

from advlens import certify as cert_jobs
from advlens.data import DataError, to_float
from advlens.data.catalog import DATASETS
from advlens.data.subset import RULE_HELP, choose_images
from advlens.intervals import clopper_pearson
from advlens.jobs import RunStore
from advlens.paths import HomeError
from advlens.smoothing import ABSTAIN, Stopped, certified_accuracy, certify_batch
from advlens.zoo import list_models
from dashboard.charts import line_chart
from dashboard.image_picker import cached_dataset
from dashboard.job_panel import job_row, rerun_when_finished
from dashboard.model_picker import get_model
from dashboard.progress import result_on_click

SUBSET_HELP = f"Which images: {RULE_HELP}."
JOBS_SHOWN = 8


def certified_section(store: RunStore) -> None:
    """The form, then the certification jobs, then the result chosen (inline or a finished job)."""
    st.caption(
        "Certified accuracy at radius r: the share of images that the smoothed classifier (Cohen et al. 2019) "
        "classifies correctly with a certified L2 radius of at least r. A proof, not an attack: no L2 "
        f"perturbation smaller than r changes those predictions (with probability 1 - alpha per image). More than "
        f"{cert_jobs.INLINE_MAX} images run as a background job that you can stop and resume."
    )
    settings = certify_form()
    if settings is not None:
        start(settings, store)
    jobs = store.list_runs(kind=cert_jobs.KIND, limit=JOBS_SHOWN)
    if jobs:
        st.fragment(run_every=2 if any(r.active for r in jobs) else None)(jobs_list)(store)
    show_result(store)


def certify_form() -> dict | None:
    entries = [e for e in list_models() if e.input_size is not None]
    datasets = [d for d in DATASETS if d != "imagenet_samples"]
    small = next((i for i, e in enumerate(entries) if e.dataset in datasets), 0)  # a model with a dataset here
    with st.form("cert_form"):
        cols = st.columns(3)
        name = cols[0].selectbox("Base model", [e.name for e in entries], index=small, key="cert_model")
        default = entries[small].dataset if entries and entries[small].dataset in datasets else datasets[0]
        dataset = cols[1].selectbox("Dataset", datasets, index=datasets.index(default), key="cert_dataset")
        root = cols[2].text_input("Local folder with the dataset's files", key="cert_root").strip()
        cols = st.columns(5)
        sigma = cols[0].number_input("sigma", 0.01, 2.0, 0.25, 0.05, key="cert_sigma")
        images = int(cols[1].number_input("images", 1, 10_000, 20, key="cert_images", help=SUBSET_HELP))
        n = int(cols[2].number_input("n", 100, 200_000, 1000, 500, key="cert_n"))
        n0 = int(cols[3].number_input("n0", 10, 10_000, 100, 10, key="cert_n0"))
        alpha = cols[4].number_input("alpha", 0.0001, 0.1, 0.001, 0.001, format="%.4f", key="cert_alpha")
        go = st.form_submit_button("Certify")
    if not go:
        return None
    return {
        "model": name,
        "dataset": dataset,
        "root": root or None,
        "sigma": float(sigma),
        "images": images,
        "n": n,
        "n0": n0,
        "alpha": float(alpha),
    }


def start(settings: dict, store: RunStore) -> None:
    """Certify a few images here, or queue a job for more."""
    if settings["images"] <= cert_jobs.INLINE_MAX:
        certify_inline(settings)
        return
    spec = cert_jobs.CertifySpec(**settings, radii=[0.0, 0.25, 0.5, 0.75, 1.0])
    try:
        rec = cert_jobs.submit(spec, store)
    except (cert_jobs.CertifyConfigError, HomeError) as exc:
        st.error(str(exc))
        return
    st.session_state["cert_shown"] = rec.id
    st.success(f"Certification {rec.id} queued on {rec.device}: it runs in the background; stop or resume it below.")


def certify_inline(settings: dict) -> None:
    """Certify a few images here, under the CPU gate (it waits its turn) with a progress bar and Stop;
    Stop keeps the images certified so far."""
    name, dataset = settings["model"], settings["dataset"]
    try:
        ds = cached_dataset(dataset, "test", settings["root"])
        subset = choose_images(ds, settings["images"])
        x, y = ds.batch(subset.indices)
        model = get_model(name)
        if tuple(x.shape[1:]) != tuple(model.input_size):
            raise ValueError(f"{dataset} images are {tuple(x.shape[1:])}; {name} expects {tuple(model.input_size)}")
    except (DataError, ValueError, KeyError) as exc:
        st.error(str(exc))
        return
    s = settings

    def work(progress, should_stop):
        try:
            certs = certify_batch(
                model, to_float(x), s["sigma"], s["n0"], s["n"], s["alpha"], progress=progress, should_stop=should_stop
            )
            images = subset.describe()
        except Stopped as exc:
            certs = exc.partial
            images = f"{subset.describe()}; stopped after {len(certs)} of {len(x)} images"
        if certs:  # shown now, even when another click interrupts the run (its rerun shows it)
            st.session_state["cert_shown"] = None
            st.session_state["cert_result"] = (name, images, settings, certs, y.tolist()[: len(certs)])
        return certs

    key = ("certify_inline", *sorted(settings.items()))
    title = f"Certifying {len(x)} images ({len(x) * (s['n0'] + s['n']):,} forward passes)"
    result_on_click(True, key, title, work, "Certification settings rejected")


def jobs_list(store: RunStore) -> None:
    """The certification jobs: progress from the store, Stop for a running one, Resume for a stopped one,
    Show for a finished one."""
    store.reap_dead()
    runs = store.list_runs(kind=cert_jobs.KIND, limit=JOBS_SHOWN)
    rerun_when_finished("cert_active_runs", runs)  # a job ended: show its result, stop the polling
    for rec in runs:
        # cert_jobs.resume: the generic resume with the kind's worker launcher (the one its tests replace)
        cols = job_row(rec, store, "cert", f"`{rec.id}` {rec.title} on {rec.dataset} · ", resume=cert_jobs.resume)
        if rec.status == "done" and cols[2].button("Show", key=f"cert_show_{rec.id}"):
            st.session_state["cert_shown"] = rec.id
            st.rerun()


def show_result(store: RunStore) -> None:
    shown = st.session_state.get("cert_shown")
    if shown:
        report = cert_jobs.load_report(shown)
        if report is None:
            return
        certs = cert_jobs.certificates_of(report["images"])
        labels = [item["label"] for item in report["images"]]
        settings = {k: report[k] for k in ("sigma", "n", "n0", "alpha")}
        chart(report["model"], report["protocol"], settings, certs, labels, f"job {shown}")
        return
    found = st.session_state.get("cert_result")
    if found is not None:
        name, images, settings, certs, labels = found
        chart(name, images, settings, certs, labels, "computed here")


def chart(name, images: str, settings: dict, certs, labels, source: str) -> None:
    sigma, n, alpha = settings["sigma"], settings["n"], settings["alpha"]
    top = max([c.radius for c in certs] + [sigma])
    radii = [round(top * i / 20, 4) for i in range(21)]
    acc = certified_accuracy(certs, labels, radii)
    st.plotly_chart(
        line_chart(
            radii,
            {f"{name}, sigma {sigma}": [a * 100 for a in acc]},
            f"Certified accuracy (n = {len(certs)} images, {n:,} samples each, alpha {alpha}; {source})",
            "L2 radius",
            "certified accuracy %",
        ),
        key="cert_chart",
    )
    abstained = sum(c.prediction == ABSTAIN for c in certs)
    marks = (0.25, 0.5, 0.75)
    shown = []
    for r, a in zip(marks, certified_accuracy(certs, labels, marks)):
        lo, hi = clopper_pearson(round(a * len(certs)), len(certs))
        shown.append(f"r {r:g}: {a * 100:.1f}% [{lo * 100:.1f}, {hi * 100:.1f}]")
    st.caption(
        f"{images[:1].upper()}{images[1:]}. Abstained on {abstained} of {len(certs)} images; "
        + ", ".join(shown)
        + f" (95% Clopper-Pearson intervals); {sum(c.seconds for c in certs):.1f} s in all."
    )
