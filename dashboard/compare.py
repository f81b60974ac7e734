"""Compare: a standard and a defended model under the same attack on the same image.

Each model is attacked white-box (the attack uses that model's own gradients), with the same
attack settings and the same starting image; the page shows the two predictions side by side,
before and after, plus a transfer check (the standard model's adversarial image fed to the
defended one) and, with :mod:`advlens.attribution`, each model's clean and adversarial Grad-CAM on one
colour scale (an empty map is named, with a one-click fix: :mod:`dashboard.cam_pair`).
"""

from __future__ import annotations

import streamlit as st
import torch

from advlens.attacks import ATTACKS, AttackConfigError, run_attack
from advlens.attribution.display import enlarge, image_rgb
from advlens.budget import format_linf
from advlens.evaluation.known import evaluation_of
from advlens.predict import predict_proba
from advlens.zoo import get_entry, list_models, suggested_linf_eps, trained_linf_eps
from dashboard.cam_pair import cam_pair
from dashboard.charts import ADV_COLOR, topk_bars
from dashboard.image_picker import image_picker
from dashboard.model_picker import model_picker
from dashboard.params import param_inputs, seed_from_url, write_to_url
from dashboard.transfer_section import transfer_section
from dashboard.url_state import synced
from dashboard.widgets import page_setup

DEFAULT_ATTACK = "pgd"
URL_PREFIX = "cmp_p_"  # the attack's parameters in the link: cmp_p_eps=8/255, cmp_p_steps=10, ...


def attack_settings(model, trained_eps: float | None = None) -> tuple[str, dict, list[str]]:
    """The attack, its parameters and the problems found. The L-inf budget starts at the defended
    model's training eps (``trained_eps``) when it has one: a defense is tested at the budget it was
    trained for; otherwise at the budget suggested for this kind of image."""
    names = list(ATTACKS)
    name = synced(
        st.selectbox,
        "cmp_attack",
        DEFAULT_ATTACK,
        "Attack",
        names,
        format_func=lambda n: f"{ATTACKS[n].title} — {ATTACKS[n].paper}",
    )
    cls = ATTACKS[name]
    eps = trained_eps if trained_eps is not None else suggested_linf_eps(model)
    defaults = {"eps": eps} if any(p.name == "eps" and p.is_budget for p in cls.params()) else {}
    prefix = f"cmp_{name}_{'x'.join(map(str, model.input_size))}_{eps:.6g}"  # new defaults per model kind
    seed_from_url(cls.params(), prefix, URL_PREFIX)
    values, problems = param_inputs(cls.params(), prefix, defaults)
    write_to_url(cls.params(), values, URL_PREFIX)
    return name, values, problems


def _attention(model, res, side: str, key: tuple) -> tuple | None:
    """Clean map for the true class, adversarial map for the predicted class (``dashboard.cam_pair``:
    settings, one colour scale, and a one-line notice with its fix when a map is empty)."""
    return cam_pair(
        model, res.x, res.x_adv, int(res.y[0]), int(res.adv_pred[0]), f"cmp_cam_{side}", memo_key=(repr(key), side)
    )


