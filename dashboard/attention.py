"""Attention: where the model looks on the clean and the adversarial image, on one shared scale.

Thin page: maps, metrics and analysis come from :mod:`advlens.attribution`. It works on the
Attack Lab's current example, or on its own (pick a model and an image; a PGD L-inf attack runs).
``dashboard.lens`` holds what it shares with the Features page.
"""

from __future__ import annotations

import streamlit as st
import torch

from advlens import attention_study as study
from advlens.attacks import AttackConfigError
from advlens.attribution import METHODS, TARGET_LABELS, LayerError, attention_view
from advlens.attribution.display import COLORMAPS, diverging_rgb, enlarge, image_rgb, overlay
from advlens.attribution.empty import check_maps
from advlens.attribution.metrics import ERASE_VALUES
from advlens.budget import format_linf
from advlens.jobs import RunStore
from advlens.paths import HomeError
from advlens.predict import topk_from_probs as topk_of
from dashboard.attention_compare import second_model_section
from dashboard.cam_pair import fix_applier, signed_control
from dashboard.charts import ADV_COLOR, CLEAN_COLOR, topk_bars
from dashboard.job_panel import job_row, rerun_when_finished
from dashboard.lens import layer_control, lens_source
from dashboard.params import budget_input
from dashboard.progress import result_on_click
from dashboard.run_store import open_store
from dashboard.session_memo import session_memo
from dashboard.url_state import synced
from dashboard.widgets import empty_map_notice, page_setup


def settings_panel(model, key: str = "att") -> dict:
    with st.expander("Map settings", expanded=True):
        c1, c2, c3 = st.columns(3)
        methods = list(METHODS)
        method = synced(
            c1.selectbox, f"{key}_method", methods[0], "Method", methods, format_func=lambda m: METHODS[m].label
        )
        kinds = list(TARGET_LABELS) + ["class"]
        kind = synced(
            c2.selectbox,
            f"{key}_target",
            kinds[0],
            "Target class",
            kinds,
            format_func=lambda k: TARGET_LABELS.get(k, "a chosen class"),
        )
        target: str | int = kind
        if kind == "class":
            names = list(model.class_names)
            target = synced(
                c3.selectbox, f"{key}_class", 0, "Class", range(len(names)), format_func=lambda i: f"{i}: {names[i]}"
            )
        layer = None
        if METHODS[method].uses_layer:
            layer = layer_control(model, key, model.default_cam_layer())
        signed = signed_control(key, method)
        c4, c5, c6 = st.columns(3)
        k = synced(
            c4.number_input,
            f"{key}_k",
            20.0,
            "Top-k% region (IoU, faithfulness)",
            step=5.0,
            help="Must lie in (0, 100].",
        )
        thr = synced(
            c5.slider,
            f"{key}_thr",
            0.5,
            "Scatter threshold (fraction of the map's max)",
            min_value=0.05,
            max_value=1.0,
            step=0.05,
        )
        erase = synced(c6.selectbox, f"{key}_erase", ERASE_VALUES[0], "Erase value (faithfulness)", list(ERASE_VALUES))
        c7, c8 = st.columns(2)
        cmap = synced(c7.selectbox, f"{key}_cmap", list(COLORMAPS)[0], "Colormap", list(COLORMAPS))
        alpha = synced(c8.slider, f"{key}_alpha", 0.5, "Overlay opacity", min_value=0.0, max_value=1.0, step=0.05)
    return {
        "method": method,
        "target": target,
        "layer": layer,
        "k_percent": float(k),
        "threshold": float(thr),
        "erase": erase,
        "colormap": cmap,
        "alpha": float(alpha),
        "signed": signed,
    }


STUDY_INLINE_MAX = 50  # more images than this run as a background job (progress, stop, resume)
METRIC_HELP = """
- **top-k% IoU**: overlap of the k% most attended pixels of the two maps (1: same region). Wu et al.
  report ~0.12 for successful attacks and ~0.19 for failed ones.
- **Pearson / Spearman**: pixel-wise correlation of the two maps (values / ranks).
- **centre-of-mass shift**: how far the attention's centre moved, in pixels.
- **connected components / entropy**: scatter — how many separate regions hold >= threshold x max, and
  how spread out the map is (normalised entropy, 1 = uniform).
- **attended area**: fraction of pixels >= threshold x max.
- **faithfulness**: confidence drop for the map's class when its top-k% region is erased.
"""


