"""Attack Lab: attack one image live and watch the attack step by step.

Pick a model, an image and an attack; the page shows the clean image, the amplified perturbation
and the adversarial image, both top-5s, the norms and whether the attack succeeded. Iterative
attacks come with a step scrubber over their trajectory (loss, confidences, norms and the image
at each step). A minimal-eps finder bisects the smallest L-inf budget that flips the image; a table
compares every attack on the image, and a sweep shows the prediction against eps. FMN attacks can
also run on n images of a dataset for the robust-accuracy-against-eps curve of the one run, and a
decision-based attack (HopSkipJump) shows its distance against the label queries spent.

Every setting lives in the URL (``st.query_params``), so a link reproduces the experiment. All
computation goes through the engine (:mod:`advlens.attacks`); this page only lays it out.
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import partial
from urllib.parse import urlencode

import streamlit as st

from advlens.attack_cost import fitted_preset
from advlens.attacks import ATTACKS, AttackConfigError, find_minimal_eps, get_attack, run_attack
from advlens.attacks.display import perturbation_rgb, picture, step_pictures
from advlens.budget import format_linf
from advlens.data import encode_png
from advlens.models.defended import is_defended, is_random, needs_bpda, transformed_inputs
from advlens.smoothing import ABSTAIN, Stopped, certify
from advlens.zoo import suggested_linf_eps
from dashboard.attack_views import attention_section, compare_section, query_section, sweep_section
from dashboard.charts import CLEAN_COLOR, line_chart, topk_bars
from dashboard.image_picker import CurrentExample, image_picker, set_current_example
from dashboard.minimal_norm_section import lab_curve_section
from dashboard.model_picker import model_picker
from dashboard.params import budget_input, param_inputs, seed_from_url, state_value, url_text
from dashboard.perturbation_section import saved_perturbation_section
from dashboard.progress import MEMO_SIZE, STOP_KEY, clear, eta_text, result_on_click, with_progress  # noqa: F401
from dashboard.session_memo import memo_get, memo_put
from dashboard.sparse_views import show_sparse
from dashboard.url_state import synced
from dashboard.widgets import page_setup

URL_READ_KEY = "atk_url_read"
MAX_FRAMES = 60
PARAM_KEYS = sorted({p.name for cls in ATTACKS.values() for p in cls.params()})
COMMON_KEYS = ("attack", "target", "seed", "auto")
MIN_EPS_DEFAULTS = {"max_eps": 64 / 255, "tol": 0.25 / 255, "steps": 20}


# ----- session memo and the stop request ---------------------------------------------------------
def digest(example) -> str:
    return hashlib.sha1(example.x.numpy().tobytes()).hexdigest()[:16]


def attack_blurb(cls) -> str:
    """The first sentence of the attack module's docstring (it names the method and the paper)."""
    doc = (sys.modules[cls.__module__].__doc__ or cls.title).strip()
    return " ".join(doc.split("\n\n")[0].split())


# ----- controls --------------------------------------------------------------------------------------
def suggested_defaults(model, cls) -> dict:
    """Attack defaults (engine units), except budgets that show something on this kind of image."""
    out = {}
    for prm in cls.params():
        if prm.name == "eps" and prm.is_budget:
            out["eps"] = suggested_linf_eps(model)
        elif prm.name == "eps" and prm.unit == "L2" and model.input_size[0] == 1:
            out["eps"] = 2.0
        elif prm.name == "eps" and prm.unit == "L1" and model.input_size[0] == 1:
            out["eps"] = 20.0  # grey digits: about twice the median smallest L1 change (FMN-L1, issue 28)
    return out


def param_controls(cls, model, from_url: bool) -> tuple[dict, list[str]]:
    """One widget per parameter; returns ({name: engine value}, every problem found)."""
    prefix = f"atk_{cls.name}"
    if from_url:
        seed_from_url(cls.params(), prefix)
    return param_inputs(cls.params(), prefix, suggested_defaults(model, cls))


def apply_preset(cls, preset: dict | None = None) -> None:
    """A button callback: set the attack's widgets to its CPU preset (before the page reruns)."""
    for name, value in (cls.CPU_PRESET if preset is None else preset).items():
        st.session_state[f"atk_{cls.name}_{name}"] = state_value(cls.param(name), value)


