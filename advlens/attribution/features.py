"""Feature maps of clean and adversarial images: channel grids and divergence across depth.

Xie et al. (arXiv 1812.03411) observe that a perturbation invisible in pixels becomes strong noise
in the feature maps and grows as it passes through the network. Two views show it:

* **Channel grid**: the top-N channels of a layer, ranked by activation energy
  E_k = mean_ij |f_k(x)_ij| (the mean of the clean and adversarial energies) or by change
  mean_ij |f_k(x_adv)_ij - f_k(x)_ij|, shown for the clean image, the adversarial image and
  |difference|, each channel's clean and adversarial tiles on one shared scale. A channel is
  *emphasised* by the attack when r_k = (E_k(x_adv) - E_k(x)) / E_k(x) > tol, *suppressed* when
  r_k < -tol, and *shared* otherwise.
* **Divergence across depth**: D_l = ||f_l(x_adv) - f_l(x)||_2 / ||f_l(x)||_2 for each stage l of
  ``model.feature_layers()`` (shallow to deep), from one forward pass with hooks on every stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from ..models.modes import model_device
from .display import COLORMAPS, joint_normalize
from .hooks import LayerError, inference_guard, record_outputs, resolve_layer

RANK_BY = ("activation", "change")
STATUS_COLORS = {  # RGB
    "emphasised": (230, 60, 50),
    "suppressed": (40, 110, 240),
    "shared": (150, 150, 150),
}


@torch.no_grad()
def layer_features(model: nn.Module, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Outputs (CPU tensors) of the named layers for the batch ``x``, from one eval-mode forward pass."""
    for name in layers:
        resolve_layer(model, name)
    from ..models.exported import in_program_batches

    def recorded(xs: torch.Tensor, _) -> dict[str, torch.Tensor]:
        with record_outputs(model, layers) as out:
            model(xs)
        return dict(out)

    device = model_device(model)
    with inference_guard(model, freeze_params=False):  # a fixed-batch program: one forward (and hook) per slice
        feats = in_program_batches(model, x.detach().to(device).float(), None, recorded)
    missing = [n for n in layers if n not in feats]
    if missing:
        raise LayerError(f"layer {missing[0]!r} was not used in the forward pass")
    for name, f in feats.items():
        if f.ndim != 4:
            raise LayerError(
                f"layer {name!r} outputs shape {tuple(f.shape)}, not a spatial feature map; pick a conv layer or block"
            )
    return {n: feats[n].float().cpu() for n in layers}


