"""The seed paper's attention analysis over a dataset, split by attack success.

Wu et al. (ACM TOMM 2023, arXiv 1811.09831) report that successful attacks leave a deviated and
scattered attention map: the IoU between the clean and adversarial Grad-CAM maps was about 0.12
when the attack succeeded and about 0.19 when it failed. :func:`analyze_attention_shift` measures
the same thing on any model and data: for each image it computes the clean and adversarial maps
and the metrics of :mod:`.metrics`, marks the attack as a *success* when the adversarial
prediction differs from the label, and :func:`summarize` compares the two groups (means, medians
and a two-sided Mann-Whitney U test). Images the model already misclassifies are left out by
default (an attack cannot "succeed" on them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import mannwhitneyu
from torch import nn

from .metrics import MAP_METRICS, PAIR_METRICS
from .view import attention_view

METRIC_LABELS = {
    **PAIR_METRICS,
    **{
        f"{k}_{tag}": f"{v} ({'clean' if tag == 'clean' else 'adversarial'})"
        for k, v in MAP_METRICS.items()
        for tag in ("clean", "adv")
    },
    "components_delta": "components: adversarial - clean",
    "entropy_delta": "entropy: adversarial - clean",
    "faithfulness_clean": "faithfulness (clean)",
    "faithfulness_adv": "faithfulness (adversarial)",
}
DEFAULT_SUMMARY = (
    "iou",
    "pearson",
    "spearman",
    "com_shift",
    "components_clean",
    "components_adv",
    "components_delta",
    "entropy_clean",
    "entropy_adv",
    "entropy_delta",
    "area_adv",
)


@dataclass
class ShiftAnalysis:
    metrics: dict[str, np.ndarray]  # one value per analysed image
    success: np.ndarray  # bool, attack success per analysed image
    indices: np.ndarray  # positions of the analysed images in the input batch
    n_total: int
    n_clean_wrong: int
    settings: dict = field(default_factory=dict)

    @property
    def n_success(self) -> int:
        return int(self.success.sum())

    @property
    def n_failure(self) -> int:
        return int((~self.success).sum())


def analyze_attention_shift(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    x_adv: torch.Tensor,
    method: str = "gradcam",
    layer: str | None = None,
    target="true",
    k_percent: float = 20.0,
    threshold: float = 0.5,
    batch_size: int = 64,
    only_correct: bool = True,
    with_faithfulness: bool = False,
    erase: str | float = "zero",
    progress=None,
) -> ShiftAnalysis:
    """Per-image attention-shift metrics for (x, x_adv), with each attack's success.

    ``progress`` is an optional callable ``progress(done, total)``.
    """
    y = torch.as_tensor(y).long().reshape(-1)
    if not (len(x) == len(y) == len(x_adv)):
        raise ValueError(f"{len(x)} images, {len(y)} labels and {len(x_adv)} adversarial images")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    per: dict[str, list[torch.Tensor]] = {}
    clean_pred, adv_pred = [], []
    for start in range(0, len(x), batch_size):
        sl = slice(start, start + batch_size)
        v = attention_view(
            model,
            x[sl],
            x_adv[sl],
            y[sl],
            method=method,
            layer=layer,
            target=target,
            k_percent=k_percent,
            threshold=threshold,
            erase=erase,
            with_faithfulness=with_faithfulness,
        )
        for k, val in v.metrics.items():
            per.setdefault(k, []).append(val.float())
        clean_pred.append(v.clean_pred)
        adv_pred.append(v.adv_pred)
        if progress is not None:
            progress(min(start + batch_size, len(x)), len(x))
    metrics = {k: torch.cat(v).numpy() for k, v in per.items()}
    metrics["components_delta"] = metrics["components_adv"] - metrics["components_clean"]
    metrics["entropy_delta"] = metrics["entropy_adv"] - metrics["entropy_clean"]
    clean_ok = (torch.cat(clean_pred) == y).numpy()
    success = (torch.cat(adv_pred) != y).numpy()
    keep = clean_ok if only_correct else np.ones_like(clean_ok)
    idx = np.nonzero(keep)[0]
    return ShiftAnalysis(
        {k: v[idx] for k, v in metrics.items()},
        success[idx],
        idx,
        len(x),
        int((~clean_ok).sum()),
        {
            "method": method,
            "layer": layer or getattr(model, "default_cam_layer", lambda: None)(),
            "target": target,
            "k_percent": k_percent,
            "threshold": threshold,
            "only_correct": only_correct,
        },
    )


def _stats(v: np.ndarray) -> tuple[int, float, float]:
    v = v[~np.isnan(v)]
    if v.size == 0:
        return 0, float("nan"), float("nan")
    return int(v.size), float(v.mean()), float(np.median(v))


def summarize(a: ShiftAnalysis, metrics=DEFAULT_SUMMARY) -> list[dict]:
    """One row per metric: count, mean and median per group, and the Mann-Whitney U p-value."""
    rows = []
    for k in metrics:
        if k not in a.metrics:
            continue
        s = a.metrics[k][a.success]
        f = a.metrics[k][~a.success]
        ns, ms, mds = _stats(s)
        nf, mf, mdf = _stats(f)
        p = float("nan")
        if ns and nf:
            ss, ff = s[~np.isnan(s)], f[~np.isnan(f)]
            if np.ptp(np.concatenate([ss, ff])) > 0:
                p = float(mannwhitneyu(ss, ff, alternative="two-sided").pvalue)
        rows.append(
            {
                "metric": k,
                "label": METRIC_LABELS.get(k, k),
                "n_success": ns,
                "success_mean": ms,
                "success_median": mds,
                "n_failure": nf,
                "failure_mean": mf,
                "failure_median": mdf,
                "p_value": p,
            }
        )
    return rows


def verdict(a: ShiftAnalysis) -> dict:
    """Does the paper's observation hold here? Lower IoU and more scatter when the attack succeeds."""
    rows = {r["metric"]: r for r in summarize(a, ("iou", "components_adv", "entropy_adv", "components_delta"))}
    out = {}
    if "iou" in rows:
        r = rows["iou"]
        out["lower_iou_on_success"] = bool(r["success_mean"] < r["failure_mean"])
        out["iou_p_value"] = r["p_value"]
    if "components_adv" in rows:
        r = rows["components_adv"]
        out["more_components_on_success"] = bool(r["success_mean"] > r["failure_mean"])
        out["components_p_value"] = r["p_value"]
    if "entropy_adv" in rows:
        r = rows["entropy_adv"]
        out["higher_entropy_on_success"] = bool(r["success_mean"] > r["failure_mean"])
        out["entropy_p_value"] = r["p_value"]
    return out


def distribution_figure(
    a: ShiftAnalysis, metrics=("iou", "components_adv", "entropy_adv", "com_shift"), kind: str = "box"
):
    """Plotly box (or violin) plots of each metric, attack success vs failure side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if kind not in {"box", "violin"}:
        raise ValueError("kind must be 'box' or 'violin'")
    metrics = [m for m in metrics if m in a.metrics]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[METRIC_LABELS.get(m, m) for m in metrics])
    groups = (("success", a.success, "#d62728"), ("failure", ~a.success, "#1f77b4"))
    for col, m in enumerate(metrics, start=1):
        for name, mask, color in groups:
            vals = a.metrics[m][mask]
            label = f"attack {name} (n={int(mask.sum())})"
            common = {"y": vals, "name": label, "marker_color": color, "legendgroup": name, "showlegend": col == 1}
            trace = (
                go.Box(boxmean=True, **common)
                if kind == "box"
                else go.Violin(box_visible=True, meanline_visible=True, **common)
            )
            fig.add_trace(trace, row=1, col=col)
    fig.update_layout(
        height=420, title="Attention shift: successful vs failed attacks", margin={"l": 40, "r": 20, "t": 70, "b": 40}
    )
    fig.update_xaxes(showticklabels=False)
    return fig
