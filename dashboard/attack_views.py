"""The Attack Lab's "one image, many views": every attack on the current image in one table, and
one attack swept over eps (the predicted class and its confidence against the budget).

Both run on a click, through :mod:`advlens.attacks.compare`, with a progress bar and Stop, and are
memoised per image and settings. Their settings live in the URL (``cmp_search``, ``sweep_to``,
``sweep_n``) like the rest of the page.
"""

from __future__ import annotations

from functools import partial

import plotly.graph_objects as go
import streamlit as st

from advlens.attacks import ATTACKS
from advlens.attacks.compare import COMPARED, compare_attacks, eps_sweep
from advlens.budget import format_linf
from dashboard.charts import ADV_COLOR, CLEAN_COLOR, line_chart
from dashboard.params import budget_input
from dashboard.progress import result_on_click
from dashboard.url_state import synced

MAX_POINTS = 33


def compare_section(model, example, eps: float, target, digest_: str) -> None:
    st.subheader("Every attack on this image")
    st.caption(
        f"The L-inf attacks at the budget above ({format_linf(eps)}), DeepFool and C&W without a budget. "
        "Slow attacks use their CPU presets, Square 1,000 queries. The smallest eps of each budgeted attack "
        "is found by bisection with that attack; for DeepFool and C&W it is the L-inf norm of the L2-minimal "
        "perturbation they found."
    )
    c1, c2 = st.columns([2, 1])
    search = synced(c1.checkbox, "cmp_search", True, "Also find each attack's smallest eps (about 6x slower)")
    key = ("compare", digest_, example.label, target, float(eps), bool(search), model.spec.arch)
    work = partial(compare_attacks, model, example.x, example.label, eps, target=target, search=search)
    rows = result_on_click(
        c2.button("Compare all attacks", key="cmp_run"), key, "Comparing attacks", work, "Comparison settings rejected"
    )
    if rows is None:
        return
    names = model.class_names
    table = [
        {
            "attack": r.title,
            "budget": format_linf(eps) if r.budgeted else "none (minimal L2)",
            "success": "yes" if r.success else "no",
            "prediction": f"{names[r.predicted]} ({r.confidence * 100:.1f}%)",
            "L-inf": format_linf(r.linf),
            "L2": round(r.l2, 4),
            "time (s)": round(r.seconds, 2),
            "smallest eps": "—" if r.min_eps is None else format_linf(r.min_eps),
        }
        for r in rows
    ]
    st.dataframe(table, hide_index=True, width="stretch")
    if len(rows) < len(COMPARED):
        st.warning("Stopped: the table shows the attacks that finished.")
    st.caption(
        "Smallest eps: '—' means the attack did not flip the image within 32/255 (or the search was off). "
        "A budget found by one attack is an upper bound on the true minimal budget: a stronger attack can "
        "only lower it."
    )


def sweep_section(model, example, name: str, params: dict, eps: float, target, digest_: str) -> None:
    cls = ATTACKS[name] if ATTACKS[name].norm == "Linf" else ATTACKS["pgd"]
    st.subheader("Sweep eps")
    st.caption(
        f"{cls.title} at evenly spaced budgets from 0: what the model predicts, and how sure it is, as eps grows."
        + ("" if cls.name == name else " (The chosen attack has no L-inf budget, so PGD with its defaults runs.)")
    )
    c1, c2, c3 = st.columns(3)
    to = budget_input("sweep_to", min(1.0, 2 * eps), c1, "up to (L-inf)")
    points = int(synced(c2.number_input, "sweep_n", 9, "points", min_value=2, max_value=MAX_POINTS, step=1))
    if to is None:
        return
    if not 0.0 < to <= 1.0:
        st.error(f"The sweep must end between 0 and 255/255, not {format_linf(to)}.")
        return
    budgets = tuple(to * i / (points - 1) for i in range(points))
    own = {k: v for k, v in params.items() if k != "eps"} if cls.name == name else {}
    key = ("sweep", digest_, example.label, target, cls.name, tuple(sorted(own.items())), budgets, model.spec.arch)
    work = partial(eps_sweep, model, example.x, example.label, cls.name, budgets, params=own, target=target)
    found = result_on_click(c3.button("Sweep", key="sweep_run"), key, "Sweeping eps", work, "Sweep settings rejected")
    if found is None:
        return
    st.plotly_chart(sweep_chart(found, model.class_names), width="stretch")
    flips = [p.eps for p in found if p.success]
    st.caption(
        f"The prediction first changes at {format_linf(flips[0])} on this grid."
        if flips
        else "No budget on this grid flips the image."
    )


