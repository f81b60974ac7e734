"""Plotly figures shared by the pages. Inputs are plain numbers from the engine."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from advlens.predict import TopK

CLEAN_COLOR = "#1f77b4"
ADV_COLOR = "#d62728"
HIGHLIGHT_COLOR = "#ff9f1c"  # one class marked on a chart (the true class, or the attack's aim)


def topk_bars(
    topk: TopK,
    title: str = "Top-5",
    highlight: str | None = None,
    color: str = CLEAN_COLOR,
    height: int = 240,
    highlight_means: str = "the true class",
) -> go.Figure:
    """Horizontal bars of the top-k probabilities, best at the top. The ``highlight`` class is drawn
    in orange, and the title says what it is (``highlight_means``)."""
    names = list(reversed(topk.names))
    probs = [p * 100 for p in reversed(topk.probs)]
    colors = [HIGHLIGHT_COLOR if (highlight is not None and n == highlight) else color for n in names]
    if highlight is not None and highlight in names:
        title = f"{title} · orange: {highlight_means}" if title else f"orange: {highlight_means}"
    fig = go.Figure(
        go.Bar(
            x=probs,
            y=names,
            orientation="h",
            marker_color=colors,
            text=[f"{p:.1f}%" for p in probs],
            textposition="auto",
            hovertemplate="%{y}: %{x:.2f}%<extra></extra>",
        )
    )
    # Class names such as "0".."9" must stay labels: a numeric axis would place the bars by value.
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(range=[0, 100], title="probability (%)"),
        yaxis=dict(type="category", categoryorder="array", categoryarray=names),
    )
    return fig


def line_chart(
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    title: str,
    xlabel: str,
    ylabel: str,
    marker_x: float | None = None,
    height: int = 280,
    log_y: bool = False,
) -> go.Figure:
    """Several named curves over a shared x axis, with an optional vertical marker."""
    fig = go.Figure()
    for name, ys in series.items():
        fig.add_trace(go.Scatter(x=list(x), y=list(ys), mode="lines+markers", name=name))
    if marker_x is not None:
        fig.add_vline(x=marker_x, line_dash="dot", line_color="grey")
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis_title=xlabel,
        yaxis_title=ylabel,
        legend=dict(orientation="h", y=-0.25),
    )
    if log_y:
        fig.update_yaxes(type="log")
    return fig
