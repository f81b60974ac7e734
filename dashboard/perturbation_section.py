"""The Attack Lab's section on saved universal perturbations and patches: apply one to the current image,
show its fooling rate on held-out images, and start a new one as a background job.

The computation is the engine's (:mod:`advlens.perturbations`); the choice lives in the URL (``pert=NAME``,
and ``pert_row``/``pert_col``/``pert_scale``/``pert_angle`` for a patch's placement).
"""

from __future__ import annotations

import streamlit as st
import torch

from advlens.attacks.display import perturbation_rgb, picture
from advlens.attacks.patch import fixed_placement
from advlens.budget import format_linf
from advlens.jobs import RunStore
from advlens.paths import HomeError
from advlens.perturbations import jobs as pert_jobs
from advlens.perturbations import saved
from advlens.perturbations.measure import perturb
from advlens.predict import predict_proba
from dashboard.job_panel import stop_button
from dashboard.url_state import synced

NONE = "(none)"
URL_KEYS = ("pert", "pert_row", "pert_col", "pert_scale", "pert_angle")


def fits(item: saved.SavedPerturbation, input_size) -> bool:
    c, h, w = input_size
    if item.kind == "universal":
        return tuple(item.tensor.shape) == (c, h, w)
    return item.tensor.shape[0] == c and item.tensor.shape[-1] <= min(h, w)


def held_out_text(item: saved.SavedPerturbation) -> str:
    held = item.meta.get("heldout") or {}
    if not held:
        return "no held-out measurement"
    lo, hi = held["interval_95"]
    what = "targeted success" if item.target is not None else "fooling rate"
    return (
        f"**{what} on held-out images: {held['rate'] * 100:.1f}%** (95% Clopper-Pearson [{lo * 100:.1f}, "
        f"{hi * 100:.1f}], n = {held['n']}): {held['protocol']}"
    )


def describe(item: saved.SavedPerturbation) -> str:
    m = item.meta
    p = m.get("params", {})
    if item.kind == "universal":
        budget = f"L-inf eps {format_linf(p.get('eps', 0.0))}, {p.get('steps')} epochs"
    else:
        side = item.tensor.shape[-1]
        budget = (
            f"{side}x{side} pixels ({m.get('area_covered', 0) * 100:.1f}% of the image), scale "
            f"{p.get('min_scale')} to 1, rotation up to {p.get('max_rotation')} degrees, {p.get('steps')} steps"
        )
    goal = f"target **{m.get('target_name')}**" if item.target is not None else "untargeted"
    train = (m.get("train") or {}).get("description", "").removeprefix("images: ")
    return (
        f"{m.get('method', item.kind)} ({m.get('paper', '')}) for `{item.model}`: {budget}; {goal}. Trained on {train}"
    )


