"""Evaluate: robust accuracy you can trust, for one or more models, as a background job.

Choose models, a dataset, n, the budgets and the suite; the evaluation runs as a job of the run
store (its own process, the same queue as training, cancel and resume at batch granularity). A
finished evaluation shows its robustness curves with 95% intervals, the cascade (what each attack
added), the gradient-masking checklist, and a gallery of broken images that opens each in the
Attack Lab. Earlier evaluations are listed and can be compared on one chart; each exports as a
self-contained HTML report, JSON and CSV. The page only calls the engine.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from advlens.attribution.display import enlarge, image_rgb
from advlens.data import DataError
from advlens.data.catalog import DATASETS
from advlens.data.subset import RULE_HELP, SUBSET_SEED, choose_images, parse_indices
from advlens.evaluation import NORMS, SUITES, EvalConfigError, EvalSpec
from advlens.evaluation import jobs as eval_jobs
from advlens.evaluation.report import cascade_rows, curves_figure, rows, to_csv, to_html
from advlens.jobs import RunStore
from advlens.paths import HomeError
from advlens.zoo import list_models
from dashboard.certify_section import certified_section
from dashboard.corruption_section import corruption_section
from dashboard.image_picker import cached_dataset
from dashboard.job_panel import rerun_when_finished, resume_button, stop_button
from dashboard.leaderboard_section import leaderboard_section
from dashboard.minimal_norm_section import minimal_norm_section
from dashboard.run_store import open_store
from dashboard.url_state import synced, write
from dashboard.widgets import page_setup

VERDICT = {"pass": "✅ pass", "warn": "⚠️ warn", "skip": "➖ skip"}
GALLERY_SHOWN = 12
SUBSET_HELP = f"Which images: {RULE_HELP}. The confirmation and the report show the class counts."


def new_evaluation_form(store: RunStore) -> None:
    entries = list_models()
    by_name = {e.name: e for e in entries}
    names = list(by_name)
    if "ev_models" not in st.session_state:
        linked = [m for m in st.query_params.get("ev_models", "").split(",") if m in by_name]
        st.session_state["ev_models"] = linked or [n for n in names if by_name[n].dataset == "digits"][:2] or names[:1]
    st.session_state["ev_models"] = [m for m in st.session_state["ev_models"] if m in by_name]
    datasets = [d for d in DATASETS if d != "imagenet_samples"]
    with st.form("eval_form"):
        models = st.multiselect(
            "Models",
            names,
            key="ev_models",
            help="evaluate several side by side: they get the same images, budgets and suite",
        )
        write("ev_models", ",".join(models))
        cols = st.columns(4)
        dataset = synced(cols[0].selectbox, "ev_dataset", datasets[0], "Dataset", datasets)
        n = synced(
            cols[1].number_input, "ev_n", 100, "n (images; 0: all)", min_value=0, max_value=100_000, help=SUBSET_HELP
        )
        suites = list(SUITES)
        suite = synced(
            cols[2].selectbox,
            "ev_suite",
            "standard",
            "Suite",
            suites,
            format_func=lambda s: SUITES[s].title,
            help=SUITES["standard"].note,
        )
        norm = synced(cols[3].radio, "ev_norm", NORMS[0], "Norm", list(NORMS), horizontal=True)
        defended = synced(
            st.text_input,
            "ev_defended",
            "",
            "Defended models (optional, comma-separated: a model followed by input transforms)",
            placeholder="digits_small_cnn+jpeg75, digits_small_cnn+bits3+median3",
            help="Any model behind a chain of input transforms; see the transforms in the Attack Lab's model picker.",
        )
        budgets = synced(
            st.text_input,
            "ev_eps",
            "0.05, 0.1, 0.15",
            "Budgets (comma-separated; L-inf as 8/255 or 0.0314, L2 as plain numbers)",
        )
        cols = st.columns(3)
        root = synced(
            cols[0].text_input, "ev_root", "", "Local folder with the dataset's files (MNIST, CIFAR-10)"
        ).strip()
        surrogates = ["(none)", *by_name]
        surrogate = synced(
            cols[1].selectbox, "ev_surrogate", "(none)", "Undefended surrogate (checklist transfer check)", surrogates
        )
        checklist = synced(cols[2].checkbox, "ev_checklist", True, "Gradient-masking checklist")
        cols = st.columns([1, 1, 3])
        offset = synced(
            cols[0].number_input,
            "ev_offset",
            0,
            "Skip the rule's first K images",
            min_value=0,
            max_value=10_000_000,
            help="another window of the same order: held-out images, disjoint from the first ones",
        )
        subset_seed = synced(
            cols[1].number_input,
            "ev_subset_seed",
            SUBSET_SEED,
            "Sample seed",
            min_value=0,
            max_value=2**31 - 1,
            help="the seed of the class-stratified sample (datasets not in their official order)",
        )
        indices_text = cols[2].text_area(
            "Exactly these images (optional)",
            key="ev_indices",
            height=68,
            placeholder="dataset indices: 3, 17, 42 ... or paste a report's JSON to repeat its subset",
            help="Overrides n and the skip: repeats another evaluation's images exactly.",
        )
        cols = st.columns(2)
        adaptive = synced(
            cols[0].toggle,
            "ev_adaptive",
            True,
            "Adaptive attacks on defended models (BPDA, EOT)",
            help="Off: attack defended models as if they were bare, to watch a defense 'work' and the checklist flag it.",
        )
        repeats = synced(
            cols[1].number_input,
            "ev_repeats",
            1,
            "Runs of each random defense (for the spread)",
            min_value=1,
            max_value=10,
            help="seeds seed, seed+1, ...",
        )
        submitted = st.form_submit_button("Start evaluation", type="primary")
    if not submitted:
        return
    try:
        indices = parse_indices(indices_text, "the image indices") if indices_text.strip() else None
    except DataError as exc:
        st.error(str(exc))
        return
    spec = EvalSpec(
        models=models + [m.strip() for m in defended.split(",") if m.strip()],
        dataset=dataset,
        eps=[t.strip() for t in budgets.split(",") if t.strip()],
        suite=suite,
        norm=norm,
        n=int(n),
        offset=0 if indices else int(offset),
        indices=indices,
        subset_seed=int(subset_seed),
        root=root or None,
        checklist=checklist,
        surrogate=None if surrogate == "(none)" else surrogate,
        adaptive=adaptive,
        repeats=int(repeats),
    )
    try:
        subset = preview_subset(spec)
        rec = eval_jobs.submit(spec, store)
    except (EvalConfigError, DataError, HomeError) as exc:
        st.error(str(exc))
        return
    st.query_params["run"] = rec.id
    st.success(f"Evaluation {rec.id} queued: {rec.message or rec.status}. {subset.describe('Images')}.")
    if subset.warning():
        st.warning(subset.warning("The") + ".")


def preview_subset(spec: EvalSpec):
    """The images ``spec`` will evaluate, for the confirmation (the job chooses them the same way)."""
    ds = cached_dataset(spec.dataset, spec.split, spec.root)
    return choose_images(ds, spec.n, spec.offset, spec.indices, spec.subset_seed)


def jobs_table(store: RunStore) -> None:
    store.reap_dead()
    runs = store.list_runs(kind="evaluate")
    if not runs:
        st.info("No evaluations yet: start one above.")
        return
    table = pd.DataFrame(
        [
            {
                "id": r.id,
                "status": r.status,
                "suite": r.config.get("suite", ""),
                "models": ", ".join(r.config.get("models", [])),
                "dataset": r.dataset,
                "budgets": ", ".join(str(e) for e in r.config.get("eps", [])) + f" ({r.config.get('norm', 'Linf')})",
                "n": r.config.get("n") or "all",
                "progress": f"{r.progress * 100:.0f}%",
                "ETA": f"{r.eta_s:.0f} s" if r.eta_s else "",
                "message": r.message,
            }
            for r in runs
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")
    # a run that ended redraws the whole page, so that its results appear without a click (this table
    # is a fragment that refreshes on its own)
    rerun_when_finished("ev_active_runs", runs)
    active = [r for r in runs if r.active]
    if active and not st.session_state.get("ev_fast_refresh"):  # resumed elsewhere (CLI, another server)
        st.rerun(scope="app")  # redraw so that the table refreshes every 2 s while it runs
    for r in active:
        cols = st.columns([4, 1])
        cols[0].progress(r.progress, text=f"{r.id}: {r.status}, {r.progress * 100:.0f}%")
        stop_button(r, store, cols[1], f"ev_cancel_{r.id}", "Cancel")
    for r in runs:
        resume_button(r, store, st, f"ev_resume_{r.id}", f"Resume {r.id}")


def gallery(run_id: str, part: int, record: dict, spec: dict) -> None:
    points = eval_jobs.load_gallery(run_id, part)
    if not points:
        st.caption("Nothing was broken at this budget.")
        return
    try:
        ds = cached_dataset(spec["dataset"], spec.get("split", "test"), spec.get("root"))
    except DataError as exc:
        st.caption(f"The dataset cannot be read now: {exc}")
        return
    names = getattr(ds, "class_names", None)
    cols = st.columns(6)
    for k, position in enumerate(sorted(points)[:GALLERY_SHOWN]):
        image = record["images"][position]
        index = image.get("dataset_index", position)  # reports before the subset rule: the first n, in order
        x, label = ds.item(index)
        broken_by = image["broken_by"]
        query = {
            "model": record["model"],
            "image_src": "Dataset item",
            "image_ds": spec["dataset"],
            "image_idx": str(index),
            "attack": broken_by,
            "eps": str(record["eps"]),
        }
        with cols[k % 6]:
            caption = image.get("file") or f"#{index}"
            st.image(
                enlarge(image_rgb(points[position]), 96), caption=f"{caption} ({names[label] if names else label})"
            )
            st.caption(f"broken by {broken_by}")
            st.link_button("Open in Attack Lab", f"attack?{urlencode(query)}", width="stretch")


def show_evaluation(run_id: str, report: dict) -> None:
    spec = report["spec"]
    subset = report.get("subset")
    images = (
        subset["description"]
        if subset
        else f"images: the first {report['n']} of the {report['dataset']} {report['split']} split"
    )
    st.markdown(
        f"**{report['suite']}** suite, {report['norm']}, attack seed {spec['seed']} · {SUITES[report['suite']].note}  \n"
        f"{images[:1].upper()}{images[1:]}"
    )
    if subset and subset["classes_covered"] < subset["classes_in_split"]:
        st.warning(
            f"These images cover {subset['classes_covered']} of the {subset['classes_in_split']} classes: "
            "the figures do not represent the test set."
        )
    elif not subset:
        st.warning(
            "This evaluation predates the subset rule: its images are the first n of the split, which for an "
            "image folder or a sample set may be a few classes only."
        )
    for k, r in enumerate(report["results"]):
        lo, hi = r["robust_interval_95"]
        title = (
            f"{r['model']} at eps {r['eps_shown']}: robust {r['robust_accuracy'] * 100:.1f}% "
            f"[{lo * 100:.1f}, {hi * 100:.1f}], clean {r['clean_accuracy'] * 100:.1f}%"
        )
        warnings = sum(c["verdict"] == "warn" for c in r.get("checklist", []))
        with st.expander(title + (f" · ⚠️ {warnings} checklist warning(s)" if warnings else ""), expanded=k == 0):
            st.caption(r["protocol"])
            if r.get("spread"):
                sp = r["spread"]
                st.markdown(
                    f"A random defense: over {len(sp['runs'])} runs, robust **{sp['mean'] * 100:.1f}% ± "
                    f"{sp['sd'] * 100:.1f}** (range {sp['min'] * 100:.1f} to {sp['max'] * 100:.1f}%)."
                )
            left, right = st.columns([2, 3])
            left.markdown("**Cascade**: what each attack added")
            left.dataframe(pd.DataFrame(cascade_rows(r)), hide_index=True)
            if r.get("checklist"):
                right.markdown("**Gradient-masking checklist**")
                right.dataframe(
                    pd.DataFrame(
                        [
                            {
                                "verdict": VERDICT[c["verdict"]],
                                "check": c["name"],
                                "measured": c["measured"],
                                "why": c["explanation"],
                            }
                            for c in r["checklist"]
                        ]
                    ),
                    hide_index=True,
                )
            st.markdown("**Broken examples**")
            gallery(run_id, k, r, spec)


def exports(run_id: str, report: dict) -> None:
    cols = st.columns(3)
    cols[0].download_button(
        "HTML report", to_html(report), f"evaluation-{run_id}.html", "text/html", key=f"ev_html_{run_id}"
    )
    cols[1].download_button(
        "JSON", json.dumps(report, indent=1), f"evaluation-{run_id}.json", "application/json", key=f"ev_json_{run_id}"
    )
    cols[2].download_button("CSV", to_csv(report), f"evaluation-{run_id}.csv", "text/csv", key=f"ev_csv_{run_id}")


def results_section(store: RunStore) -> None:
    done = [r for r in store.list_runs(kind="evaluate", status="done")]
    if not done:
        return
    ids = [r.id for r in done]
    label = {r.id: f"{r.id}: {r.title} on {r.dataset}" for r in done}
    wanted = st.query_params.get("run")
    default = [wanted] if wanted in ids else ids[:1]
    chosen = st.multiselect("Evaluations to show and compare", ids, default=default, format_func=label.get)
    reports = []
    for run_id in chosen:
        report = eval_jobs.load_report(run_id)
        if report is not None:
            reports.append({**report, "label": run_id, "id": run_id})
    if not reports:
        return
    st.subheader("Robustness curves")
    st.plotly_chart(curves_figure(reports), width="stretch")
    st.dataframe(
        pd.DataFrame([{"evaluation": rep["id"], **row} for rep in reports for row in rows(rep)]), hide_index=True
    )
    for rep in reports:
        st.subheader(f"Evaluation {rep['id']}")
        exports(rep["id"], rep)
        show_evaluation(rep["id"], rep)


def job_sections(store: RunStore) -> None:
    """What runs as background jobs: evaluations, their results, leaderboard rows, certification."""
    with st.expander("New evaluation", expanded=not store.list_runs(kind="evaluate")):
        new_evaluation_form(store)
    st.subheader("Evaluations")
    runs = store.list_runs(kind="evaluate")
    # every 2 s while a run is active; every 10 s otherwise, so that a run queued or resumed from the CLI
    # or another server shows up without a reload (one small SQLite read)
    st.session_state["ev_fast_refresh"] = any(r.active for r in runs)
    st.fragment(run_every=2 if st.session_state["ev_fast_refresh"] else 10)(jobs_table)(store)
    results_section(store)
    st.subheader("Reproduce a RobustBench leaderboard row")
    leaderboard_section(store)
    st.subheader("Certified robustness (randomized smoothing)")
    certified_section(store)


def render() -> None:
    page_setup("Evaluate robustness")
    st.caption(
        "AutoAttack's standard suite (APGD-CE, APGD-T, FAB-T, Square-5000) or the quick one, as a background "
        "job: every figure states its suite and n. The cascade runs each attack on what the earlier ones left."
    )
    store = open_store()
    if store is not None:  # the job sections; without a store the inline ones below still work
        job_sections(store)
    st.subheader("Common corruptions")
    corruption_section()
    st.subheader("Minimal-norm curve (FMN)")
    minimal_norm_section()


if __name__ == "__main__":
    render()
