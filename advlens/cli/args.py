"""Argument types shared by every command, so each flag reads one way everywhere.

``--eps`` is an L-inf budget in every command: ``8/255`` or ``0.0314`` (:func:`advlens.budget.parse_linf`).
"""

from __future__ import annotations

import argparse

from ..budget import BudgetError, parse_linf


def linf_eps(text: str) -> float:
    """argparse ``type=`` for an L-inf budget written ``8/255`` or ``0.0314``. Its range is checked
    by whoever takes it (an attack's or a config's validation), with their message."""
    try:
        return parse_linf(text)
    except BudgetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def read_image(path_text: str, model, resize: bool):
    """The image file ``--image`` names, fitted to ``model`` (centre-crop, or ``--resize``): (1, C, H, W)."""
    from pathlib import Path

    from ..data import load_upload
    from . import UsageError

    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"no image at {path}")
    mode = "resize" if resize else "center_crop"
    return load_upload(path.read_bytes(), model.input_size, name=path.name, mode=mode, invert_if_light=True)
