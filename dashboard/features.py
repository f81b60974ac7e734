"""Features: what the perturbation does inside the network.

Thin page: the math lives in :mod:`advlens.attribution.features` (channel grids, divergence across
depth) and :mod:`defenses.denoise_view` (denoising operators on a layer's features). It works on
the Attack Lab's current example or on its own, like the Attention page.
"""

from __future__ import annotations

import streamlit as st

from advlens.attribution import LayerError
from advlens.attribution.display import COLORMAPS
from advlens.attribution.features import (
    STATUS_COLORS,
    channel_grid,
    clean_and_adv_features,
    divergence_figure,
    layer_divergence,
    rank_channels,
)
from advlens.predict import predict_proba
from dashboard.lens import layer_control, lens_source
from dashboard.session_memo import session_memo
from dashboard.url_state import synced
from dashboard.widgets import page_setup
from defenses.denoise import OPERATORS
from defenses.denoise_block import block_features, denoise_blocks
from defenses.denoise_view import denoise_view


def default_feature_layer(model) -> str:
    """The middle stage of ``model.feature_layers()``: deep enough to show the noise, still spatial."""
    names = list(model.feature_layers())
    return names[len(names) // 2] if names else model.default_cam_layer()


def legend() -> str:
    def swatch(status):
        r, g, b = STATUS_COLORS[status]
        return f"<span style='color:rgb({r},{g},{b});font-weight:bold'>■ {status}</span>"

    return (
        " &nbsp; ".join(swatch(s) for s in STATUS_COLORS)
        + " &nbsp; (border colour: the channel's mean |activation| after the attack vs before)"
    )


def channel_section(src, layer: str) -> None:
    st.subheader("Top channels")
    c1, c2, c3, c4 = st.columns(4)
    n = synced(c1.slider, "feat_n", 16, "Channels", min_value=1, max_value=64)
    by = synced(
        c2.selectbox,
        "feat_by",
        "activation",
        "Rank by",
        ["activation", "change"],
        format_func=lambda b: "activation (mean |f|)" if b == "activation" else "change (mean |Δf|)",
    )
    tol = synced(c3.number_input, "feat_tol", 0.25, "Tolerance for 'shared' (relative change)", step=0.05)
    cmap = synced(c4.selectbox, "feat_cmap", "viridis", "Colormap", list(COLORMAPS))
    fc, fa = session_memo(
        ("feats", *src.key, layer), lambda: clean_and_adv_features(src.model, src.x, src.x_adv, [layer])
    )
    fc, fa = fc[layer], fa[layer]
    chans = rank_channels(fc[0], fa[0], n=int(n), by=by, tol=float(tol))
    grid = channel_grid(fc[0], fa[0], chans, cols=8, tile_px=64, colormap=cmap)
    st.markdown(legend(), unsafe_allow_html=True)
    st.caption(
        f"{layer}: {fc.shape[1]} channels of {fc.shape[2]}x{fc.shape[3]}. Each channel's clean and "
        "adversarial tiles share one scale; the |difference| tile uses that same scale."
    )
    for title, img in (
        ("clean", grid.clean),
        ("adversarial", grid.adversarial),
        ("|adversarial − clean|", grid.difference),
    ):
        st.markdown(f"**{title}**")
        st.image(img, width="stretch")
    counts = {s: sum(c.status == s for c in chans) for s in STATUS_COLORS}
    st.caption(" · ".join(f"{v} {k}" for k, v in counts.items()) + f" among the top {len(chans)}")
    with st.expander("Channel table"):
        st.dataframe(
            [
                {
                    "channel": c.index,
                    "status": c.status,
                    "mean |f| clean": c.energy_clean,
                    "mean |f| adversarial": c.energy_adv,
                    "relative change": c.relative,
                    "mean |Δf|": c.change,
                }
                for c in chans
            ],
            hide_index=True,
            width="stretch",
        )


def divergence_section(src) -> None:
    st.subheader("Divergence across depth")
    model = src.model
    div = session_memo(("div", *src.key), lambda: layer_divergence(model, src.x, src.x_adv))
    st.plotly_chart(divergence_figure(div), width="stretch", key="feat_div")
    t = div.trend()
    first, last = float(div.mean[0]), float(div.mean[-1])
    if t["grows"]:
        st.success(
            f"The divergence grows with depth: {first:.3g} at {div.layers[0]} → {last:.3g} at "
            f"{div.layers[-1]} ({t['ratio']:.1f}x; Spearman rho with depth {t['spearman']:.2f}). "
            "A perturbation that is small in pixels becomes large inside the network."
        )
    else:
        st.warning(
            f"The divergence does not grow steadily with depth here: {first:.3g} at {div.layers[0]} → "
            f"{last:.3g} at {div.layers[-1]} (ratio {t['ratio']:.2f}, Spearman rho {t['spearman']:.2f}; "
            f"largest at {t['max_layer']})."
        )
    st.caption("relative divergence = ||f(x_adv) − f(x)|| / ||f(x)|| at each stage of the model's feature layers.")


def denoise_section(src, layer: str) -> None:
    st.subheader("Denoising")
    st.caption(
        "Xie et al. (2019) denoise feature maps inside the network. Here the bare operator D is applied "
        "to the chosen layer's features (no trained 1x1 conv, no residual), for clean and adversarial."
    )
    c1, c2, c3 = st.columns(3)
    ops = list(OPERATORS)
    op = synced(c1.selectbox, "feat_op", ops[0], "Operator", ops, format_func=lambda o: OPERATORS[o].label)
    params = {}
    if "kernel_size" in OPERATORS[op].defaults:
        params["kernel_size"] = int(
            synced(
                c2.number_input,
                "feat_kernel",
                int(OPERATORS[op].defaults["kernel_size"]),
                "Kernel size (odd)",
                min_value=1,
                max_value=15,
                step=2,
            )
        )
    if op == "bilateral":
        params["sigma_space"] = float(synced(c3.number_input, "feat_ss", 1.5, "sigma_space (px)", step=0.5))
    model = src.model
    try:
        view = session_memo(
            ("denoise", *src.key, layer, op, tuple(sorted(params.items()))),
            lambda: denoise_view(model, src.x, src.x_adv, layer, op, **params),
        )
    except (LayerError, ValueError) as exc:
        st.error(str(exc))
        return
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "noise-suppression ratio",
        f"{float(view.ratio[0]):.3f}",
        help="||D(f(x_adv)) − D(f(x))|| / ||f(x_adv) − f(x)||: below 1, D shrinks the adversarial noise.",
    )
    m2.metric(
        "net of signal shrinkage",
        f"{float(view.relative_ratio[0]):.3f}",
        help="the same ratio with each side divided by its clean feature norm: below 1, noise shrinks more "
        "than the features do. Read this one for operators that rescale the features (dot product).",
    )
    m3.metric(
        "relative divergence",
        f"{float(view.divergence_after[0]):.3f}",
        delta=f"{float(view.divergence_after[0] - view.divergence_before[0]):+.3f}",
        delta_color="inverse",
        help="||D(fa) − D(fc)|| / ||D(fc)|| after denoising (delta: vs before)",
    )
    chans = rank_channels(view.f_clean[0], view.f_adv[0], n=8, by="change")
    before = channel_grid(view.f_clean[0], view.f_adv[0], chans, cols=8, tile_px=56)
    after = channel_grid(view.d_clean[0], view.d_adv[0], chans, cols=8, tile_px=56)
    st.markdown("**adversarial features** (the 8 channels the attack changed most)")
    st.image(before.adversarial, caption="before: f(x_adv)", width="stretch")
    st.image(after.adversarial, caption="after: D(f(x_adv))", width="stretch")
    st.markdown("**|adversarial − clean|**")
    st.image(before.difference, caption="before: |f(x_adv) − f(x)|", width="stretch")
    st.image(after.difference, caption="after: |D(f(x_adv)) − D(f(x))|", width="stretch")
    if view.probs is not None:
        names = model.class_names

        def pred(p):
            i = int(p[0].argmax())
            return f"{names[i]} ({float(p[0, i]) * 100:.1f}%)"

        st.dataframe(
            [
                {
                    "input": "clean",
                    "prediction": pred(view.probs["clean"]),
                    "with the layer denoised": pred(view.probs["clean_denoised"]),
                },
                {
                    "input": "adversarial",
                    "prediction": pred(view.probs["adv"]),
                    "with the layer denoised": pred(view.probs["adv_denoised"]),
                },
            ],
            hide_index=True,
            width="stretch",
        )
        st.caption(
            "With the layer's output replaced by D(output) and the rest of the network unchanged. "
            "An untrained substitution: it shows what the bare operator does, not a trained defense."
        )