def clean_and_adv_features(
    model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, layers: list[str]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Features of ``x`` and ``x_adv`` (same shape) in one batched forward pass."""
    if x.shape != x_adv.shape:
        raise ValueError(f"clean and adversarial batches differ in shape: {tuple(x.shape)} vs {tuple(x_adv.shape)}")
    n = x.shape[0]
    feats = layer_features(model, torch.cat([x, x_adv]), layers)
    return {k: v[:n] for k, v in feats.items()}, {k: v[n:] for k, v in feats.items()}


@dataclass
class ChannelInfo:
    index: int
    score: float
    energy_clean: float
    energy_adv: float
    change: float  # mean |f_adv - f_clean|
    relative: float  # (E_adv - E_clean) / E_clean
    status: str


def channel_status(relative: float, tol: float = 0.25) -> str:
    if relative > tol:
        return "emphasised"
    if relative < -tol:
        return "suppressed"
    return "shared"


def rank_channels(
    f_clean: torch.Tensor, f_adv: torch.Tensor, n: int = 16, by: str = "activation", tol: float = 0.25
) -> list[ChannelInfo]:
    """The top-``n`` channels of one image's feature maps (C, H, W), ranked ``by`` activation or change."""
    if by not in RANK_BY:
        raise ValueError(f"rank by one of {', '.join(RANK_BY)}, not {by!r}")
    if n < 1:
        raise ValueError("the number of channels must be at least 1")
    if tol < 0:
        raise ValueError("the tolerance must be non-negative")
    a, b = _single(f_clean), _single(f_adv)
    e_clean = a.abs().mean(dim=(1, 2))
    e_adv = b.abs().mean(dim=(1, 2))
    change = (b - a).abs().mean(dim=(1, 2))
    rel = (e_adv - e_clean) / e_clean.clamp(min=1e-12)
    score = (e_clean + e_adv) / 2 if by == "activation" else change
    order = torch.argsort(score, descending=True)[: min(n, a.shape[0])]
    return [
        ChannelInfo(
            int(k),
            float(score[k]),
            float(e_clean[k]),
            float(e_adv[k]),
            float(change[k]),
            float(rel[k]),
            channel_status(float(rel[k]), tol),
        )
        for k in order
    ]


def _single(f: torch.Tensor) -> torch.Tensor:
    f = torch.as_tensor(f).detach().float().cpu()
    if f.ndim == 4:
        if f.shape[0] != 1:
            raise ValueError("pass one image's feature maps (C, H, W) or a batch of one")
        f = f[0]
    if f.ndim != 3:
        raise ValueError(f"feature maps must be C x H x W, got shape {tuple(f.shape)}")
    return f


@dataclass
class ChannelGrid:
    clean: np.ndarray  # RGB mosaic
    adversarial: np.ndarray
    difference: np.ndarray
    channels: list[ChannelInfo]
    cols: int


def _mosaic(
    tiles: list[np.ndarray], channels: list[ChannelInfo], cols: int, tile_px: int, border: int = 3, pad: int = 2
) -> np.ndarray:
    rows = (len(tiles) + cols - 1) // cols
    cell = tile_px + 2 * border + pad
    canvas = np.full((rows * cell + pad, cols * cell + pad, 3), 255, np.uint8)
    for i, (tile, ch) in enumerate(zip(tiles, channels)):
        r, c = divmod(i, cols)
        y0, x0 = pad + r * cell, pad + c * cell
        color = STATUS_COLORS[ch.status]
        canvas[y0 : y0 + tile_px + 2 * border, x0 : x0 + tile_px + 2 * border] = color
        canvas[y0 + border : y0 + border + tile_px, x0 + border : x0 + border + tile_px] = tile
        label = f"#{ch.index}"
        scale = max(0.3, tile_px / 160)
        at = (x0 + border + 2, y0 + border + int(12 * scale / 0.4))
        for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # a white label with a black outline
            cv2.putText(canvas, label, at, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return canvas


def channel_grid(
    f_clean: torch.Tensor,
    f_adv: torch.Tensor,
    channels: list[ChannelInfo],
    cols: int = 8,
    tile_px: int = 64,
    colormap: str = "viridis",
) -> ChannelGrid:
    """Mosaics of the chosen channels: clean, adversarial (one scale per channel for both) and |diff|.

    The |difference| tiles use the same per-channel scale as the clean/adversarial pair, so a bright
    difference tile means a change as large as the channel's own range. Borders: red emphasised,
    blue suppressed, grey shared.
    """
    if not channels:
        raise ValueError("no channels to show")
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}")
    a, b = _single(f_clean), _single(f_adv)
    idx = torch.tensor([c.index for c in channels])
    ca, cb = a[idx], b[idx]
    (na, nb), lo, hi = joint_normalize(ca, cb)
    span = (hi - lo).clamp(min=1e-12).view(-1, 1, 1)
    nd = ((cb - ca).abs() / span).clamp(0, 1)

    def tiles(maps: torch.Tensor) -> list[np.ndarray]:
        out = []
        for m in maps.numpy():
            u8 = (m * 255).round().astype(np.uint8)
            u8 = cv2.resize(u8, (tile_px, tile_px), interpolation=cv2.INTER_NEAREST)
            out.append(cv2.cvtColor(cv2.applyColorMap(u8, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB))
        return out

    cols = max(1, min(cols, len(channels)))
    return ChannelGrid(
        _mosaic(tiles(na), channels, cols, tile_px),
        _mosaic(tiles(nb), channels, cols, tile_px),
        _mosaic(tiles(nd), channels, cols, tile_px),
        channels,
        cols,
    )


@dataclass
class Divergence:
    layers: list[str]
    values: torch.Tensor  # (N, L): ||f_adv - f|| / ||f|| per sample and layer
    shapes: list[tuple[int, ...]]

    @property
    def mean(self) -> np.ndarray:
        return self.values.mean(0).numpy()

    def trend(self) -> dict:
        """How divergence changes with depth (on the mean over samples).

        ``spearman``: rank correlation of divergence with depth (1: strictly growing);
        ``ratio``: deepest / shallowest; ``grows``: spearman > 0.5 and ratio > 1.
        """
        m = self.mean
        if len(m) < 2:
            return {"spearman": float("nan"), "ratio": float("nan"), "grows": False}
        rho = float(spearmanr(np.arange(len(m)), m).statistic) if np.ptp(m) > 0 else 0.0
        ratio = float(m[-1] / m[0]) if m[0] > 0 else float("inf")
        return {
            "spearman": rho,
            "ratio": ratio,
            "grows": bool(rho > 0.5 and ratio > 1.0),
            "max_layer": self.layers[int(np.argmax(m))],
        }


def layer_divergence(
    model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, layers: list[str] | None = None
) -> Divergence:
    """D_l = ||f_l(x_adv) - f_l(x)||_2 / ||f_l(x)||_2 for each layer (default ``model.feature_layers()``)."""
    names = list(layers) if layers is not None else list(model.feature_layers())
    if not names:
        raise LayerError("no layers to compare")
    fc, fa = clean_and_adv_features(model, x, x_adv, names)
    vals = []
    for n in names:
        num = (fa[n] - fc[n]).flatten(1).norm(dim=1)
        den = fc[n].flatten(1).norm(dim=1).clamp(min=1e-12)
        vals.append(num / den)
    return Divergence(names, torch.stack(vals, dim=1), [tuple(fc[n].shape[1:]) for n in names])


def divergence_figure(div: Divergence, title: str = "Feature divergence across depth"):
    """A plotly line chart of D_l (mean over samples; one faint line per sample when N > 1)."""
    import plotly.graph_objects as go

    short = [n.removeprefix("net.") for n in div.layers]
    fig = go.Figure()
    if div.values.shape[0] > 1:
        for row in div.values.numpy():
            fig.add_trace(
                go.Scatter(
                    x=short,
                    y=row,
                    mode="lines",
                    line={"width": 1, "color": "rgba(120,120,120,0.3)"},
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
    fig.add_trace(
        go.Scatter(
            x=short,
            y=div.mean,
            mode="lines+markers",
            name="||f(x_adv) - f(x)|| / ||f(x)||",
            customdata=[str(s) for s in div.shapes],
            hovertemplate="%{x}<br>divergence %{y:.4f}<br>shape %{customdata}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="layer (shallow → deep)",
        yaxis_title="relative divergence",
        height=380,
        margin={"l": 40, "r": 20, "t": 50, "b": 80},
    )
    return fig