def cell(value: float, row: dict) -> str:
    """A metric as text: 4 decimals, or what keeps it from being computed (``clean map empty``)."""
    if value != value:  # NaN
        return row.get("note") or "not defined"
    return f"{value:.4f}"


def analysis_section(model_name: str, model, method: str, layer: str | None, target, k: float, thr: float) -> None:
    """The seed paper's analysis over the first N images of a dataset: successful vs failed attacks."""
    from advlens.attribution.analysis import distribution_figure, summarize, verdict
    from dashboard.image_picker import compatible_datasets

    st.caption(
        "Wu et al. report a clean-vs-adversarial IoU of ~0.12 when the attack succeeds and ~0.19 when it "
        "fails. Attack N test images (the first N of MNIST or digits, a class-stratified sample of a sample set) with PGD L-inf, compute both maps with the settings above, and "
        "compare the two groups (images misclassified when clean are left out). More than "
        f"{STUDY_INLINE_MAX} images run as a background job: its progress shows here, with Stop and Resume."
    )
    names = [d for d in compatible_datasets(model) if d != "folder"]
    if not names:
        st.info("No offline dataset fits this model's input size.")
        return
    c1, c2, c3, c4 = st.columns(4)
    ds_name = synced(c1.selectbox, "ana_ds", names[0], "Dataset", names)
    n = int(synced(c2.number_input, "ana_n", 100, "Images (N)", min_value=4, max_value=2000, step=20))
    eps = budget_input("ana_eps", 20 / 255, c3, "eps (L-inf: 8/255 or 0.0314)")
    steps = int(synced(c4.number_input, "ana_steps", 10, "PGD steps", min_value=1, max_value=100))
    if eps is not None and st.button("Run the analysis", key="ana_run"):
        settings = {"method": method, "layer": layer, "target": target, "k_percent": k, "threshold": thr}
        if n <= STUDY_INLINE_MAX:
            study_inline(model_name, model, ds_name, n, eps, steps, settings)
        else:
            study_job(model_name, ds_name, n, eps, steps, settings)
    job_id = st.session_state.get("ana_job")
    store = open_store() if job_id else None
    rec = store.get(job_id) if store is not None else None
    if rec is not None:
        # polls the store only while the job runs; a finished job's result is read once
        st.fragment(run_every=2 if rec.active else None)(study_job_panel)(store, job_id)
        if rec.status == "done" and st.session_state.get("ana_loaded") != job_id:
            found = study.load_result(job_id)
            if found is not None:
                st.session_state["ana_loaded"] = job_id
                spec, result = found
                st.session_state["ana_result"] = (
                    spec["model"],
                    spec["dataset"],
                    result.n_total,
                    spec["eps"],
                    spec["steps"],
                    result,
                )
    stored = st.session_state.get("ana_result")
    if not stored or stored[0] != model_name:
        return
    _, ds_name, n_done, eps_done, steps_done, result = stored
    st.markdown(
        f"**{ds_name}**, first {n_done} images, PGD L-inf eps {format_linf(eps_done)}, {steps_done} steps: attack "
        f"succeeded on **{result.n_success}**, failed on **{result.n_failure}** "
        f"({result.n_clean_wrong} misclassified clean, left out)."
    )
    if result.n_success == 0 or result.n_failure == 0:
        st.warning("One group is empty: change eps so that some attacks succeed and some fail.")
    st.dataframe(
        [
            {
                "metric": r["label"],
                "success mean": r["success_mean"],
                "success median": r["success_median"],
                "failure mean": r["failure_mean"],
                "failure median": r["failure_median"],
                "p": r["p_value"],
            }
            for r in summarize(result)
        ],
        hide_index=True,
        width="stretch",
    )
    v = verdict(result)
    if "lower_iou_on_success" in v:
        st.markdown(
            f"Lower IoU when the attack succeeds: **{'yes' if v['lower_iou_on_success'] else 'no'}** "
            f"(p = {v['iou_p_value']:.2g}); higher adversarial-map entropy: "
            f"**{'yes' if v['higher_entropy_on_success'] else 'no'}** (p = {v['entropy_p_value']:.2g})."
        )
    st.plotly_chart(distribution_figure(result), width="stretch", key="ana_fig")


