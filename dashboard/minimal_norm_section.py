"""The minimal-norm robustness curve on the pages (issue 28): FMN on n images, robust accuracy at
every eps from the one run (:mod:`advlens.attacks.minimal_norm_curve`).

FMN (Pintor et al. 2021) finds each image's smallest adversarial perturbation in L0, L1, L2 or
L-inf; an image is robust at eps when that perturbation is larger than eps, so one run draws the
whole curve. One attack only finds *a* small perturbation, so the curve is an upper bound on robust
accuracy, and every chart says so. The Attack Lab shows it for the FMN attack chosen there
(:func:`lab_curve_section`); the Evaluate page has a section of its own (:func:`minimal_norm_section`)
that also marks the points of earlier suite evaluations of the model in the same norm. The images
are chosen by the one subset rule (:func:`advlens.data.subset.choose_images`). No tensor math here.
"""

from __future__ import annotations

import json
from functools import partial

import streamlit as st

from advlens.attacks.minimal_norm_curve import NORM_ATTACKS, curve_on_dataset
from advlens.budget import format_budget
from advlens.data.catalog import DATASETS
from advlens.zoo import list_models
from dashboard.charts import ADV_COLOR, CLEAN_COLOR, MARGIN, figure
from dashboard.image_picker import cached_dataset, compatible_datasets
from dashboard.model_picker import get_model
from dashboard.progress import memo_get, result_on_click, run_and_memo

UPPER = "upper bound from one attack (FMN)"
NORMS = tuple(NORM_ATTACKS)  # L0, L1, L2, Linf
NORM_OF = {attack: norm for norm, attack in NORM_ATTACKS.items()}
MAX_N = 1000
SKIPPED = ("folder", "imagenet_samples")  # no fixed class list / no labels of the model's classes


def shown_budget(eps: float, norm: str) -> str:
    """The budget as the pages show it (L0 counts values; the others use the budget display rule)."""
    return f"{eps:g} values" if norm == "L0" else format_budget(eps, norm)


def _axis(norm: str) -> tuple[float, str]:
    """(scale of the x axis, its title): L-inf in grey levels like every L-inf chart of the lab."""
    if norm == "Linf":
        return 255.0, "eps (L-inf, x/255)"
    if norm == "L0":
        return 1.0, "eps (L0: pixel values changed)"
    return 1.0, f"eps ({norm})"


def curve_figure(curve: dict, points: list[dict] = ()):
    """Robust accuracy (%) against eps with its 95% Clopper-Pearson band; ``points`` (suite
    evaluations: eps, robust_accuracy, low, high, label) as markers with their intervals."""
    scale, title = _axis(curve["norm"])
    rows = curve["curve"]
    xs = [r["eps"] * scale for r in rows]
    lo = [r["low"] * 100 for r in rows]
    hi = [r["high"] * 100 for r in rows]
    traces = [
        {
            "type": "scatter",
            "x": xs + xs[::-1],
            "y": hi + lo[::-1],
            "fill": "toself",
            "fillcolor": "rgba(31, 119, 180, 0.15)",
            "line": {"width": 0},
            "hoverinfo": "skip",
            "showlegend": False,
        },
        {
            "type": "scatter",
            "x": xs,
            "y": [r["robust_accuracy"] * 100 for r in rows],
            "mode": "lines",
            "name": f"{curve['attack']}, n = {curve['n']} ({UPPER})",
            "line": {"color": CLEAN_COLOR},
            "customdata": [[r["eps_shown"], r["low"] * 100, r["high"] * 100] for r in rows],
            "hovertemplate": "eps %{customdata[0]}<br>robust %{y:.1f}% "
            "[%{customdata[1]:.1f}, %{customdata[2]:.1f}]<extra></extra>",
        },
    ]
    for p in points:
        acc = p["robust_accuracy"] * 100
        traces.append(
            {
                "type": "scatter",
                "x": [p["eps"] * scale],
                "y": [acc],
                "mode": "markers",
                "name": p["label"],
                "marker": {"color": ADV_COLOR, "size": 10, "symbol": "diamond"},
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [p["high"] * 100 - acc],
                    "arrayminus": [acc - p["low"] * 100],
                },
                "customdata": [[p["eps_shown"]]],
                "hovertemplate": "eps %{customdata[0]}<br>robust %{y:.1f}%<extra>%{fullData.name}</extra>",
            }
        )
    layout = {
        "title": {"text": f"Robust accuracy against eps ({curve['norm']}): {UPPER}"},
        "height": 360,
        "margin": MARGIN,
        "xaxis": {"title": {"text": title}, "rangemode": "tozero"},
        "yaxis": {"title": {"text": "robust accuracy (%)"}, "range": [0, 105]},
        "legend": {"orientation": "h", "y": -0.25},
    }
    return figure(traces, layout)