def query_section(res, cls) -> None:
    """A decision-based attack (HopSkipJump): the distance it has reached against the label queries
    it has spent on this image, the measure of such attacks (Chen et al. 2020, Fig. 3)."""
    distance = getattr(cls, "distance", None)
    traj = res.trajectory
    if cls.uses_gradients or distance is None or traj is None:
        return
    no_start = getattr(traj, "no_start", None)
    if no_start is not None and bool(no_start[0]):
        draws = (res.params or {}).get("start_draws", "its")
        st.info(
            f"No starting point: none of the {draws} noise draws (uniform, then growing noise around the image) "
            f"was labelled {'the target class' if res.target is not None else 'another class'}, so the image is "
            "left as it was. A model that gives almost every input one label (an untrained network, for one) "
            "does this; raise start_draws or use a gradient attack."
        )
        return
    if len(traj) == 0:
        return
    series = traj.series(0)
    queries = series["step"]  # the queries image 0 had used at each recorded iteration
    linf = distance == "Linf"
    dist = [-v * (255 if linf else 1) for v in series["loss"]]  # the recorded loss is minus the distance
    st.plotly_chart(
        line_chart(
            queries,
            {f"{'L-inf (x255)' if linf else 'L2'} distance to the image": dist},
            "Distance against label queries",
            "label queries",
            "L-inf (x/255)" if linf else "L2",
        ),
        key="atk_queries",
    )
    total = int(traj.queries[0]) if getattr(traj, "queries", None) is not None else queries[-1]
    st.caption(
        f"The attack saw only the top-1 label: {total:,} queries in all for this image, each point after one "
        "iteration's binary search back onto the decision boundary. Fewer queries for the same distance is a "
        "stronger decision-based attack."
    )


def attention_section(res, model_name: str, key: tuple) -> None:
    """Where the model looks: Grad-CAM of the clean image (true class) and of the adversarial image
    (its prediction) on one colour scale; an empty map is named, with its one-click fix."""
    from advlens.attribution.display import enlarge
    from dashboard.cam_pair import cam_pair
    from dashboard.model_picker import get_model

    model = get_model(model_name)
    st.subheader("Attention")
    maps = cam_pair(model, res.x, res.x_adv, int(res.y[0]), int(res.adv_pred[0]), "atk_cam", memo_key=(repr(key),))
    if maps is None:
        return
    c1, c2, _ = st.columns(3)
    c1.image(enlarge(maps[0]), caption=f"{maps[2].label}, clean (true class)", width="stretch")
    c2.image(enlarge(maps[1]), caption=f"{maps[2].label}, adversarial (predicted class)", width="stretch")
    st.caption("Both maps on one colour scale. The Attention page has every method, the difference map and metrics.")


def sweep_chart(points, class_names) -> go.Figure:
    """Confidence of the predicted class and probability of the attacked class against eps; each point
    is labelled with the predicted class."""
    x = [p.eps * 255 for p in points]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[p.confidence * 100 for p in points],
            mode="lines+markers+text",
            text=[class_names[p.predicted] for p in points],
            textposition="top center",
            name="predicted class (its probability)",
            marker=dict(color=[ADV_COLOR if p.success else CLEAN_COLOR for p in points], size=9),
            line=dict(color="grey"),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[p.true_probability * 100 for p in points],
            mode="lines",
            name="probability of the true class",
            line=dict(color=CLEAN_COLOR, dash="dot"),
        )
    )
    fig.update_layout(
        height=320,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="eps (x/255)",
        yaxis=dict(title="probability (%)", range=[0, 105]),
        legend=dict(orientation="h", y=-0.25),
        title="red points: the attack succeeded",
    )
    return fig