def forget_settings_of_other_model(model_name: str) -> None:
    """Budgets and targets mean different things on another model: back to its defaults."""
    last = st.session_state.get("atk_last_model")
    st.session_state["atk_last_model"] = model_name
    if last is None or last == model_name:
        return
    widget_keys = {f"atk_{n}_{p.name}" for n, cls in ATTACKS.items() for p in cls.params()} | {"atk_target"}
    for key in widget_keys & set(st.session_state.keys()):
        del st.session_state[key]


def target_control(model, label: int, from_url: bool) -> tuple[int | None, bool]:
    """(target class or None, ok). A bad target from the link is reported and blocks the run."""
    k = len(model.class_names)
    key = "atk_target"
    ok = True
    if from_url and "target" in st.query_params and key not in st.session_state:
        text = st.query_params["target"].strip()
        if text.lstrip("-").isdigit() and 0 <= int(text) < k:
            st.session_state[key] = int(text)
        elif text not in {"", "none", "-1"}:
            st.error(
                f"The link asks for target class {text!r}, which is out of range: this model has {k} classes "
                f"(0 to {k - 1}). Pick a target below."
            )
            ok = False
    if st.session_state.get(key, -1) not in range(-1, k):
        st.session_state[key] = -1
    names = model.class_names
    true_name = f" (true: {names[label]})" if 0 <= label < k else ""
    choice = st.selectbox(
        f"Target class{true_name}",
        list(range(-1, k)),
        key=key,
        format_func=lambda i: "untargeted (any wrong class)" if i < 0 else f"{i} · {names[i]}",
        help="Targeted attacks pull the image toward this class.",
    )
    return (None if choice < 0 else int(choice)), ok


def sync_url(name: str, cls, values: dict, target: int | None, seed: int, auto: bool) -> None:
    wanted = {"attack": name, "seed": str(seed)}
    for prm in cls.params():
        v = values.get(prm.name)
        if v is not None:
            wanted[prm.name] = url_text(prm, v)
    if target is not None:
        wanted["target"] = str(target)
    if not auto:
        wanted["auto"] = "0"
    for key in (*COMMON_KEYS, *PARAM_KEYS):
        if key in wanted:
            if st.query_params.get(key) != wanted[key]:
                st.query_params[key] = wanted[key]
        elif key in st.query_params:
            del st.query_params[key]


# ----- running with progress and stop ----------------------------------------------------------------


def run_and_store(key, model, example, name, params, target, seed, keep_images):
    import torch

    title = ATTACKS[name].title

    def work(progress, should_stop):
        torch.manual_seed(seed)
        return run_attack(
            model,
            example.x,
            example.label,
            name,
            target=target,
            record=ATTACKS[name].iterative,
            record_images=keep_images,
            max_frames=MAX_FRAMES,
            progress=progress,
            should_stop=should_stop,
            **params,
        )

    preset = ATTACKS[name].CPU_PRESET
    hint = "Or use the **CPU-friendly preset** above the Run button." if preset else ""
    res, interrupt, widgets = with_progress(title, work, hint)
    res.extra["interrupted"] = interrupt is not None
    memo_put(key, res, MEMO_SIZE)
    if interrupt is not None:
        raise interrupt
    clear(widgets)
    return res


# ----- results ---------------------------------------------------------------------------------------
def show_images(res) -> None:
    names = res.class_names
    pert, k = perturbation_rgb(res.perturbation(0))
    c1, c2, c3 = st.columns(3)
    c1.image(
        picture(res.x[0]),
        caption=f"clean: {names[int(res.clean_pred[0])]} ({float(res.clean_probs[0].max()) * 100:.1f}%)",
        width="stretch",
    )
    c2.image(pert, caption=f"perturbation x {k}, mid-grey = 0", width="stretch")
    c3.image(
        picture(res.x_adv[0]),
        caption=f"adversarial: {names[int(res.adv_pred[0])]} ({float(res.adv_probs[0].max()) * 100:.1f}%)",
        width="stretch",
    )


