"""Home: what advlens does, where to start (the first lesson and a striking attack), every page, the
models and datasets, and a gallery of predictions."""

from __future__ import annotations

import streamlit as st

from advlens.attacks import run_attack
from advlens.budget import format_linf, linf_text
from advlens.data import DATASETS, fit_image, to_uint8_hwc
from advlens.data.offline import sample_photo
from advlens.models import CheckpointError
from advlens.predict import top_k
from advlens.zoo import list_models
from dashboard.charts import topk_bars
from dashboard.lesson_catalog import LESSONS
from dashboard.links import page_link
from dashboard.widgets import _samples, checkpoint_loader, get_model, page_setup

INTRO = """
**advlens** is an interactive lab for adversarial attacks and defenses on image classifiers.
Pick a model and an image, attack it live, and see what changed: the prediction, the attention
map (Grad-CAM) and the feature maps, for the clean and the adversarial image side by side.
"""

PAGES = """
- **Lessons**: eight guided experiments, each a set of links that open the other pages ready to go.
- **Attack Lab**: FGSM, PGD (L-inf, L2), MI-FGSM, Step-LL, DeepFool, C&W-L2, Square, APGD and FAB,
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

# The striking default: a targeted attack to a class far from the truth, not a flip to the second guess.
SHOWCASE = {"model": "efficientnet_lite0", "photo": "chelsea", "label": 285, "target": 404, "eps": 4 / 255, "steps": 30}
GALLERY_MODELS = ("efficientnet_lite0", "mnist_small_cnn", "cifar10_resnet20", "digits_small_cnn")
GALLERY_SIZE = 8


@st.cache_data(show_spinner="Attacking the sample photo...", max_entries=2)
def showcase(model_name: str) -> dict:
    """The Home page's example: clean and adversarial image with their top-1 (computed once per process)."""
    import torch

    model = get_model(model_name)
    x = fit_image(sample_photo(SHOWCASE["photo"]), model.input_size).unsqueeze(0)
    torch.manual_seed(0)
    res = run_attack(
        model, x, SHOWCASE["label"], "pgd", target=SHOWCASE["target"], eps=SHOWCASE["eps"], steps=SHOWCASE["steps"]
    )
    names = model.class_names
    clean, adv = res.clean_probs[0], res.adv_probs[0]
    return {
        "clean": to_uint8_hwc(res.x[0]),
        "adv": to_uint8_hwc(res.x_adv[0]),
        "clean_top": (names[int(clean.argmax())], float(clean.max())),
        "adv_top": (names[int(adv.argmax())], float(adv.max())),
        "target": names[SHOWCASE["target"]],
        "success": bool(res.success[0]),
        "linf": float(res.linf[0]),
    }


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
        try:
            shown = showcase(SHOWCASE["model"])
        except (KeyError, CheckpointError, OSError, RuntimeError) as exc:
            st.info(f"The ImageNet example is not available here ({exc}).")
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
    samples = _samples(model)[:GALLERY_SIZE]
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
                "robustness (best-known evaluation)": e.evaluation or "not evaluated (see Evaluate)",
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
    with st.expander("Load your own checkpoint (safetensors + JSON metadata)"):
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