def study_inline(model_name: str, model, ds_name: str, n: int, eps: float, steps: int, settings: dict) -> None:
    """The study on a few images, here and now (more are a background job: :func:`study_job`): the
    job's engine calls on one chunk of all the images (seed ``spec.seed`` = 0, as before), under the
    CPU gate with a progress bar."""
    spec = study.StudySpec(model=model_name, dataset=ds_name, n=n, eps=float(eps), steps=steps, **settings)
    try:
        study.check_spec(spec)
        x, y, subset = study.images(spec)  # the one subset rule: first N in an official order, else stratified
    except (ValueError, OSError) as exc:
        st.error(f"The analysis could not run: {exc}")
        return
    st.caption(subset.describe("Images"))

    def work(progress, should_stop):
        # One chunk, not the job's chunks of study.CHUNK: its seed covers every image as the page always did.
        result = study.as_analysis(study.merge([study.study_chunk(spec, model, x, y, 0, progress)]))
        st.session_state["ana_job"] = None  # kept even when another click interrupts the run
        st.session_state["ana_result"] = (model_name, ds_name, len(x), eps, steps, result)
        return result

    key = ("ana_inline", model_name, ds_name, n, float(eps), steps, *settings.items())
    try:
        result_on_click(True, key, f"Attention study on {len(x)} images", work, "The analysis could not run")
    except (AttackConfigError, LayerError, RuntimeError, OSError) as exc:
        st.error(f"The analysis could not run: {exc}")


def study_job(model_name: str, ds_name: str, n: int, eps: float, steps: int, settings: dict) -> None:
    """Queue the study on many images as a background job (:mod:`advlens.attention_study`)."""
    spec = study.StudySpec(model=model_name, dataset=ds_name, n=n, eps=float(eps), steps=steps, **settings)
    try:
        rec = study.submit(spec)
    except (study.StudyConfigError, HomeError) as exc:
        st.error(f"The analysis could not run: {exc}")
        return
    st.session_state["ana_job"] = rec.id
    st.session_state["ana_result"] = None


def study_job_panel(store: RunStore, job_id: str) -> None:
    """The study job's progress from the job store, with Stop and Resume. The fragment polls every 2 s
    while the job is active; a full rerun when the job ends (the result is shown, the polling stops) or
    is resumed (the polling starts)."""
    store.reap_dead()  # a worker that died leaves its job active: this ends it
    rec = store.get(job_id)
    if rec is None:
        return
    rerun_when_finished("ana_active_job", [rec])
    # study.resume: the generic resume with the kind's worker launcher (the one its tests replace)
    job_row(rec, store, "ana", f"Study job `{rec.id}` ({rec.title}): ", (4, 1), with_id=False, resume=study.resume)