def show_defense(model, res) -> None:
    """For a defended model: what its base network sees, the clean and the adversarial image after
    the transforms (one random draw of a random defense)."""
    if not is_defended(model):
        return
    tx, tx_adv = transformed_inputs(model, res.x[:1], res.x_adv[:1])
    chain = " then ".join(t.token for t in model.chain)
    draw = " (one random draw: each forward pass draws again)" if is_random(model) else ""
    st.markdown(f"**After the defense** ({chain}){draw}: what the classifier sees")
    c1, c2, c3 = st.columns(3)
    c1.image(picture(tx[0]), caption="clean image after the transforms", width="stretch")
    c2.image(picture(tx_adv[0]), caption="adversarial image after the transforms", width="stretch")
    c3.caption(
        "Plain gradient attacks see a zero gradient through a non-differentiable transform and a single draw of "
        "a random one, so the defense looks strong. BPDA differentiates a stand-in for the transform; EOT "
        "averages the gradient over random draws (Athalye et al. 2018)."
    )


def adaptive_hint(model, cls, params: dict) -> None:
    """Say when a defended model is being attacked without the options that can break it."""
    if not is_defended(model):
        return
    takes = {p.name for p in cls.params()}
    missing = []
    if needs_bpda(model) and not params.get("bpda"):
        missing.append("**bpda**")
    if is_random(model) and int(params.get("eot", 1)) < 2:
        missing.append("**eot** (e.g. 10)")
    if not missing:
        return
    if {"bpda", "eot"} & takes:
        st.info(
            f"{model.zoo_name} is defended by input transforms: turn on {' and '.join(missing)} to attack it adaptively."
        )
    else:
        st.info(f"{model.zoo_name} is defended by input transforms: PGD and APGD offer BPDA and EOT to break it.")


def certify_section(model, example, digest_: str) -> None:
    """Randomized smoothing (Cohen et al. 2019): the certified L2 radius of this image."""
    st.subheader("Certified radius (randomized smoothing)")
    st.caption(
        "g(x) = the class the model predicts most often on x plus Gaussian noise. If it wins with probability at "
        "least p_A, no L2 perturbation smaller than sigma * Phi^-1(p_A) can change g(x). n0 samples choose the "
        "class, n estimate p_A (a lower bound at confidence 1 - alpha); a model trained with Gaussian "
        "augmentation at the same sigma (objective gaussian_aug) gets the largest radii."
    )
    cols = st.columns(5)
    sigma = synced(cols[0].number_input, "atk_cert_sigma", 0.25, "sigma", min_value=0.01, max_value=2.0, step=0.05)
    n = int(synced(cols[1].number_input, "atk_cert_n", 10_000, "n", min_value=100, max_value=200_000, step=1000))
    n0 = int(synced(cols[2].number_input, "atk_cert_n0", 100, "n0", min_value=10, max_value=10_000, step=10))
    alpha = synced(
        cols[3].number_input,
        "atk_cert_alpha",
        0.001,
        "alpha",
        min_value=0.0001,
        max_value=0.1,
        step=0.001,
        format="%.4f",
    )
    key = ("certify", model.zoo_name if hasattr(model, "zoo_name") else "", digest_, sigma, n, n0, alpha)

    def work(progress, should_stop):
        try:
            return certify(
                model, example.x[0], float(sigma), n0, n, float(alpha), progress=progress, should_stop=should_stop
            )
        except Stopped:
            return None

    clicked = cols[4].button("Certify this image", key="atk_cert_run")
    cert = result_on_click(
        clicked, key, f"Certifying ({n0 + n:,} forward passes)", work, "Certification settings rejected"
    )
    if cert is None:
        return
    names = model.class_names
    c1, c2, c3 = st.columns(3)
    if cert.prediction == ABSTAIN:
        c1.metric("Smoothed prediction", "abstain", help="the top class did not win clearly enough to certify")
        c2.metric("Certified L2 radius", "none")
    else:
        c1.metric("Smoothed prediction", names[cert.prediction])
        c2.metric("Certified L2 radius", f"{cert.radius:.3f}", help="no L2 perturbation below this changes g(x)")
    c3.metric("p_A lower bound", f"{cert.p_lower:.4f}", f"{cert.count:,}/{cert.n:,} samples", delta_color="off")
    st.caption(f"{cert.seconds:.2f} s for {n0 + n:,} forward passes; sigma {sigma}, alpha {alpha}.")


