"""Home: what advlens does, the device, the models and datasets, and a gallery of predictions."""

from __future__ import annotations

import streamlit as st

from advlens.data import DATASETS, to_uint8_hwc
from advlens.predict import top_k
from advlens.zoo import list_models
from dashboard.charts import topk_bars
from dashboard.widgets import _samples, checkpoint_loader, get_model, page_setup

INTRO = """
**advlens** is an interactive lab for adversarial attacks and defenses on image classifiers.
Pick a model and an image, attack it live, and see what changed: the prediction, the attention
map (Grad-CAM) and the feature maps, for the clean and the adversarial image side by side.

- **Attack Lab**: FGSM, PGD (L-inf, L2), MI-FGSM, Step-LL, DeepFool, C&W-L2, Square and APGD,
  targeted or untargeted, with a step-by-step trajectory.
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

Everything runs offline: the models and sample data ship with the installed packages.
"""


@st.cache_data(show_spinner="Computing predictions...", max_entries=8)
def gallery(model_name: str, k: int = 5) -> list[tuple[str, object, int, object]]:
    """(title, uint8 image, true label, TopK) for the offline samples of a model."""
    model = get_model(model_name)
    samples = _samples(model)
    import torch

    x = torch.cat([s[1] for s in samples])
    preds = top_k(model, x, k)
    return [(t, to_uint8_hwc(xi), label, p) for (t, xi, label), p in zip(samples, preds)]


def render() -> None:
    page_setup("advlens")
    st.markdown(INTRO)

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
    shown = [e for e in models if e.name in ("efficientnet_lite0", "digits_small_cnn")] or models[:2]
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
                    st.plotly_chart(
                        topk_bars(pred, title="", highlight=truth, height=200),
                        width="stretch",
                        key=f"g-{entry.name}-{title}",
                    )


if __name__ == "__main__":
    render()
