"""An evaluation report as tables, a plotly figure, CSV and a self-contained HTML page.

The report is the dict :func:`advlens.evaluation.jobs.run_spec` returns (``results``: one record
per model and budget). The HTML embeds plotly.js inline (it opens offline, from a file) and writes
the whole protocol out: the suite's attacks with their steps, targets, restarts and queries, n, the
seed, the dataset and split, and the versions, so a reader can reproduce every figure.
"""

from __future__ import annotations

import csv
import html
import io

import plotly.graph_objects as go
import plotly.io as pio

from ..data.subset import short_rule
from .suites import get_suite

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def rows(report: dict) -> list[dict]:
    """One flat row per model and budget: the summary table and the CSV."""
    out = []
    for r in report["results"]:
        lo, hi = r["robust_interval_95"]
        out.append(
            {
                "model": r["model"],
                "norm": r["norm"],
                "eps": r["eps"],
                "eps_shown": r["eps_shown"],
                "suite": r["suite"],
                "n": r["n"],
                "images": short_rule(r.get("subset") or report.get("subset")),
                "clean_accuracy": round(r["clean_accuracy"], 6),
                "robust_accuracy": round(r["robust_accuracy"], 6),
                "ci95_low": round(lo, 6),
                "ci95_high": round(hi, 6),
                **{f"broken_by_{k}": v for k, v in r["broken_by_attack"].items()},
                "seconds": round(sum(r["seconds_by_attack"].values()), 2),
                "checklist_warnings": sum(c["verdict"] == "warn" for c in r.get("checklist", [])),
            }
        )
    return out


def cascade_rows(record: dict) -> list[dict]:
    """What each attack of one part added: images broken, and the robust accuracy after it."""
    n = max(record["n"], 1)
    left = sum(1 for im in record["images"] if im["clean_correct"])
    out = [{"stage": "clean", "broken": record["n"] - left, "accuracy after": left / n, "seconds": 0.0}]
    for a in record["attacks"]:
        broken = record["broken_by_attack"].get(a["name"], 0)
        left -= broken
        out.append(
            {
                "stage": a["name"],
                "broken": broken,
                "accuracy after": left / n,
                "seconds": record["seconds_by_attack"].get(a["name"], 0.0),
            }
        )
    return out


def to_csv(report: dict) -> str:
    table = rows(report)
    keys: list[str] = []
    for row in table:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(table)
    return buf.getvalue()


def curves_figure(reports: list[dict]) -> go.Figure:
    """Robust accuracy against eps, one line per (evaluation, model), with 95% interval bands."""
    fig = go.Figure()
    series: dict[tuple, list[dict]] = {}
    for rep_no, report in enumerate(reports):
        for r in report["results"]:
            tag = f" [{report.get('label', '')}]" if len(reports) > 1 and report.get("label") else ""
            series.setdefault((rep_no, r["model"] + tag, r["suite"], r["norm"]), []).append(r)
    for k, ((_, model, suite, _norm), recs) in enumerate(series.items()):
        recs = sorted(recs, key=lambda r: r["eps"])
        colour = _COLOURS[k % len(_COLOURS)]
        xs = [r["eps"] for r in recs]
        lo = [r["robust_interval_95"][0] * 100 for r in recs]
        hi = [r["robust_interval_95"][1] * 100 for r in recs]
        fig.add_trace(
            go.Scatter(
                x=xs + xs[::-1],
                y=hi + lo[::-1],
                fill="toself",
                fillcolor=colour,
                opacity=0.15,
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[r["robust_accuracy"] * 100 for r in recs],
                mode="lines+markers",
                name=f"{model} ({suite}, n = {recs[0]['n']})",
                line={"color": colour},
                customdata=[
                    [r["eps_shown"], r["robust_interval_95"][0] * 100, r["robust_interval_95"][1] * 100] for r in recs
                ],
                hovertemplate="eps %{customdata[0]}<br>robust %{y:.1f}% [%{customdata[1]:.1f}, %{customdata[2]:.1f}]<extra></extra>",
            )
        )
    norm = next((key[3] for key in series), "Linf")
    fig.update_layout(
        xaxis_title=f"{norm} budget eps",
        yaxis_title="robust accuracy (%)",
        yaxis_range=[0, 100],
        height=420,
        margin={"l": 50, "r": 20, "t": 30, "b": 50},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def images_line(report: dict) -> str:
    """Which images: the subset's rule and class counts (and its warning when classes are missing)."""
    subset = report.get("subset")
    if not subset:  # a report written before the subset rule
        return f"Images: the first {report['n']} of the {report['dataset']} {report['split']} split, in order."
    line = subset["description"][0].upper() + subset["description"][1:] + "."
    if subset["classes_covered"] < subset["classes_in_split"]:
        line += f" Warning: {subset['classes_covered']} of {subset['classes_in_split']} classes only."
    return line


def protocol_lines(report: dict) -> list[str]:
    suite = get_suite(report["suite"])
    spec = report.get("spec", {})
    lines = [
        f"Suite: {suite.title}. {suite.note}.",
        f"Cascade ({report['norm']}): {suite.describe(report['norm'])}; each attack runs on the images every "
        "earlier one failed to break; an image is robust only if it survives all (worst case per image).",
        images_line(report),
        f"Seed {spec.get('seed', 0)}; batch size {spec.get('batch_size', '?')}; intervals: 95% Clopper-Pearson.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report.get("versions", {}).items()) + ".",
    ]
    return lines


def _table(records: list[dict]) -> str:
    if not records:
        return ""
    keys = list(records[0])
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k)))}</td>" for k in keys) + "</tr>" for r in records)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def to_html(report: dict) -> str:
    """A self-contained HTML page: protocol, summary, curves, cascade and checklist per part."""
    figure = pio.to_html(curves_figure([report]), include_plotlyjs=True, full_html=False)
    parts = []
    for r in report["results"]:
        checks = [
            {"verdict": c["verdict"], "check": c["name"], "measured": c["measured"], "why": c["explanation"]}
            for c in r.get("checklist", [])
        ]
        parts.append(
            f"<h3>{html.escape(r['model'])} at eps {html.escape(r['eps_shown'])}</h3>"
            f"<p>{html.escape(r['protocol'])}</p>"
            f"<h4>Cascade</h4>{_table(cascade_rows(r))}"
            + (f"<h4>Gradient-masking checklist</h4>{_table(checks)}" if checks else "")
        )
    protocol = "".join(f"<li>{html.escape(line)}</li>" for line in protocol_lines(report))
    title = f"advlens evaluation: {', '.join(dict.fromkeys(r['model'] for r in report['results']))}"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
        "th{background:#f3f3f3}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Created {html.escape(report.get('created', ''))}.</p>"
        f"<h2>Protocol</h2><ul>{protocol}</ul>"
        f"<h2>Summary</h2>{_table(rows(report))}"
        f"<h2>Robustness curves</h2>{figure}"
        f"<h2>Per model and budget</h2>{''.join(parts)}"
        "</body></html>"
    )