def show_metrics(res) -> None:
    m = st.columns([2, 1, 1, 1])  # the budget form "32/255 (0.1255)" needs the room
    linf = float(res.linf[0])
    m[0].metric("L-inf", format_linf(linf), help="the largest change of any pixel, as 1/255 levels and in [0, 1]")
    m[1].metric("L2", f"{float(res.l2[0]):.4f}")
    goal = f"→ {res.class_names[int(res.target[0])]}" if res.targeted else "untargeted"
    m[2].metric("Success", "yes" if bool(res.success[0]) else "no", goal, delta_color="off")
    m[3].metric("Time", f"{res.seconds:.2f} s")
    if res.stopped:
        st.warning("The attack was stopped early; these are its results so far.")
    if bool(res.y_from_prediction[0]):
        st.caption(
            f"The true class is unknown, so the clean prediction ({res.class_names[int(res.y[0])]}) stands in for it."
        )


def show_topk(res) -> None:
    """Blue bars; orange marks the class the attack aims at: the target, or the new prediction."""
    names = res.class_names
    if res.targeted:
        aim = names[int(res.target[0])]
    else:
        aim = names[int(res.adv_pred[0])] if bool(res.success[0]) else None
    means = "the target" if res.targeted else "the new prediction"
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        topk_bars(
            res.topk("clean"), f"Clean top-5 (true: {names[int(res.y[0])]})", aim, CLEAN_COLOR, highlight_means=means
        ),
        key="atk_top_clean",
    )
    c2.plotly_chart(
        topk_bars(res.topk("adv"), "Adversarial top-5", aim, CLEAN_COLOR, highlight_means=means), key="atk_top_adv"
    )


@st.fragment  # moving the step slider reruns this part only
def show_trajectory(res, run_id: str) -> None:
    traj = res.trajectory
    if traj is None or len(traj) == 0:
        return
    st.subheader("Trajectory")
    series = traj.series(0)
    labels = series["label"]
    n = len(traj)
    entry = st.select_slider(
        "Step", options=list(range(n)), value=n - 1, key=f"atk_scrub_{run_id}", format_func=lambda i: labels[i]
    )
    x = series["entry"]
    pct = {"p(true class) %": [v * 100 for v in series["p_true"]]}
    if res.targeted:
        pct["p(target) %"] = [v * 100 for v in series["p_target"]]
    c1, c2, c3 = st.columns(3)
    c1.plotly_chart(
        line_chart(x, {"loss": series["loss"]}, "Attack objective", "model call", "loss", marker_x=entry),
        key=f"atk_loss_{run_id}",
    )
    c2.plotly_chart(line_chart(x, pct, "Confidence", "model call", "%", marker_x=entry), key=f"atk_conf_{run_id}")
    c3.plotly_chart(
        line_chart(
            x,
            {"L-inf (x255)": [v * 255 for v in series["linf"]], "L2": series["l2"]},
            "Perturbation size",
            "model call",
            "norm",
            marker_x=entry,
        ),
        key=f"atk_norm_{run_id}",
    )
    state = "adversarial" if series["success"][entry] else "not adversarial yet"
    st.caption(
        f"{labels[entry]}: loss {series['loss'][entry]:.4g}, p(true) {series['p_true'][entry] * 100:.1f}%, "
        f"L-inf {format_linf(series['linf'][entry])}, L2 {series['l2'][entry]:.4f}, {state}."
    )
    pics = step_pictures(traj, entry, res.x[0])
    if pics is None:
        st.caption("No image kept for this step (turn on 'Keep the image at each step' in the settings).")
        return
    img, pert, k, frame = pics
    note = "" if frame == entry else f" (nearest kept image: {labels[frame]})"
    c1, c2 = st.columns(2)
    c1.image(img, caption=f"image at {labels[entry]}{note}", width="stretch")
    c2.image(pert, caption=f"perturbation at that step x {k}, mid-grey = 0", width="stretch")