def suite_points(reports: list[dict], model_name: str, norm: str) -> list[dict]:
    """The figures of earlier evaluations (their saved reports) of ``model_name`` in ``norm``."""
    out = []
    for rep in reports:
        for r in rep.get("results", []):
            if r.get("model") != model_name or r.get("norm") != norm:
                continue
            lo, hi = r["robust_interval_95"]
            label = f"{r['suite']} suite, n = {r['n']} ({rep.get('id', '?')})"
            out.append(
                {"eps": r["eps"], "eps_shown": r["eps_shown"], "robust_accuracy": r["robust_accuracy"]}
                | {"low": lo, "high": hi, "label": label}
            )
    return sorted(out, key=lambda p: (p["label"], p["eps"]))


def compute(model_name: str, ds_name: str, n: int, norm: str, params: dict, progress=None, should_stop=None) -> dict:
    """The engine call behind both sections, with plain results for the memo and the JSON."""
    model = get_model(model_name)
    ds = cached_dataset(ds_name, "test", None)
    curve, subset = curve_on_dataset(model, ds, n, norm, progress=progress, should_stop=should_stop, **params)
    return {"model": model_name, "dataset": ds_name, "images": subset.describe(), "curve": curve.to_dict()}


def show_curve(found: dict, key: str, points: list[dict] = ()) -> None:
    curve = found["curve"]
    norm = curve["norm"]
    st.plotly_chart(curve_figure(curve, points), key=key, width="stretch")
    broken = sum(v is not None for v in curve["norms"])
    c1, c2 = st.columns(2)
    median = curve["median"]
    c1.metric(
        "Median smallest perturbation found",
        "none (half or more never broken)" if median is None else shown_budget(median, norm),
        help="Half of the images stay correct at every budget below it, as far as FMN could tell.",
    )
    c2.metric("Images", f"{curve['n']}", f"{broken} broken by FMN", delta_color="off")
    images = found["images"]
    st.caption(
        f"**{UPPER[:1].upper()}{UPPER[1:]}**: robust accuracy at eps is the share of the {curve['n']} images "
        f"whose smallest perturbation found is larger than eps (misclassified images count 0, images FMN never "
        f"broke count at every eps); a stronger attack can only lower the curve. {found['model']} on "
        f"{found['dataset']}. {images[:1].upper()}{images[1:]}. Band: 95% Clopper-Pearson. {curve['protocol']}."
    )
    if curve.get("stopped"):
        st.warning(f"Stopped early: the curve covers the {curve['n']} images attacked before the stop.")
    st.download_button(
        "Download the curve (JSON)",
        json.dumps(found, indent=1),
        file_name=f"fmn_curve_{found['model']}_{norm}.json",
        mime="application/json",
        key=f"{key}_json",
    )


def _datasets_for(model) -> list[str]:
    """Datasets of the model's input size (the engine refuses one whose classes differ)."""
    return [d for d in compatible_datasets(model) if d not in SKIPPED]


