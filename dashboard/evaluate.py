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
from advlens.evaluation import NORMS, SUITES, EvalConfigError, EvalSpec
from advlens.evaluation import jobs as eval_jobs
from advlens.evaluation.report import cascade_rows, curves_figure, rows, to_csv, to_html
from advlens.training.store import RunStore
from advlens.workers import cancel
from advlens.zoo import list_models
from dashboard.widgets import cached_dataset, page_setup

VERDICT = {"pass": "✅ pass", "warn": "⚠️ warn", "skip": "➖ skip"}
GALLERY_SHOWN = 12


def new_evaluation_form(store: RunStore) -> None:
    entries = list_models()
    by_name = {e.name: e for e in entries}
    with st.form("eval_form"):
        models = st.multiselect(
            "Models",
            list(by_name),
            default=[n for n in list(by_name) if by_name[n].dataset == "digits"][:2] or list(by_name)[:1],
            help="evaluate several side by side: they get the same images, budgets and suite",
        )
        cols = st.columns(4)
        dataset = cols[0].selectbox("Dataset", [d for d in DATASETS if d != "imagenet_samples"], key="ev_dataset")
        n = cols[1].number_input("n (first images of the split; 0: all)", 0, 100_000, 100, key="ev_n")
        suite = cols[2].selectbox(
            "Suite", list(SUITES), format_func=lambda s: SUITES[s].title, key="ev_suite", help=SUITES["standard"].note
        )
        norm = cols[3].radio("Norm", NORMS, horizontal=True, key="ev_norm")
        budgets = st.text_input(
            "Budgets (comma-separated; L-inf as 8/255 or 0.0314, L2 as plain numbers)", "0.05, 0.1, 0.15", key="ev_eps"
        )
        cols = st.columns(3)
        root = cols[0].text_input("Local folder with the dataset's files (MNIST, CIFAR-10)", key="ev_root").strip()
        surrogate = cols[1].selectbox(
            "Undefended surrogate (checklist transfer check)", ["(none)", *by_name], key="ev_surrogate"
        )
        checklist = cols[2].checkbox("Gradient-masking checklist", value=True, key="ev_checklist")
        submitted = st.form_submit_button("Start evaluation", type="primary")
    if not submitted:
        return
    spec = EvalSpec(
        models=models,
        dataset=dataset,
        eps=[t.strip() for t in budgets.split(",") if t.strip()],
        suite=suite,
        norm=norm,
        n=int(n),
        root=root or None,
        checklist=checklist,
        surrogate=None if surrogate == "(none)" else surrogate,
    )
    try:
        rec = eval_jobs.submit(spec, store)
    except (EvalConfigError, DataError) as exc:
        st.error(str(exc))
        return
    st.query_params["run"] = rec.id
    st.success(f"Evaluation {rec.id} queued: {rec.message or rec.status}.")


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
                "suite": r.objective,
                "models": r.arch,
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
    active = [r for r in runs if r.active]
    for r in active:
        cols = st.columns([4, 1])
        cols[0].progress(r.progress, text=f"{r.id}: {r.status}, {r.progress * 100:.0f}%")
        if cols[1].button("Cancel", key=f"ev_cancel_{r.id}"):
            cancel(r.id, store)
            st.rerun()
    for r in runs:
        if r.status in ("cancelled", "failed") and st.button(f"Resume {r.id}", key=f"ev_resume_{r.id}"):
            eval_jobs.resume(r.id, store)
            st.rerun()


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
    for k, index in enumerate(sorted(points)[:GALLERY_SHOWN]):
        x, label = ds.item(index)
        broken_by = record["images"][index]["broken_by"]
        query = {
            "model": record["model"],
            "image_src": "Dataset item",
            "image_ds": spec["dataset"],
            "image_idx": str(index),
            "attack": broken_by,
            "eps": str(record["eps"]),
        }
        with cols[k % 6]:
            st.image(enlarge(image_rgb(points[index]), 96), caption=f"#{index} ({names[label] if names else label})")
            st.caption(f"broken by {broken_by}")
            st.link_button("Open in Attack Lab", f"attack?{urlencode(query)}", width="stretch")


def show_evaluation(run_id: str, report: dict) -> None:
    spec = report["spec"]
    st.markdown(
        f"**{report['suite']}** suite, {report['norm']}, the first {report['n']} {report['dataset']} "
        f"{report['split']} images, seed {spec['seed']} · {SUITES[report['suite']].note}"
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
    label = {r.id: f"{r.id}: {r.objective}, {r.arch} on {r.dataset}" for r in done}
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


def render() -> None:
    page_setup("Evaluate robustness")
    st.caption(
        "AutoAttack's standard suite (APGD-CE, APGD-T, FAB-T, Square-5000) or the quick one, as a background "
        "job: every figure states its suite and n. The cascade runs each attack on what the earlier ones left."
    )
    store = RunStore()
    with st.expander("New evaluation", expanded=not store.list_runs(kind="evaluate")):
        new_evaluation_form(store)
    st.subheader("Evaluations")
    runs = store.list_runs(kind="evaluate")
    st.fragment(run_every=2 if any(r.active for r in runs) else None)(jobs_table)(store)
    results_section(store)


if __name__ == "__main__":
    render()
