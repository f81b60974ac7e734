"""Home: what advlens does, where to start (the first lesson and a striking attack), every page, the
models and datasets, and a gallery of predictions."""

from __future__ import annotations

import streamlit as st

from advlens.budget import format_linf, linf_text
from advlens.data import DATASETS, to_uint8_hwc
from advlens.evaluation.known import evaluation_of, finished_evaluations
from advlens.predict import top_k
from advlens.showcase import SHOWCASE
from advlens.zoo import list_models
from dashboard.charts import topk_bars
from dashboard.checkpoint_import import checkpoint_loader
from dashboard.image_picker import sample_images
from dashboard.lesson_catalog import LESSONS
from dashboard.links import page_link
from dashboard.model_picker import get_model
from dashboard.session_memo import heavy
from dashboard.widgets import page_setup

INTRO = """
**advlens** is an interactive lab for adversarial attacks and defenses on image classifiers.
Pick a model and an image, attack it live, and see what changed: the prediction, the attention
map (Grad-CAM) and the feature maps, for the clean and the adversarial image side by side.
"""

PAGES = """
- **Lessons**: twelve guided experiments, each a set of links that open the other pages ready to go.
- **Attack Lab**: FGSM, PGD (L-inf, L2), MI-, DI- and TI-FGSM, Step-LL, DeepFool, C&W-L2, Square, APGD
  (L-inf, L2, L1), FAB, FMN (L0 to L-inf), Sparse-RS, HopSkipJump, saved universal perturbations and patches,
  targeted or untargeted, with a step-by-step trajectory; every attack on one image in one table,
  an eps sweep, the minimal eps, and a certified radius.
- **Attention**: clean and adversarial Grad-CAM on one colour scale, their difference, and
  attention-shift metrics.
- **Features**: feature maps at any layer, how the perturbation grows with depth, and denoising.
- **Training**: train defenses (PGD-AT, TRADES, Fast-AT, feature denoising, Gaussian augmentation, ...)
  from the browser, with live curves; finished runs join the model zoo.
- **Compare models**: attack a standard and a defended model on the same image, side by side.
- **Evaluate**: robust accuracy under AutoAttack's suites as background jobs, the gradient-masking
  checklist, and certified accuracy by randomized smoothing.

Any model can be put behind input transforms (JPEG, bit depth, median, random resize-and-pad, ...):
write `+jpeg75` after its name, or use the "Input-transform defense" box of any model picker. Such
defenses look strong under plain attacks and fall to BPDA and EOT.

Everything runs offline: the models and the sample images (MNIST, CIFAR-10, photos) ship with the
project and its packages.
"""

GALLERY_MODELS = ("efficientnet_lite0", "mnist_small_cnn", "cifar10_resnet20", "digits_small_cnn")
GALLERY_SIZE = 8


@st.cache_data(show_spinner=False, max_entries=2)
def showcase(stamp: float) -> tuple[dict | None, str]:
    """The Home page's example, precomputed by ``python -m advlens build-showcase`` (three small files
    read once per process; no model runs). ``stamp`` is the files' mtime, so a rebuild shows."""
    from advlens.showcase import load

    return load()


def _showcase_stamp() -> float:
    from advlens.showcase import FILES, SHOWCASE_DIR

    try:
        return max((SHOWCASE_DIR / n).stat().st_mtime for n in FILES)
    except OSError:
        return 0.0


def computed_showcase() -> tuple[dict | None, str]:
    """Compute the example on the user's click (when the precomputed files are missing or stale)."""
    from advlens.showcase import compute

    try:
        with st.spinner("Attacking the sample photo (targeted PGD-30 at 224 px)..."):
            return heavy(lambda: compute(get_model(SHOWCASE["model"]))), ""
    except (KeyError, OSError, RuntimeError, ValueError) as exc:
        return None, f"the ImageNet example is not available here ({exc})"


