"""The Compare page's transfer matrix: craft on each chosen model, apply to every other (issue 28).

Calls :func:`advlens.attacks.transfer.transfer_matrix` on n images of a dataset the models take
(chosen by the one subset rule) and shows the success rates source -> target as a heatmap, with
the protocol and n. The page does no tensor math.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from advlens.attacks import AttackConfigError
from advlens.attacks.transfer import transfer_matrix
from advlens.budget import BudgetError, format_linf, parse_linf
from advlens.data import DataError, to_float
from advlens.data.catalog import DATASETS
from advlens.data.subset import choose_images
from dashboard.image_picker import cached_dataset
from dashboard.model_picker import get_model

TRANSFER_ATTACKS = ("mifgsm", "difgsm", "tifgsm", "fgsm", "pgd")
MAX_MODELS = 5
MAX_IMAGES = 200


def heatmap(names: list[str], rate: list[list[float]], title: str) -> go.Figure:
    text = [[f"{v * 100:.0f}%" for v in row] for row in rate]
    fig = go.Figure(
        go.Heatmap(
            z=[[v * 100 for v in row] for row in rate],
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            colorscale="Reds",
            zmin=0,
            zmax=100,
            colorbar={"title": "success %"},
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="target (attacked with the source's images)",
        yaxis_title="source (surrogate the attack ran on)",
        yaxis={"autorange": "reversed"},
        height=140 + 60 * len(names),
        margin={"t": 50, "b": 40},
    )
    return fig


def transfer_section(name_a: str, model_a, candidates: list[str]) -> None:
    """An expander: pick models of ``model_a``'s kind, an attack and n images; show the matrix."""
    datasets = [d for d in DATASETS.values() if d.input_size == tuple(model_a.input_size)]
    if not datasets:
        return
    with st.expander("Transfer matrix: craft on one model, apply to the others (black-box transfer)"):
        st.caption(
            "Each row's model is the surrogate: the attack uses its gradients only; each column's model only "
            "sees the resulting images. A cell is the share of the images the target classifies correctly "
            "that it misclassifies after the attack; the diagonal is the white-box success. DI-FGSM (input "
            "diversity, Xie et al. 2019) and TI-FGSM (translation invariance, Dong et al. 2019) are made to "
            "transfer better than MI-FGSM."
        )
        with st.form("tm_form"):
            names = st.multiselect(
                "Models",
                [name_a] + [c for c in candidates if c != name_a],
                default=[name_a],
                max_selections=MAX_MODELS,
                key="tm_models",
            )
            cols = st.columns(4)
            attack = cols[0].selectbox("Attack", TRANSFER_ATTACKS, index=1, key="tm_attack")
            eps_text = cols[1].text_input("eps (L-inf)", "8/255", key="tm_eps")
            n = int(cols[2].number_input("images", 1, MAX_IMAGES, 50, key="tm_n"))
            ds_name = cols[3].selectbox("Dataset", [d.name for d in datasets], key="tm_dataset")
            go_ = st.form_submit_button("Compute the transfer matrix", key="tm_run")
        if go_:
            try:
                eps = parse_linf(eps_text)
                if len(names) < 2:
                    raise ValueError("choose at least two models")
                ds = cached_dataset(ds_name, "test", None)
                subset = choose_images(ds, n)
                x, y = ds.batch(subset.indices)
                models = {m: get_model(m) for m in names}
                bar = st.progress(0.0, text="crafting on the first model")
                tm = transfer_matrix(
                    models,
                    to_float(x),
                    y,
                    attack,
                    eps=eps,
                    progress=lambda d, t: bar.progress(d / t, text=f"crafted on {d} of {t} models"),
                )
                bar.empty()
            except (AttackConfigError, BudgetError, DataError, ValueError, KeyError) as exc:
                st.error(str(exc))
                return
            st.session_state["tm_result"] = (tm, subset.describe(), format_linf(eps))
        found = st.session_state.get("tm_result")
        if found is None:
            return
        tm, images, eps_shown = found
        st.plotly_chart(heatmap(tm.names, tm.rate, f"{tm.attack} at eps {eps_shown}: success rate"), key="tm_chart")
        cells = "; ".join(
            f"{tm.names[i]} -> {tm.names[j]}: {tm.rate[i][j] * 100:.0f}% "
            f"[{tm.interval(i, j)[0] * 100:.0f}, {tm.interval(i, j)[1] * 100:.0f}] of {tm.n[j]}"
            for i in range(len(tm.names))
            for j in range(len(tm.names))
        )
        st.caption(f"{tm.protocol()}. {images[:1].upper()}{images[1:]}. 95% intervals: {cells}.")