def lab_curve_section(model_name: str, model, attack: str, params: dict) -> None:
    """The Attack Lab's curve mode: the FMN attack chosen above, with its settings, on n images."""
    norm = NORM_OF.get(attack)
    if norm is None:
        return
    st.subheader(f"Robustness curve: {attack} on n images")
    st.caption(
        "The same attack with the settings above on n images of a dataset (the subset rule picks them): each "
        "image's smallest perturbation gives robust accuracy at every eps from the one run."
    )
    datasets = _datasets_for(model)
    if not datasets:
        st.info(f"No dataset here has {model_name}'s input size and classes, so its images cannot be scored.")
        return
    c1, c2, c3 = st.columns([2, 1, 1])
    ds_name = c1.selectbox("Dataset", datasets, key="atk_curve_ds")
    n = int(c2.number_input("n (images)", 1, MAX_N, 32, key="atk_curve_n"))
    clicked = c3.button("Run on n images", key="atk_curve_run")
    key = ("fmn_curve", model_name, ds_name, n, attack, tuple(sorted(params.items())))
    work = partial(compute, model_name, ds_name, n, norm, dict(params))
    found = result_on_click(clicked, key, f"FMN-{norm} on {n} images", work, "Curve settings rejected")
    if found is not None:
        show_curve(found, "atk_curve_chart")


def _earlier_reports(model_name: str) -> list[dict]:
    """The saved reports of the finished evaluations that include ``model_name`` (what the page lists above)."""
    from advlens.evaluation.known import evaluations_of
    from advlens.paths import HomeError

    try:
        found = evaluations_of(model_name)
    except HomeError:  # the page has said so once (dashboard.run_store)
        return []
    return [{**report, "id": run_id} for run_id, report, _ in found]


def minimal_norm_section() -> None:
    """The Evaluate page's section: model, dataset, n, norm, steps -> the curve, and the points of
    earlier evaluations of that model in that norm."""
    st.caption(
        "FMN (Pintor et al. 2021) finds each image's smallest adversarial perturbation; robust accuracy at every "
        "eps follows from the one run. An upper bound from one attack: compare it with the suite's points (red), "
        "which run four attacks at each budget."
    )
    entries = [e for e in list_models() if e.input_size is not None and e.dataset not in SKIPPED]
    if not entries:
        st.info("No model to evaluate.")
        return
    names = [e.name for e in entries]
    datasets = [d for d in DATASETS if d not in SKIPPED]
    with st.form("mn_form"):
        cols = st.columns(5)
        model_name = cols[0].selectbox(
            "Model", names, index=names.index("digits_small_cnn") if "digits_small_cnn" in names else 0, key="mn_model"
        )
        own = next(e.dataset for e in entries if e.name == model_name)
        ds_name = cols[1].selectbox(
            "Dataset", datasets, index=datasets.index(own) if own in datasets else 0, key="mn_dataset"
        )
        n = int(cols[2].number_input("n (images)", 1, MAX_N, 32, key="mn_n"))
        norm = cols[3].selectbox("Norm", NORMS, index=NORMS.index("Linf"), key="mn_norm")
        steps = int(cols[4].number_input("FMN steps", 1, 1000, 100, key="mn_steps"))
        go = st.form_submit_button("Compute the curve")
    key = ("mn_curve", model_name, ds_name, n, norm, steps)
    if go:
        work = partial(compute, model_name, ds_name, n, norm, {"steps": steps})
        if not run_and_memo(key, f"FMN-{norm} on {n} images", work, "Curve settings rejected"):
            return
        st.session_state["mn_shown"] = key
    shown = st.session_state.get("mn_shown")
    found = memo_get(shown) if shown is not None else None
    if found is None:
        return
    norm = found["curve"]["norm"]
    points = suite_points(_earlier_reports(found["model"]), found["model"], norm)
    show_curve(found, "mn_chart", points)
    if points:
        st.caption(
            "Red diamonds: earlier evaluations of this model in this norm ("
            + "; ".join(f"{p['label']} at {p['eps_shown']}: {p['robust_accuracy'] * 100:.1f}%" for p in points)
            + "). Their images may differ from the curve's; each states its own n."
        )
    else:
        st.caption(f"No finished {norm} evaluation of {found['model']} yet: run one above to see its points here.")