def start_here() -> None:
    st.subheader("Start here")
    left, right = st.columns([3, 2])
    with left:
        first = LESSONS[0]
        st.markdown(
            f"New to adversarial examples? Follow the lessons, starting with **{first.title}**: each one "
            "explains an idea, opens the pages it needs with every setting in place, and ends with a question."
        )
        page_link("lessons", f"Lesson 1: {first.title}", {"topic": first.slug}, icon=":material/school:")
    with right:
        shown, why = showcase(_showcase_stamp())
        if shown is None:
            shown, why = st.session_state.get("home_showcase") or (None, why)
        if shown is None:
            st.info(f"{why[0].upper()}{why[1:]}: `python -m advlens build-showcase` rebuilds it.")
            if st.button("Compute it now (a few seconds to a minute)", key="home_showcase_run"):
                shown, why = st.session_state["home_showcase"] = computed_showcase()
            if shown is None:
                return
        a, b = st.columns(2)
        a.image(shown["clean"], caption=f"clean: {shown['clean_top'][0]} ({shown['clean_top'][1] * 100:.0f}%)")
        b.image(shown["adv"], caption=f"attacked: {shown['adv_top'][0]} ({shown['adv_top'][1] * 100:.0f}%)")
        st.caption(
            f"EfficientNet-Lite0 sees an Egyptian cat. Targeted PGD ({SHOWCASE['steps']} steps, L-inf "
            f"{format_linf(SHOWCASE['eps'])}) makes it see **{shown['target']}**, a class far from the truth, "
            "with a change you cannot see."
        )
        page_link(
            "attack",
            "Open this attack in the Attack Lab",
            icon=":material/bolt:",
            query_params={
                "model": SHOWCASE["model"],
                "image_src": "Sample",
                "image_sample": f"photo: {SHOWCASE['photo']}",
                "attack": "pgd",
                "eps": linf_text(SHOWCASE["eps"]),
                "steps": str(SHOWCASE["steps"]),
                "target": str(SHOWCASE["target"]),
                "lesson": "home-showcase",
            },
        )


@st.cache_data(show_spinner="Computing predictions...", max_entries=8)
def gallery(model_name: str, k: int = 5) -> list[tuple[str, object, int, object]]:
    """(title, uint8 image, true label, TopK) for the first offline samples of a model."""
    model = get_model(model_name)
    samples = sample_images(model)[:GALLERY_SIZE]
    import torch

    x = torch.cat([s[1] for s in samples])
    preds = top_k(model, x, k)
    return [(t, to_uint8_hwc(xi), label, p) for (t, xi, label), p in zip(samples, preds)]


def render() -> None:
    page_setup("advlens")
    st.markdown(INTRO)
    start_here()
    st.subheader("Pages")
    st.markdown(PAGES)

    everything = list_models(include_unreadable=True)
    models = [e for e in everything if not e.problem]
    found = finished_evaluations([e.name for e in models])  # the run store read once for the table
    st.subheader("Models")
    st.dataframe(
        [
            {
                "name": e.name,
                "architecture": e.arch,
                "dataset": e.dataset,
                "source": e.source,
                "test accuracy": (
                    f"{e.metrics['test_accuracy'] * 100:.1f}%"
                    if isinstance(e.metrics.get("test_accuracy"), (int, float))
                    else ""
                ),
                "description": e.description,
                "robustness (best-known evaluation)": evaluation_of(e, found) or "not evaluated (see Evaluate)",
            }
            for e in models
        ],
        hide_index=True,
        width="stretch",
    )
    broken = [e for e in everything if e.problem]
    if broken:
        st.warning(
            "These checkpoints cannot be used and are left out of every model picker:\n\n"
            + "\n".join(f"- **{e.name}** ({e.path}): {e.problem}" for e in broken)
        )
    with st.expander("Load your own checkpoint (safetensors + JSON metadata) or torch.export program (.pt2)"):
        checkpoint_loader()

    st.subheader("Datasets")
    st.dataframe(
        [
            {
                "name": d.name,
                "input": "x".join(map(str, d.input_size)),
                "offline": d.offline,
                "description": d.description,
            }
            for d in DATASETS.values()
        ],
        hide_index=True,
        width="stretch",
    )

    st.subheader("Sample gallery")
    shown = [e for e in models if e.name in GALLERY_MODELS] or models[:2]
    for entry in shown:
        st.markdown(f"**{entry.name}** — top-5 predictions on the offline samples")
        items = gallery(entry.name)
        per_row = 4
        for start in range(0, len(items), per_row):
            cols = st.columns(per_row)
            for col, (title, img, label, pred) in zip(cols, items[start : start + per_row]):
                with col:
                    st.image(img, caption=title, width="stretch", clamp=True)
                    truth = get_model(entry.name).class_names[label] if label >= 0 else None
                    if truth is None:
                        st.caption("no true label for this model: attacks use its prediction")
                    st.plotly_chart(
                        topk_bars(pred, title="", highlight=truth, height=200),
                        width="stretch",
                        key=f"g-{entry.name}-{title}",
                    )


if __name__ == "__main__":
    render()