def show_downloads(res, settings: dict) -> None:
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download the adversarial image (PNG, lossless)",
        encode_png(res.x_adv[0]),
        file_name=f"adv_{settings['attack']}.png",
        mime="image/png",
        key="atk_dl_png",
    )
    blob = json.dumps({**settings, "result": res.summary(0)}, indent=2)
    c2.download_button(
        "Download the settings (JSON)",
        blob,
        file_name=f"adv_{settings['attack']}.json",
        mime="application/json",
        key="atk_dl_json",
    )


def min_eps_section(model, example, target, digest_: str) -> None:
    st.subheader("Minimal budget")
    st.caption(
        "Binary search for the smallest L-inf eps at which PGD flips this image, and DeepFool's "
        "minimal L2 perturbation for comparison."
    )
    cols = st.columns(4)
    max_eps = budget_input("atk_me_max", MIN_EPS_DEFAULTS["max_eps"], cols[0], "search up to (L-inf)")
    tol = budget_input("atk_me_tol", MIN_EPS_DEFAULTS["tol"], cols[1], "precision (L-inf)")
    steps = synced(cols[2].number_input, "atk_me_steps", MIN_EPS_DEFAULTS["steps"], "PGD steps", step=1)
    if max_eps is None or tol is None:
        return
    key = ("min_eps", digest_, example.label, target, float(max_eps), float(tol), int(steps), model.spec.arch)
    clicked = cols[3].button("Find the minimal eps", key="atk_me_run")
    if clicked and int(steps) < 1:
        st.error(f"PGD steps must be at least 1, got {int(steps)}.")
        return
    work = partial(
        find_minimal_eps,
        model,
        example.x,
        example.label,
        target=target,
        max_eps=float(max_eps),
        tol=float(tol),
        steps=int(steps),
    )
    found = result_on_click(clicked, key, "Minimal eps search", work, "Search settings rejected")
    if found is None:
        return
    s = found.summary(0)
    c1, c2 = st.columns(2)
    if s["min_linf_eps"] is None:
        c1.metric(
            "Smallest L-inf eps", f"> {format_linf(s['max_eps'])}", help="PGD did not flip the image within the range"
        )
    else:
        c1.metric(
            "Smallest L-inf eps",
            format_linf(s["min_linf_eps"]),
            help=f"within {format_linf(s['tol'])}, after {s['searches']} bisections with PGD-{int(steps)}",
        )
    c2.metric("DeepFool L2", "not flipped" if s["deepfool_l2"] is None else f"{s['deepfool_l2']:.4f}")
    if s["stopped"]:
        st.warning("The search was stopped early; the numbers are upper bounds.")


