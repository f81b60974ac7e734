"""Empty maps: which map is all zero, why, and which setting shows something instead.

A CAM is ReLU(z) of a weighted sum z of a layer's activations. When z <= 0 at every position, the
map is all zero and a page would draw it as a uniformly dark square that says nothing. On a
standard MNIST CNN this is common at a conv layer's raw output (before its ReLU): there the
activations are mostly negative, and 80% of ``mnist_small_cnn``'s clean Grad-CAMs at ``conv2`` were
empty (``bench/RESULTS.md``, issue 30). A pixel attribution is empty when the class score's gradient
with respect to the pixels is zero (a transform without a gradient in front of the model).

:func:`empty_maps` flags such maps (the largest value <= :data:`EMPTY_ATOL`, or, given the signed
map, below :data:`EMPTY_FRACTION` of its largest magnitude). :func:`explain_empty` says why in one
line and tries the alternatives on the same images: another layer, LayerCAM, Grad-CAM++, or the
signed map before Grad-CAM's ReLU. It offers only fixes whose maps are non-empty there.
:func:`check_maps` does both for a page: ``None`` when every map shows something.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .cam import gradcam
from .hooks import LayerError
from .maps import compute_map, get_method

EMPTY_ATOL = 1e-12  # a map whose largest value is at most this is empty
EMPTY_FRACTION = 1e-3  # ... or whose positive part is below this fraction of its signed map's magnitude
MAX_FIXES = 3


@dataclass(frozen=True)
class Fix:
    """A setting that shows a non-empty map on the same images: ``method`` at ``layer``
    (``signed``: Grad-CAM before its ReLU)."""

    label: str
    method: str
    layer: str | None = None
    signed: bool = False


@dataclass(frozen=True)
class EmptyMap:
    """An empty map: which one (``"clean"``, ``"adversarial"`` or both), of which method and layer, why,
    and the fixes that were checked to show something on the same images."""

    which: str
    method: str
    layer: str | None
    reason: str
    fixes: tuple[Fix, ...]

    @property
    def what(self) -> str:
        """``the clean Grad-CAM at net.conv2``."""
        label = get_method(self.method).label
        at = f" at {self.layer}" if self.layer else ""
        several = " and " in self.which
        return f"the {self.which} {label}{'s' if several else ''}{at} {'are' if several else 'is'} empty"

    def message(self) -> str:
        """One line: what is empty and why."""
        what = self.what
        return f"{what[0].upper()}{what[1:]}: {self.reason}."


def _peaks(maps: torch.Tensor) -> torch.Tensor:
    m = torch.as_tensor(maps).detach().float()
    m = m.reshape(m.shape[0], -1) if m.ndim > 2 else m.reshape(1, -1)
    return torch.nan_to_num(m, nan=0.0).max(dim=1).values


def empty_maps(maps, signed=None) -> torch.Tensor:
    """Bool (N,): maps (N, H, W) with nothing to show (largest value <= ``EMPTY_ATOL``; given the signed
    maps before the ReLU, also a largest value below ``EMPTY_FRACTION`` of their largest magnitude)."""
    peaks = _peaks(maps)
    empty = peaks <= EMPTY_ATOL
    if signed is not None:
        scale = _peaks(torch.as_tensor(signed).detach().float().abs())
        empty |= peaks <= EMPTY_FRACTION * scale
    return empty


def _reason(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str, layer: str | None) -> str:
    m = get_method(method)
    if not m.uses_layer:
        return "the class score's gradient with respect to the pixels is zero everywhere"
    signed = gradcam(model, x, target, layer, relu=False, upsample_mode=None)
    if float(signed.abs().max()) <= EMPTY_ATOL:
        return f"the class score's gradient at {layer} is zero (nothing at that layer reaches the score for this image)"
    if method == "gradcam":
        return "every channel-weighted sum is negative before Grad-CAM's ReLU"
    if method == "gradcam++":
        return "every weighted sum of the activations is negative before Grad-CAM++'s ReLU"
    return f"no position has both a positive gradient and a positive activation before {m.label}'s ReLU"


def _shows_something(model, x, target, method, layer, signed=False) -> bool:
    try:
        if signed:
            maps = gradcam(model, x, target, layer, relu=False, upsample_mode=None).abs()
        else:
            maps = compute_map(model, x, method, layer if get_method(method).uses_layer else None, target)
    except (LayerError, ValueError, RuntimeError):
        return False
    return not bool(empty_maps(maps).any())


def _candidate_layers(model: nn.Module, layer: str | None) -> list[str]:
    """The model's default CAM layer, then its feature layers from deep to shallow, without ``layer``."""
    names = []
    default = getattr(model, "default_cam_layer", None)
    if callable(default):
        names.append(default())
    features = getattr(model, "feature_layers", None)
    if callable(features):
        names += list(features())[::-1]
    seen, out = set(), []
    for n in names:
        if n != layer and n not in seen:
            seen.add(n)
            out.append(n)
    return out


def explain_empty(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    method: str = "gradcam",
    layer: str | None = None,
    which: str = "clean",
) -> EmptyMap:
    """Why the maps of ``x`` (all empty) are empty, and up to ``MAX_FIXES`` settings that show all of them."""
    m = get_method(method)
    layer = (layer or model.default_cam_layer()) if m.uses_layer else None
    target = torch.as_tensor(target).long().reshape(-1)
    reason = _reason(model, x, target, method, layer)
    tries: list[Fix] = []
    if m.uses_layer:
        tries += [Fix(f"{m.label} at {name}", method, name) for name in _candidate_layers(model, layer)]
        tries += [
            Fix(f"{get_method(o).label} at {layer}", o, layer)
            for o in ("layercam", "gradcam++", "gradcam")
            if o != method
        ]
        tries.append(Fix(f"Grad-CAM before its ReLU (signed) at {layer}", "gradcam", layer, signed=True))
    else:
        tries.append(Fix(f"Grad-CAM at {model.default_cam_layer()}", "gradcam", model.default_cam_layer()))
        tries.append(Fix(f"LayerCAM at {model.default_cam_layer()}", "layercam", model.default_cam_layer()))
    fixes: list[Fix] = []
    methods_offered: set[tuple[str, bool]] = set()
    for fix in tries:
        if len(fixes) >= MAX_FIXES:
            break
        if fix.method == method and not fix.signed and (fix.method, False) in methods_offered:
            continue  # one other layer is enough: the other buttons offer other methods
        if _shows_something(model, x, target, fix.method, fix.layer, fix.signed):
            fixes.append(fix)
            methods_offered.add((fix.method, fix.signed))
    return EmptyMap(which, method, layer, reason, tuple(fixes))


def check_maps(
    model: nn.Module,
    method: str,
    layer: str | None,
    maps: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    signed: bool = False,
) -> EmptyMap | None:
    """``maps``: name (``"clean"``, ``"adversarial"``) -> (image (1, C, H, W), target (1,), map (1, H, W)).
    ``None`` when every map shows something; otherwise the :class:`EmptyMap` of the empty ones.
    A signed map (``signed``) is empty only when it is zero everywhere."""
    empty = [name for name, (_, _, mp) in maps.items() if bool(empty_maps(mp.abs() if signed else mp).any())]
    if not empty:
        return None
    x = torch.cat([maps[n][0] for n in empty])
    t = torch.cat([torch.as_tensor(maps[n][1]).long().reshape(-1) for n in empty])
    return explain_empty(model, x, t, method, layer, " and ".join(empty))
