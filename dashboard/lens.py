"""Inputs shared by the Attention and Features pages: the Attack Lab's current example (or a
model and image picked on the page and attacked with PGD), a per-session memo of expensive results,
and the layer control."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import streamlit as st
import torch

from advlens.attacks import AttackConfigError, describe_attack, run_attack
from advlens.attribution import layer_choices
from advlens.models import CheckpointError
from advlens.zoo import suggested_linf_eps
from dashboard.image_picker import get_current_example, image_picker
from dashboard.model_picker import get_model, model_picker
from dashboard.params import budget_input
from dashboard.session_memo import session_memo
from dashboard.url_state import synced


@dataclass
class LensInput:
    """A clean/adversarial pair and where it came from."""

    model_name: str
    model: object
    x: torch.Tensor  # (1, C, H, W) in [0, 1], CPU
    x_adv: torch.Tensor
    label: int  # -1: unknown
    attack: str
    title: str
    probs: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def key(self) -> tuple:
        digest = hashlib.sha1(self.x.numpy().tobytes() + self.x_adv.numpy().tobytes()).hexdigest()
        return self.model_name, digest, self.label


def lens_source(key: str) -> LensInput | None:
    """The Attack Lab's current example, or a model + image picked here and attacked with PGD L-inf."""
    current = get_current_example()
    if current is not None:
        other = synced(
            st.toggle,
            f"{key}_other",
            False,
            "Use another image",
            help="Off: the Attack Lab's latest example. On: pick a model and image here.",
        )
        if not other:
            try:
                model = get_model(current.model_name)
            except (StopIteration, KeyError, CheckpointError, OSError, RuntimeError) as exc:
                st.error(f"The Attack Lab's model {current.model_name!r} is not available: {exc}")
                return None
            shown = describe_attack(current.attack, current.params or {})
            st.info(
                f"Attack Lab example: **{current.title}** on **{current.model_name}**, "
                f"attacked with **{current.attack}** ({shown})."
            )
            return LensInput(
                current.model_name,
                model,
                current.x.detach().cpu().float(),
                current.x_adv.detach().cpu().float(),
                int(current.label),
                current.attack,
                current.title,
            )
    name, model = model_picker()
    if model is None:
        return None
    example = image_picker(model)
    if example is None:
        return None
    cols = st.columns(2)
    eps = budget_input(f"{key}_eps", suggested_linf_eps(model), cols[0], "PGD budget eps (L-inf: 8/255 or 0.0314)")
    steps = synced(cols[1].number_input, f"{key}_steps", 10, "PGD steps", min_value=1, max_value=200, step=1)
    if eps is None:
        return None
    params = {"eps": eps, "steps": int(steps)}

    def attack():
        torch.manual_seed(0)
        return run_attack(model, example.x, example.label, "pgd", **params)

    try:
        with st.spinner("Attacking (PGD L-inf)..."):
            res = session_memo(
                (
                    "attack",
                    name,
                    hashlib.sha1(example.x.numpy().tobytes()).hexdigest(),
                    example.label,
                    tuple(sorted(params.items())),
                ),
                attack,
            )
    except AttackConfigError as exc:
        st.error(f"Attack settings rejected: {exc}")
        return None
    label = int(res.y[0])
    return LensInput(
        name,
        model,
        res.x,
        res.x_adv,
        label,
        f"PGD L-inf, {describe_attack('pgd', params)}",
        example.title,
        (res.clean_probs, res.adv_probs),
    )


def layer_control(model, key: str, default: str, label: str = "Layer") -> str:
    """A layer selectbox plus a free-text override (any named submodule); validated by the engine."""
    choices = layer_choices(model)
    if default not in choices:
        choices = [default] + choices
    cols = st.columns([2, 1])
    picked = synced(cols[0].selectbox, f"{key}_layer", default, label, choices)
    typed = synced(
        cols[1].text_input,
        f"{key}_layer_text",
        "",
        "or type a layer name",
        help="Any submodule name, e.g. net.body._blocks.3",
    ).strip()
    return typed or picked