def model_column(title: str, name: str, model, res, transfer_probs: torch.Tensor | None, key: tuple = ()) -> None:
    st.markdown(f"#### {title}: `{name}`")
    known = evaluation_of(get_entry(name))
    st.caption(f"Best-known evaluation: {known}" if known else "Not evaluated yet: the Evaluate page measures it.")
    truth = res.class_names[int(res.y[0])]
    c1, c2 = st.columns(2)
    c1.image(enlarge(image_rgb(res.x[0])), caption=f"clean · true {truth}", clamp=True)
    c2.image(
        enlarge(image_rgb(res.x_adv[0])),
        caption=f"adversarial · L∞ {format_linf(float(res.linf[0]))} · L2 {float(res.l2[0]):.3f}",
        clamp=True,
    )
    c1.plotly_chart(
        topk_bars(res.topk("clean"), title="clean", highlight=truth, height=220),
        width="stretch",
        key=f"cmp_clean_{title}",
    )
    c2.plotly_chart(
        topk_bars(res.topk("adv"), title="adversarial", highlight=truth, color=ADV_COLOR, height=220),
        width="stretch",
        key=f"cmp_adv_{title}",
    )
    verdict = "fooled" if bool(res.success[0]) else "still correct"
    st.markdown(
        f"**{verdict}**: {res.class_names[int(res.clean_pred[0])]} → "
        f"{res.class_names[int(res.adv_pred[0])]} ({float(res.adv_probs[0].max()) * 100:.1f}%)"
    )
    if transfer_probs is not None:
        pred = int(transfer_probs.argmax())
        st.caption(
            f"Transfer: the standard model's adversarial image → {res.class_names[pred]} "
            f"({float(transfer_probs.max()) * 100:.1f}%)"
        )
    maps = _attention(model, res, title.lower(), key)
    if maps is not None:
        a1, a2 = st.columns(2)
        a1.image(enlarge(maps[0]), caption=f"{maps[2].label}, clean (true class)")
        a2.image(enlarge(maps[1]), caption=f"{maps[2].label}, adversarial (predicted class)")


def render() -> None:
    page_setup("Compare models")
    st.markdown(
        "Attack a standard and a defended model on the same image with the same attack, and compare "
        "their predictions and attention side by side. Models trained on the Training page appear as "
        "`run-<id>-<objective>`."
    )
    entries = list_models()
    c1, c2 = st.columns(2)
    with c1:
        name_a, model_a = model_picker("cmp_a", "Standard model", entries)
    if model_a is None:
        return
    fits = [e for e in entries if e.input_size in (None, tuple(model_a.input_size)) and e.name != name_a]
    if "cmp_b" not in st.session_state and st.query_params.get("cmp_b") is None:
        runs = [e for e in fits if e.source == "run" and e.dataset == model_a.spec.dataset] or [
            e for e in fits if e.source == "run"
        ]
        if runs:
            st.session_state["cmp_b"] = runs[0].name
    with c2:
        name_b, model_b = model_picker("cmp_b", "Defended model", fits or entries)
    if model_b is None:
        return
    if tuple(model_a.input_size) != tuple(model_b.input_size) or model_a.class_names != model_b.class_names:
        st.error(f"{name_a} and {name_b} do not take the same inputs and classes; pick two models of one dataset.")
        return
    transfer_section(name_a, model_a, [e.name for e in fits])
    example = image_picker(model_a, key="cmp_image")
    if example is None:
        return
    attack, params, problems = attack_settings(model_a, trained_linf_eps(model_b))
    if problems:
        st.error("Attack settings rejected:\n\n" + "\n\n".join(f"- {p}" for p in problems))
        return
    key = (name_a, name_b, example.title, attack, tuple(sorted(params.items())))
    if st.button("Attack both", type="primary", key="cmp_run"):
        try:
            with st.spinner("Attacking both models..."):
                res_a = run_attack(model_a, example.x, example.label, attack, **params)
                res_b = run_attack(model_b, example.x, example.label, attack, **params)
                transfer = predict_proba(model_b, res_a.x_adv)[0]
        except AttackConfigError as exc:
            st.error(f"The attack could not run: {exc}")
            return
        st.session_state["cmp_result"] = (key, res_a, res_b, transfer)
    stored = st.session_state.get("cmp_result")
    if stored is None or stored[0] != key:
        st.info("Press **Attack both** to attack the two models.")
        return
    _, res_a, res_b, transfer = stored
    left, right = st.columns(2)
    with left:
        model_column("Standard", name_a, model_a, res_a, None, key)
    with right:
        model_column("Defended", name_b, model_b, res_b, transfer, key)


if __name__ == "__main__":
    render()