# ----- the page --------------------------------------------------------------------------------------
def render() -> None:
    page_setup("Attack Lab", "⚔️")
    # The link is read once per session, by the first run that gets as far as the settings (a
    # first run may stop earlier, e.g. while an upload is awaited).
    from_url = not st.session_state.get(URL_READ_KEY, False)
    model_name, model = model_picker()
    if model is None:
        return
    forget_settings_of_other_model(model_name)
    example = image_picker(model)
    if example is None:
        return
    names = list(ATTACKS)
    if "atk_name" not in st.session_state:
        wanted = st.query_params.get("attack")
        st.session_state["atk_name"] = wanted if from_url and wanted in names else "pgd"
    name = st.selectbox("Attack", names, key="atk_name", format_func=lambda n: f"{ATTACKS[n].title} ({n})")
    cls = get_attack(name)
    st.caption(attack_blurb(cls))
    values, problems = param_controls(cls, model, from_url)
    if cls.CPU_PRESET:
        preset, note = fitted_preset(cls, model)  # lowered for a big model (issue 25: advlens.attack_cost)
        shown = ", ".join(f"{k}={v}" for k, v in preset.items())
        st.button(
            f"CPU-friendly preset ({shown})",
            key=f"atk_preset_{cls.name}",
            on_click=apply_preset,
            args=(cls, preset),
            help="Settings that finish in seconds on a 2-core CPU and still flip the sample photos.",
        )
        if note:
            st.caption(note)
    target, target_ok = target_control(model, example.label, from_url)
    with st.expander("Run settings"):
        if "atk_seed" not in st.session_state:
            qp_seed = st.query_params.get("seed", "0")
            st.session_state["atk_seed"] = int(qp_seed) if from_url and qp_seed.isdigit() else 0
        seed = int(st.number_input("Random seed", step=1, key="atk_seed"))
        keep_images = st.checkbox(
            "Keep the image at each step",
            value=True,
            key="atk_keep_images",
            help=f"Needed for the step scrubber's image; at most {MAX_FRAMES} images are kept.",
        )
    if "atk_auto" not in st.session_state:
        st.session_state["atk_auto"] = not (from_url and st.query_params.get("auto") == "0")
    c_run, c_auto = st.columns([1, 3])
    clicked = c_run.button("Run attack", type="primary", key="atk_run")
    auto = c_auto.toggle("Run automatically when a setting changes", key="atk_auto")
    st.session_state[URL_READ_KEY] = True
    sync_url(name, cls, values, target, seed, auto)
    if problems:
        st.error("Attack settings rejected:\n\n" + "\n\n".join(f"- {p}" for p in problems))
        return
    try:
        params = cls.validate_params(values)
    except AttackConfigError as exc:
        st.error(f"Attack settings rejected: {exc}")
        return
    if not target_ok:
        return
    adaptive_hint(model, cls, params)
    dg = digest(example)
    key = (model_name, dg, example.label, name, tuple(sorted(params.items())), target, seed, keep_images)
    stop_requested = st.session_state.pop(STOP_KEY, False)
    res = memo_get(key)
    if res is not None and res.extra.get("interrupted"):
        if stop_requested:
            res.extra["interrupted"] = False  # the user's Stop: keep the partial result from now on
        else:
            res = None  # interrupted by another click, not by Stop: run it again
    run_box = st.container()
    result_box = st.empty()  # clears the previous result at once: it is never left on screen, stale, during a run
    if clicked or (auto and res is None and not stop_requested):
        try:
            with run_box:
                res = run_and_store(key, model, example, name, params, target, seed, keep_images)
        except AttackConfigError as exc:
            st.error(f"Attack settings rejected: {exc}")
            return
        except (RuntimeError, ValueError) as exc:
            st.error(f"The attack failed: {exc}")
            return
    with result_box.container():
        if res is None:
            st.info("Press **Run attack** to attack this image." if not stop_requested else "Stopped.")
        else:
            show_result(res, cls, key, model_name, example, name, params, target, seed)
            show_defense(model, res)
    lab_curve_section(model_name, model, name, params)  # FMN: the robustness curve on n images (issue 28)
    min_eps_section(model, example, target, dg)
    lab_eps = params["eps"] if cls.norm == "Linf" else suggested_linf_eps(model)
    compare_section(model, example, lab_eps, target, dg)
    sweep_section(model, example, name, params, lab_eps, target, dg)
    certify_section(model, example, dg)
    saved_perturbation_section(model_name, model, example)  # universal perturbations and patches


def show_result(res, cls, key, model_name, example, name, params, target, seed) -> None:
    show_images(res)
    show_metrics(res)
    show_sparse(res, cls)  # L0/L1 and minimal-norm attacks: the changed pixels, the norm found (issue 28)
    show_topk(res)
    query_section(res, cls)  # decision-based attacks: distance against label queries (issue 28)
    attention_section(res, model_name, key)
    run_id = hashlib.sha1(repr(key).encode()).hexdigest()[:10]
    show_trajectory(res, run_id)
    settings = {
        "model": model_name,
        "image": example.source,
        "title": example.title,
        "label": example.label,
        "attack": name,
        "params": params,
        "params_display": {p.name: p.format(params[p.name]) for p in cls.params()},
        "target": target,
        "seed": seed,
        "url_query": urlencode(st.query_params.to_dict()),
    }
    show_downloads(res, settings)
    set_current_example(
        CurrentExample(
            model_name=model_name,
            x=res.x,
            label=example.label,
            x_adv=res.x_adv,
            attack=name,
            params=dict(params),
            title=example.title,
        )
    )


if __name__ == "__main__":
    render()