def placement_controls(item, input_size):
    """Sliders for where the patch lands (its box's top-left pixel, scale, rotation)."""
    side, (h, w) = item.tensor.shape[-1], input_size[1:]
    cols = st.columns(4)
    row = synced(cols[0].slider, "pert_row", (h - side) // 2, "patch row", min_value=0, max_value=h - side)
    col = synced(cols[1].slider, "pert_col", (w - side) // 2, "patch column", min_value=0, max_value=w - side)
    scale = synced(cols[2].slider, "pert_scale", 1.0, "patch scale", min_value=0.1, max_value=1.0, step=0.05)
    angle = synced(cols[3].slider, "pert_angle", 0, "rotation (degrees)", min_value=-180, max_value=180, step=5)
    return fixed_placement(1, row, col, scale, angle)


def show_applied(model, example, item) -> None:
    placement = placement_controls(item, model.input_size) if item.kind == "patch" else None
    x_adv = perturb(item.kind, item.tensor, item.meta, example.x, placement)
    probs = predict_proba(model, torch.cat([example.x, x_adv]))
    names = model.class_names
    clean, adv = int(probs[0].argmax()), int(probs[1].argmax())
    c1, c2, c3 = st.columns(3)
    c1.image(
        picture(example.x[0]), caption=f"clean: {names[clean]} ({float(probs[0].max()) * 100:.1f}%)", width="stretch"
    )
    if item.kind == "universal":
        pert, k = perturbation_rgb(item.tensor)
        c2.image(
            pert, caption=f"the universal perturbation x {k}, mid-grey = 0 (the same for every image)", width="stretch"
        )
    else:
        c2.image(picture(item.tensor), caption="the patch (the same for every image)", width="stretch")
    c3.image(picture(x_adv[0]), caption=f"with it: {names[adv]} ({float(probs[1].max()) * 100:.1f}%)", width="stretch")
    m = st.columns(3)
    m[0].metric("Prediction with it", names[adv])
    if item.target is not None:
        m[1].metric(
            "Target reached", "yes" if adv == item.target else "no", f"→ {names[item.target]}", delta_color="off"
        )
    else:
        truth = example.label if example.label >= 0 else clean
        m[1].metric("Fooled", "yes" if adv != truth else "no", "untargeted", delta_color="off")
    m[2].metric(f"p({names[clean]}) with it", f"{float(probs[1, clean]) * 100:.1f}%")


def new_job_form(model_name: str, model) -> None:
    """Start a universal perturbation or a patch for this model as a background job."""
    from advlens.data.catalog import DATASETS

    datasets = [d for d, info in DATASETS.items() if info.input_size == tuple(model.input_size) and d != "folder"]
    with st.form("pert_new"):
        cols = st.columns(3)
        method = cols[0].radio("Method", ["universal", "patch"], horizontal=True, key="pert_new_method")
        dataset = cols[1].selectbox("Training images from", datasets or ["digits"], key="pert_new_dataset")
        n = int(cols[2].number_input("Training images", 10, 60_000, 1000, key="pert_new_n"))
        cols = st.columns(3)
        names = ["untargeted", *model.class_names]
        target = cols[0].selectbox("Target", names, key="pert_new_target")
        budget = cols[1].text_input("eps (universal) or area (patch)", "0.1", key="pert_new_budget")
        steps = int(cols[2].number_input("Epochs (universal) or steps (patch)", 1, 100_000, 10, key="pert_new_steps"))
        name = st.text_input("Save as", f"{method}-{model_name.replace('+', '_')}"[:60], key="pert_new_name")
        go = st.form_submit_button("Start the job")
    if not go:
        return
    params = {"steps": steps}
    try:
        params["eps" if method == "universal" else "area"] = (
            pert_jobs.method_class(method).param("eps" if method == "universal" else "area").parse(budget)
        )
        split = "train" if dataset not in ("mnist_samples", "cifar10_samples", "imagenet_samples") else "test"
        spec = pert_jobs.PerturbationSpec(
            method=method,
            model=model_name,
            dataset=dataset,
            name=name.strip(),
            split=split,
            n=n,
            heldout_split="test",
            heldout_n=500,
            target=None if target == "untargeted" else names.index(target) - 1,
            params=params,
        )
        rec = pert_jobs.submit(spec)
    except (ValueError, KeyError, HomeError) as exc:
        st.error(f"The job was not started: {exc.args[0] if isinstance(exc, KeyError) else exc}")
        return
    st.success(f"Job {rec.id} queued; it is saved as {spec.name} when done.")


def jobs_list() -> None:
    try:
        store = RunStore()
        store.reap_dead()
        runs = pert_jobs.list_jobs(store, limit=10)
    except HomeError as exc:
        st.caption(str(exc))
        return
    for r in runs:
        text = f"{r.id}: {r.config.get('method')} for {r.config.get('model')} → {r.config.get('name')}, {r.status}"
        if r.active:
            cols = st.columns([4, 1])
            cols[0].progress(r.progress, text=f"{text}, {r.progress * 100:.0f}%")
            stop_button(r, store, cols[1], f"pert_cancel_{r.id}", "Cancel")
        else:
            st.caption(text + (f": {r.message}" if r.message else ""))
    if any(r.active for r in runs):
        st.button("Refresh", key="pert_refresh")


def saved_perturbation_section(model_name: str, model, example) -> None:
    """Apply a saved universal perturbation or patch to the current image (the Attack Lab calls this)."""
    st.subheader("Universal perturbations and patches")
    st.caption(
        "One perturbation for every image: a universal perturbation (Moosavi-Dezfooli et al. 2017) or a patch "
        "trained with expectation over transformation (Brown et al. 2017). Each was trained on some images and "
        "measured on others it never saw (held out)."
    )
    items = [i for i in saved.list_saved() if fits(i, model.input_size)]
    items.sort(key=lambda i: (i.model != model_name, i.name))
    options = [NONE, *(i.name for i in items)]
    labels = {i.name: f"{i.name} ({i.kind} for {i.model})" for i in items}
    if st.session_state.get("pert") not in options:  # first run (read the link), or gone from this model's list
        wanted = st.query_params.get("pert")
        st.session_state["pert"] = wanted if wanted in options else NONE
    choice = st.selectbox("Saved perturbation", options, key="pert", format_func=lambda n: labels.get(n, n))
    if choice == NONE:  # the link names one only when one is chosen
        for key in URL_KEYS:
            if key in st.query_params:
                del st.query_params[key]
    elif st.query_params.get("pert") != choice:
        st.query_params["pert"] = choice
    if choice != NONE:
        item = next(i for i in items if i.name == choice)
        st.markdown(describe(item))
        st.markdown(held_out_text(item))
        if item.model != model_name:
            st.info(
                f"{item.name} was made for {item.model}; on {model_name} it is a transfer (the rate above is "
                f"{item.model}'s)."
            )
        show_applied(model, example, item)
    with st.expander("Make a new one (a background job)"):
        st.caption("`python -m advlens universal ...` and `python -m advlens patch ...` do the same from the shell.")
        new_job_form(model_name, model)
        jobs_list()
