"""Saved universal perturbations and patches: ``NAME.safetensors`` (one tensor) plus ``NAME.json``.

Yours live in ``$ADVLENS_HOME/perturbations/``; the shipped ones (computed by ``bench/universal_patch.py``)
in ``assets/perturbations/`` (read-only; a name of yours may not shadow them). The JSON holds the kind,
the model, the settings, the target, the training images and the fooling rate measured on held-out
images with its protocol, n and 95% interval. Reading one never unpickles anything: the files are read
only when they are regular files within a size limit, and the tensor's shape and range are checked
against the metadata.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

from ..paths import ASSETS_DIR, home, writing_home
from ..safe_files import UnsafeFileError, read_small_file
from ..safe_json import loads_limited

KINDS = ("universal", "patch")
TENSOR_KEY = {"universal": "delta", "patch": "patch"}
MAX_TENSOR_BYTES = 64 * 1024**2  # an ImageNet-sized perturbation in float32 is 0.6 MB
MAX_META_BYTES = 1024**2
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SHIPPED_DIR = ASSETS_DIR / "perturbations"


class PerturbationError(ValueError):
    """A bad name, a missing or damaged file; the message says what to do."""


def user_dir() -> Path:
    return home() / "perturbations"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or name.endswith((".json", ".safetensors")):
        raise PerturbationError(
            f"{str(name)[:70]!r} is not a usable name: 1 to 64 letters, digits, '_', '-' or '.', starting with a "
            "letter or digit"
        )
    return name


@dataclass
class SavedPerturbation:
    name: str
    kind: str  # "universal" or "patch"
    tensor: torch.Tensor  # universal: (C, H, W) delta; patch: (C, side, side) in [0, 1]
    meta: dict
    shipped: bool = False

    @property
    def model(self) -> str:
        return self.meta.get("model", "")

    @property
    def target(self) -> int | None:
        return self.meta.get("target")

    def summary(self) -> str:
        """One line: kind, model, budget, target and the held-out fooling rate."""
        m = self.meta
        if self.kind == "universal":
            from ..budget import format_linf

            budget = f"eps {format_linf(m['params']['eps'])}"
        else:
            side = self.tensor.shape[-1]
            budget = f"{side}x{side} patch ({m.get('area_covered', 0) * 100:.1f}% of the image)"
        goal = f"target {m.get('target_name')}" if m.get("target") is not None else "untargeted"
        held = m.get("heldout") or {}
        rate = ""
        if held:
            lo, hi = held["interval_95"]
            rate = f"; {held['rate'] * 100:.1f}% [{lo * 100:.1f}, {hi * 100:.1f}] of n = {held['n']} held-out images"
        return f"{self.name}: {self.kind} for {self.model}, {budget}, {goal}{rate}"


def _paths(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}.safetensors", folder / f"{name}.json"


def save(
    name: str, kind: str, tensor: torch.Tensor, meta: dict, replace: bool = False, folder: Path | None = None
) -> SavedPerturbation:
    """Write ``NAME.safetensors`` and ``NAME.json`` in ``$ADVLENS_HOME/perturbations`` (atomic); ``folder``
    another place (``SHIPPED_DIR``: the bench ships one)."""
    from ..models.checkpoint import atomic_write_bytes

    check_name(name)
    if kind not in KINDS:
        raise PerturbationError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    folder = folder or user_dir()
    if folder != SHIPPED_DIR and _paths(SHIPPED_DIR, name)[0].exists():
        raise PerturbationError(f"{name} is a shipped perturbation; choose another name")
    st_path, js_path = _paths(folder, name)
    if st_path.exists() and not replace:
        raise PerturbationError(f"a perturbation named {name} exists; choose another name or replace it")
    meta = {
        **meta,
        "name": name,
        "kind": kind,
        "shape": list(tensor.shape),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    blob = st_save_bytes({TENSOR_KEY[kind]: tensor.detach().float().cpu().contiguous()}, metadata={"kind": kind})
    with writing_home(f"saving the perturbation {name}"):
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(st_path, blob)
        atomic_write_bytes(js_path, json.dumps(meta, indent=1).encode())
    return SavedPerturbation(name, kind, tensor.detach().float().cpu(), meta)


def load(name: str) -> SavedPerturbation:
    """A saved perturbation by name (yours, then the shipped ones), checked."""
    check_name(name)
    for folder, shipped in ((SHIPPED_DIR, True), (user_dir(), False)):
        st_path, js_path = _paths(folder, name)
        if st_path.exists() or js_path.exists():
            return _read(name, st_path, js_path, shipped)
    raise PerturbationError(f"no saved perturbation {name!r}; `python -m advlens perturbations` lists them")


def _read(name: str, st_path: Path, js_path: Path, shipped: bool) -> SavedPerturbation:
    try:
        meta = loads_limited(read_small_file(js_path, MAX_META_BYTES), js_path.name, MAX_META_BYTES)
        blob = read_small_file(st_path, MAX_TENSOR_BYTES)
    except (UnsafeFileError, ValueError) as exc:
        raise PerturbationError(f"perturbation {name}: {exc}") from None
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if kind not in KINDS:
        raise PerturbationError(f"perturbation {name}: its JSON names no kind ({', '.join(KINDS)})")
    try:
        tensors = st_load_bytes(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise PerturbationError(f"perturbation {name}: not a readable safetensors file ({exc})") from None
    t = tensors.get(TENSOR_KEY[kind])
    if t is None or len(tensors) != 1 or t.ndim != 3 or list(t.shape) != list(meta.get("shape", [])):
        raise PerturbationError(f"perturbation {name}: the tensor does not match its metadata")
    t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise PerturbationError(f"perturbation {name}: the tensor holds non-finite values")
    lo, hi = (-1.0, 1.0) if kind == "universal" else (0.0, 1.0)
    if float(t.min()) < lo or float(t.max()) > hi:
        raise PerturbationError(f"perturbation {name}: values outside [{lo:g}, {hi:g}]")
    return SavedPerturbation(name, kind, t, meta, shipped)


def list_saved(model: str | None = None) -> list[SavedPerturbation]:
    """Every readable saved perturbation (shipped first), optionally only those made for ``model``."""
    out, seen = [], set()
    for folder, shipped in ((SHIPPED_DIR, True), (user_dir(), False)):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            name = path.stem
            if name in seen or not NAME_RE.match(name):
                continue
            try:
                item = _read(name, *_paths(folder, name), shipped)
            except PerturbationError:
                continue
            seen.add(name)
            if model is None or item.model == model:
                out.append(item)
    return out


def delete(name: str) -> None:
    check_name(name)
    st_path, js_path = _paths(user_dir(), name)
    if not st_path.exists() and not js_path.exists():
        raise PerturbationError(f"no perturbation {name!r} of yours (shipped ones cannot be deleted)")
    with writing_home(f"deleting the perturbation {name}"):
        st_path.unlink(missing_ok=True)
        js_path.unlink(missing_ok=True)