def render() -> None:
    page_setup("Attention", "👁️")
    st.caption(
        "Grad-CAM and friends on the clean and adversarial image, normalised together: a weaker "
        "map looks weaker. The difference is adversarial minus clean (red: more attention after the attack)."
    )
    src = lens_source("att")
    if src is None:
        return
    model = src.model
    s = settings_panel(model)
    view_key = (
        "view",
        *src.key,
        s["method"],
        s["layer"],
        str(s["target"]),
        s["k_percent"],
        s["threshold"],
        s["erase"],
    ) + (("signed",) if s["signed"] else ())
    try:
        with st.spinner("Computing attention maps..."):
            view = session_memo(
                view_key,
                lambda: attention_view(
                    model,
                    src.x,
                    src.x_adv,
                    torch.tensor([src.label]),
                    method=s["method"],
                    layer=s["layer"],
                    target=s["target"],
                    k_percent=s["k_percent"],
                    threshold=s["threshold"],
                    erase=s["erase"],
                    probs=src.probs,
                    **({"relu": False} if s["signed"] else {}),
                ),
            )
    except (LayerError, ValueError) as exc:
        st.error(str(exc))
        return

    names = model.class_names
    cp, ap = int(view.clean_pred[0]), int(view.adv_pred[0])
    tc, ta = int(view.targets_clean[0]), int(view.targets_adv[0])
    flipped = cp != ap
    st.markdown(
        f"**{src.title}** · {src.attack} · clean prediction **{names[cp]}** "
        f"({float(view.clean_probs[0, cp]) * 100:.1f}%) → adversarial **{names[ap]}** "
        f"({float(view.adv_probs[0, ap]) * 100:.1f}%) · "
        + ("the attack **changed** the prediction" if flipped else "the prediction **held**")
    )

    empty = None
    if view.empty_names(0):  # say which map is empty, why, and offer a setting that shows something
        empty = session_memo(
            (*view_key, "empty"),
            lambda: check_maps(
                model,
                s["method"],
                view.layer,
                {
                    "clean": (src.x, view.targets_clean[:1], view.clean_map[:1]),
                    "adversarial": (src.x_adv, view.targets_adv[:1], view.adv_map[:1]),
                },
                signed=s["signed"],
            ),
        )
    empty_map_notice(empty, "att", fix_applier(model, "att"))

    img_clean, img_adv = image_rgb(src.x), image_rgb(src.x_adv)
    ov_clean = overlay(img_clean, view.clean_norm[0].numpy(), s["alpha"], s["colormap"])
    ov_adv = overlay(img_adv, view.adv_norm[0].numpy(), s["alpha"], s["colormap"])
    diff = diverging_rgb(view.diff[0].numpy(), float(view.diff_limit[0]))
    cols = st.columns([1, 1, 1, 1.2])
    label = METHODS[s["method"]].label + (" (signed)" if s["signed"] else "")
    cols[0].image(enlarge(ov_clean), caption=f"clean · {label} for '{names[tc]}'", width="stretch")
    cols[1].image(enlarge(ov_adv), caption=f"adversarial · {label} for '{names[ta]}'", width="stretch")
    cols[2].image(
        enlarge(diff),
        caption=f"adversarial − clean (blue −, red +; ±{float(view.diff_limit[0]):.2f} of the shared range)",
        width="stretch",
    )
    with cols[3]:
        truth = names[src.label] if src.label >= 0 else None
        st.plotly_chart(
            topk_bars(topk_of(view.clean_probs[0], names), "clean", color=CLEAN_COLOR, height=200),
            width="stretch",
            key="att_top_clean",
        )
        st.plotly_chart(
            topk_bars(topk_of(view.adv_probs[0], names), "adversarial", highlight=truth, color=ADV_COLOR, height=200),
            width="stretch",
            key="att_top_adv",
        )
    st.caption(
        f"Shared scale: raw map values [{float(view.vmin[0]):.4g}, {float(view.vmax[0]):.4g}] → [0, 1] "
        f"for both maps{'' if view.layer is None else f' · layer {view.layer}'} · largest value: clean "
        f"{float(view.clean_map[0].max()):.4g}, adversarial {float(view.adv_map[0].max()):.4g}."
    )

    second_model_section(src)

    st.subheader("Attention-shift metrics")
    rows = view.table(0)
    pair = [{"metric": r["metric"], "value": cell(r["clean vs adversarial"], r)} for r in rows if r["clean"] is None]
    per_map = [
        {
            "metric": r["metric"],
            "clean": cell(r["clean"], r),
            "adversarial": cell(r["adversarial"], r),
            "change": cell(r["clean vs adversarial"], r),
        }
        for r in rows
        if r["clean"] is not None
    ]
    left, right = st.columns([2, 3])
    left.markdown("**clean vs adversarial**")
    left.dataframe(pair, hide_index=True, width="stretch")
    right.markdown("**each map** (scatter, area, faithfulness)")
    right.dataframe(per_map, hide_index=True, width="stretch")
    with st.expander("What the metrics mean"):
        st.markdown(METRIC_HELP)
    with st.expander("Dataset analysis: successful vs failed attacks"):
        analysis_section(src.model_name, model, s["method"], s["layer"], s["target"], s["k_percent"], s["threshold"])


if __name__ == "__main__":
    render()
