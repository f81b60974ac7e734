"""The attention view of a clean/adversarial pair: both maps, one shared scale, metrics, predictions.

:func:`attention_view` is the engine behind the Attention page and the latency benchmark. For a
batch it costs one forward pass for the predictions, one attribution call on the clean and
adversarial images together (two for SmoothGrad, which must draw the same noise for both), and
one forward pass on the erased images for the faithfulness test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..models.modes import model_device
from ..predict import CleanAndAdversarial
from . import metrics as M
from .display import joint_normalize, signed_difference
from .empty import empty_maps
from .hooks import inference_guard, resolve_layer
from .maps import compute_map, get_method
from .targets import resolve_targets


@dataclass
class AttentionView(CleanAndAdversarial):
    method: str
    layer: str | None
    target: str | int
    clean_map: torch.Tensor  # (N, H, W), raw values
    adv_map: torch.Tensor
    clean_norm: torch.Tensor  # (N, H, W), on the shared scale [vmin, vmax] -> [0, 1]
    adv_norm: torch.Tensor
    diff: torch.Tensor  # adv_norm - clean_norm
    diff_limit: torch.Tensor  # (N,) max |diff|
    vmin: torch.Tensor
    vmax: torch.Tensor
    clean_probs: torch.Tensor  # (N, classes)
    adv_probs: torch.Tensor
    targets_clean: torch.Tensor
    targets_adv: torch.Tensor
    metrics: dict[str, torch.Tensor]
    settings: dict = field(default_factory=dict)
    empty: dict[str, torch.Tensor] = field(default_factory=dict)  # "clean"/"adversarial" -> bool (N,)

    def empty_names(self, i: int = 0) -> list[str]:
        """Which maps of sample ``i`` are empty (:func:`.empty.empty_maps`): ``[]``, ``["clean"]``, ..."""
        return [name for name, flags in self.empty.items() if bool(flags[i])]

    def empty_note(self, i: int = 0) -> str:
        """``""``, or why the pair metrics of sample ``i`` cannot be computed (``the clean map is empty``)."""
        names = self.empty_names(i)
        if not names:
            return ""
        return f"the {' and '.join(names)} map{'s are' if len(names) > 1 else ' is'} empty"

    def table(self, i: int = 0) -> list[dict]:
        """Rows (metric, clean, adversarial, clean vs adversarial, note) for sample ``i``, for display.

        A metric that an empty map makes meaningless is NaN, and its ``note`` names the empty map, short
        enough for a table cell (``clean map empty``, ``both maps empty``); ``note`` is "" otherwise."""
        rows = self._rows(i)
        empty = self.empty_names(i)
        pair_note = _short(empty)
        for r in rows:
            r["note"] = ""
            if r["clean"] is None:  # a pair metric: both maps are needed
                if empty:
                    r["clean vs adversarial"], r["note"] = float("nan"), pair_note
                continue
            # the entropy of no mass is NaN; an empty map's top-k% region is the whole image (faithfulness)
            blank = [name for name in empty if math.isnan(r[name]) or r["metric"].startswith("faithfulness")]
            if blank:
                for name in blank:
                    r[name] = float("nan")
                r["clean vs adversarial"] = float("nan")
                r["note"] = _short(blank)
        return rows

    def _rows(self, i: int) -> list[dict]:
        m = {k: float(v[i]) for k, v in self.metrics.items()}
        k = self.settings.get("k_percent", 20)
        rows = [
            {"metric": f"top-{k:g}% IoU", "clean": None, "adversarial": None, "clean vs adversarial": m["iou"]},
            {"metric": "Pearson r", "clean": None, "adversarial": None, "clean vs adversarial": m["pearson"]},
            {"metric": "Spearman rho", "clean": None, "adversarial": None, "clean vs adversarial": m["spearman"]},
            {
                "metric": "centre-of-mass shift (px)",
                "clean": None,
                "adversarial": None,
                "clean vs adversarial": m["com_shift"],
            },
            {
                "metric": "connected components",
                "clean": m["components_clean"],
                "adversarial": m["components_adv"],
                "clean vs adversarial": m["components_adv"] - m["components_clean"],
            },
            {
                "metric": "entropy (normalised)",
                "clean": m["entropy_clean"],
                "adversarial": m["entropy_adv"],
                "clean vs adversarial": m["entropy_adv"] - m["entropy_clean"],
            },
            {
                "metric": "attended area",
                "clean": m["area_clean"],
                "adversarial": m["area_adv"],
                "clean vs adversarial": m["area_adv"] - m["area_clean"],
            },
        ]
        if "faithfulness_clean" in m:
            rows.append(
                {
                    "metric": f"faithfulness (conf. drop, top-{k:g}% erased)",
                    "clean": m["faithfulness_clean"],
                    "adversarial": m["faithfulness_adv"],
                    "clean vs adversarial": m["faithfulness_adv"] - m["faithfulness_clean"],
                }
            )
        return rows


def _short(empty: list[str]) -> str:
    """``clean map empty``, ``adversarial map empty``, ``both maps empty`` or ""."""
    if not empty:
        return ""
    return "both maps empty" if len(empty) > 1 else f"{empty[0]} map empty"


def validate_settings(
    model: nn.Module, method: str, layer: str | None, k_percent: float, threshold: float, erase
) -> str | None:
    """Check every user setting before any work is done; returns the layer to use (None for pixel methods)."""
    m = get_method(method)
    M.check_percent(k_percent)
    M.check_fraction(threshold)
    M.erase_value(torch.zeros(1, 1, 1, 1), erase)
    if not m.uses_layer:
        return None
    name = layer or model.default_cam_layer()
    resolve_layer(model, name)
    return name


def attention_view(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor | int | None = None,
    method: str = "gradcam",
    layer: str | None = None,
    target: str | int | torch.Tensor = "true",
    k_percent: float = 20.0,
    threshold: float = 0.5,
    erase: str | float = "zero",
    with_faithfulness: bool = True,
    probs: tuple[torch.Tensor, torch.Tensor] | None = None,
    **method_options,
) -> AttentionView:
    """Maps of ``x`` and ``x_adv`` for ``target`` (see :mod:`.targets`), on one scale, with every metric.

    ``probs`` = (clean softmax, adversarial softmax), each (N, classes), may pass predictions that are
    already known (e.g. from an ``AttackResult``) to save a forward pass.
    """
    if x.shape != x_adv.shape:
        raise ValueError(f"clean and adversarial images differ in shape: {tuple(x.shape)} vs {tuple(x_adv.shape)}")
    layer = validate_settings(model, method, layer, k_percent, threshold, erase)
    n = x.shape[0]
    device = model_device(model)
    both = torch.cat([x, x_adv]).detach().to(device).float()
    if probs is None:
        with torch.no_grad(), inference_guard(model, freeze_params=False):
            probs = model(both).softmax(1)
    else:
        probs = torch.cat([torch.as_tensor(p).float() for p in probs]).to(device)
        if probs.shape[0] != 2 * n:
            raise ValueError(f"probs must hold {n} clean and {n} adversarial rows")
    clean_probs, adv_probs = probs[:n], probs[n:]
    labels = None if y is None else torch.as_tensor(y).long().reshape(-1)
    t_clean, t_adv = resolve_targets(
        target, clean_pred=clean_probs.argmax(1), adv_pred=adv_probs.argmax(1), y=labels, num_classes=probs.shape[1]
    )
    if method == "smoothgrad":
        clean_map = compute_map(model, x, method, layer, t_clean, **method_options)
        adv_map = compute_map(model, x_adv, method, layer, t_adv, **method_options)
    else:
        maps = compute_map(model, both, method, layer, torch.cat([t_clean, t_adv]), **method_options)
        clean_map, adv_map = maps[:n], maps[n:]
    (clean_norm, adv_norm), vmin, vmax = joint_normalize(clean_map, adv_map)
    diff, limit = signed_difference(clean_norm, adv_norm)
    metrics = M.shift_metrics(clean_map, adv_map, k_percent, threshold)
    signed = method_options.get("relu") is False  # Grad-CAM before its ReLU: empty only when zero everywhere
    empty = {
        "clean": empty_maps(clean_map.abs() if signed else clean_map),
        "adversarial": empty_maps(adv_map.abs() if signed else adv_map),
    }
    if with_faithfulness:
        faith = M.faithfulness(
            model, both, torch.cat([clean_map, adv_map]), torch.cat([t_clean, t_adv]), k_percent, erase, probs=probs
        )
        metrics["faithfulness_clean"], metrics["faithfulness_adv"] = faith[:n], faith[n:]
    return AttentionView(
        method,
        layer,
        target if isinstance(target, (str, int)) else "custom",
        clean_map,
        adv_map,
        clean_norm,
        adv_norm,
        diff,
        limit,
        vmin,
        vmax,
        clean_probs.cpu(),
        adv_probs.cpu(),
        t_clean,
        t_adv,
        metrics,
        {"k_percent": float(k_percent), "threshold": float(threshold), "erase": erase},
        empty,
    )
