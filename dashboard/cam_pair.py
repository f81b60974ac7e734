"""A clean/adversarial pair of class activation maps with its own small settings, for the pages that
show attention beside something else (Compare, the Attack Lab), and the one-click fix of an empty map
that every page showing a CAM shares (the Attention page too).

The maps, the empty-map check and its fixes come from :mod:`advlens.attribution`; this module only
lays them out. Settings live under ``<key>_method``, ``<key>_layer`` (``<key>_layer_text``) and
``<key>_signed``, in the URL like every setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from advlens.attribution import METHODS, LayerError, compute_map, layer_choices
from advlens.attribution.display import image_rgb, joint_normalize, overlay
from advlens.attribution.empty import check_maps
from dashboard.lens import layer_control
from dashboard.session_memo import heavy
from dashboard.url_state import synced
from dashboard.widgets import empty_map_notice

CAM_METHODS = [name for name, m in METHODS.items() if m.uses_layer]
CAM_MEMO_KEY = "advlens_cam_memo"  # its own store: a map never evicts the page's attack results
CAM_MEMO_SIZE = 8
SIGNED_LABEL = "Grad-CAM before its ReLU (signed map)"


def fix_applier(model, key: str):
    """The callback that puts a :class:`~advlens.attribution.empty.Fix` in the settings under ``key``."""
    choices = set(layer_choices(model)) | {model.default_cam_layer()}

    def apply(fix) -> None:
        st.session_state[f"{key}_method"] = fix.method
        if fix.layer is not None:
            if fix.layer in choices:
                st.session_state[f"{key}_layer"], st.session_state[f"{key}_layer_text"] = fix.layer, ""
            else:
                st.session_state[f"{key}_layer_text"] = fix.layer
        st.session_state[f"{key}_signed"] = bool(fix.signed)

    return apply


def signed_control(key: str, method: str, container=None) -> bool:
    """The "before the ReLU" switch, for Grad-CAM only (False for the other methods)."""
    if method != "gradcam":
        return False
    return bool(
        synced(
            (container or st).checkbox,
            f"{key}_signed",
            False,
            SIGNED_LABEL,
            help="Shows sum_k alpha_k A^k without the final ReLU: negative where the layer argues against the class.",
        )
    )


def _memo(key: tuple, compute):
    """This session's last :data:`CAM_MEMO_SIZE` map pairs, computed under the CPU policy."""
    store: dict = st.session_state.setdefault(CAM_MEMO_KEY, {})
    if key not in store:
        store[key] = heavy(compute)
        while len(store) > CAM_MEMO_SIZE:
            store.pop(next(iter(store)))
    return store[key]


@dataclass
class CamSettings:
    method: str
    layer: str
    signed: bool

    @property
    def label(self) -> str:
        return f"{METHODS[self.method].label}{' (signed)' if self.signed else ''} at {self.layer}"


def cam_settings(model, key: str) -> CamSettings:
    """Method, layer and the signed switch, in a collapsed expander."""
    with st.expander("Attention map settings", expanded=False):
        method = synced(
            st.selectbox, f"{key}_method", "gradcam", "Method", CAM_METHODS, format_func=lambda m: METHODS[m].label
        )
        layer = layer_control(model, key, model.default_cam_layer())
        signed = signed_control(key, method)
    return CamSettings(method, layer, signed)


def cam_pair(
    model, x: torch.Tensor, x_adv: torch.Tensor, t_clean: int, t_adv: int, key: str, memo_key: tuple = ()
) -> tuple | None:
    """Clean and adversarial maps of ``model`` on one colour scale, with the settings above them and
    the empty-map notice below: (clean overlay, adversarial overlay, settings), or None (no CAM layer)."""
    s = cam_settings(model, key)
    targets = torch.tensor([t_clean, t_adv])
    options = {"relu": False} if s.signed else {}

    def compute():
        maps = compute_map(model, torch.cat([x, x_adv]), s.method, s.layer, targets, **options)
        empty = check_maps(
            model,
            s.method,
            s.layer,
            {"clean": (x, targets[:1], maps[:1]), "adversarial": (x_adv, targets[1:], maps[1:])},
            signed=s.signed,
        )
        return maps, empty

    try:
        maps, empty = _memo((key, *memo_key, s.method, s.layer, s.signed, t_clean, t_adv), compute)
    except (LayerError, ValueError, RuntimeError) as exc:  # e.g. an architecture without a CAM layer
        st.caption(f"No attention map: {exc}")
        return None
    (a, b), _, _ = joint_normalize(maps[:1], maps[1:])
    empty_map_notice(empty, key, fix_applier(model, key))
    return overlay(image_rgb(x), a[0]), overlay(image_rgb(x_adv), b[0]), s
