"""Plotly figures shared by the pages. Inputs are plain numbers from the engine."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from advlens.predict import TopK

CLEAN_COLOR = "#1f77b4"
ADV_COLOR = "#d62728"
HIGHLIGHT_COLOR = "#ff9f1c"  # one class marked on a chart (the true class, or the attack's aim)
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain trace and layout dicts, without plotly's per-property validation (which
    cost most of a page's rerun). The specs here are fixed and covered by a test that validates
    them; ``st.plotly_chart`` serialises the figure without validating it again."""
    return go.Figure(data=data, layout=layout, _validate=False)


LABEL_CHARS = 18  # an axis label longer than this is shortened: ImageNet names would squeeze the bars


def short_labels(names: list[str]) -> list[str]:
    """Names cut to :data:`LABEL_CHARS` characters with an ellipsis (kept whole where cutting would make
    two labels equal: the axis places bars by label)."""
    cut = [n if len(n) <= LABEL_CHARS else n[: LABEL_CHARS - 1].rstrip(" ,") + "…" for n in names]
    return cut if len(set(cut)) == len(set(names)) else list(names)


def topk_bars(
    topk: TopK,
    title: str = "Top-5",
    highlight: str | None = None,
    color: str = CLEAN_COLOR,
    height: int = 240,
    highlight_means: str = "the true class",
) -> go.Figure:
    """Horizontal bars of the top-k probabilities, best at the top. The ``highlight`` class is drawn
    in orange, and a smaller second title line says what it is (``highlight_means``), so that the
    title fits a half-width column; class names longer than :data:`LABEL_CHARS` are shortened on
    the axis (the hover shows them whole)."""
    full = list(reversed(topk.names))
    names = short_labels(full)
    highlight = names[full.index(highlight)] if highlight in full else highlight
    probs = [p * 100 for p in reversed(topk.probs)]
    colors = [HIGHLIGHT_COLOR if (highlight is not None and n == highlight) else color for n in names]
    if highlight is not None and highlight in names:
        note = f"<span style='font-size:12px'>orange: {highlight_means}</span>"
        title = f"{title}<br>{note}" if title else note
    bar = {
        "type": "bar",
        "x": probs,
        "y": names,
        "orientation": "h",
        "marker": {"color": colors},
        "text": [f"{p:.1f}%" for p in probs],
        "textposition": "auto",
        "customdata": full,
        "hovertemplate": "%{customdata}: %{x:.2f}%<extra></extra>",
    }
    # Class names such as "0".."9" must stay labels: a numeric axis would place the bars by value.
    layout = {
        "title": {"text": title},
        "height": height,
        "margin": {**MARGIN, "t": 56} if "<br>" in title else MARGIN,
        "xaxis": {"range": [0, 100], "title": {"text": "probability (%)"}},
        "yaxis": {"type": "category", "categoryorder": "array", "categoryarray": names},
    }
    return figure([bar], layout)


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
    xs = list(x)
    traces = [
        {"type": "scatter", "x": xs, "y": list(ys), "mode": "lines+markers", "name": n} for n, ys in series.items()
    ]
    layout = {
        "title": {"text": title},
        "height": height,
        "margin": MARGIN,
        "xaxis": {"title": {"text": xlabel}},
        "yaxis": {"title": {"text": ylabel}, **({"type": "log"} if log_y else {})},
        "legend": {"orientation": "h", "y": -0.25},
    }
    if marker_x is not None:  # a vertical line across the plot (what add_vline draws, without its cost)
        line = {"dash": "dot", "color": "grey"}
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": marker_x,
                "x1": marker_x,
                "y0": 0,
                "y1": 1,
                "line": line,
            }
        ]
    return figure(traces, layout)