def denoise_network_section(src) -> None:
    """For a trained feature-denoising network: each block's features before and after it."""
    if not denoise_blocks(src.model):
        return
    st.subheader("Denoising blocks of this network")
    st.caption(
        "Each block computes y = x + BN(Conv1x1(D(x))) (Xie et al. 2019). Ratio = "
        "||y(x_adv) − y(x)|| / ||x_adv − x|| at the block: below 1, the block suppresses the noise."
    )
    views = session_memo(("blocks", *src.key), lambda: block_features(src.model, src.x, src.x_adv))
    st.dataframe(
        [
            {
                "block": v.name,
                "operator": v.operator,
                "noise ratio (block)": float(v.ratio[0]),
                "noise ratio (scale-free)": float(v.relative_ratio[0]),
                "noise ratio (bare operator)": float(v.operator_ratio[0]),
                "||BN scale||": v.gamma_norm,
            }
            for v in views
        ],
        hide_index=True,
        width="stretch",
    )
    blocks = [v.name for v in views]
    pick = synced(st.selectbox, "feat_block", blocks[0], "Block", blocks)
    v = next(v for v in views if v.name == pick)
    n = synced(st.slider, "feat_block_n", 8, "Channels to show", min_value=1, max_value=32)
    for title, fc, fa in (
        ("before the block", v.before_clean, v.before_adv),
        ("after the block", v.after_clean, v.after_adv),
    ):
        chans = rank_channels(fc[0], fa[0], n=int(n), by="change")
        grid = channel_grid(fc[0], fa[0], chans, cols=8, tile_px=56)
        st.markdown(f"**{title}** — adversarial (top) and |adversarial − clean| (bottom), same scale per channel")
        st.image(grid.adversarial, width="stretch")
        st.image(grid.difference, width="stretch")


def render() -> None:
    page_setup("Features", "🧩")
    st.caption("A perturbation invisible in pixels can be strong noise in the feature maps (Xie et al. 2019).")
    src = lens_source("feat")
    if src is None:
        return
    probs = src.probs or (predict_proba(src.model, src.x), predict_proba(src.model, src.x_adv))
    pred_clean, pred_adv = int(probs[0][0].argmax()), int(probs[1][0].argmax())
    names = src.model.class_names
    st.markdown(f"**{src.title}** · {src.attack} · prediction **{names[pred_clean]}** → **{names[pred_adv]}**")
    layer = layer_control(src.model, "feat", default_feature_layer(src.model))
    try:
        channel_section(src, layer)
    except (LayerError, ValueError) as exc:
        st.error(str(exc))
    divergence_section(src)
    try:
        denoise_section(src, layer)
        denoise_network_section(src)
    except (LayerError, ValueError) as exc:
        st.error(str(exc))


if __name__ == "__main__":
    render()
