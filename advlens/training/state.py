"""Resumable training state on disk: model, optimiser and RNG, in safetensors and JSON, never pickle.

A training checkpoint at step S is three files in ``runs/<id>/checkpoints/``:

- ``step-S.safetensors`` (+ ``.json``): an ordinary advlens model checkpoint (it loads with
  :func:`advlens.models.load_checkpoint`), whose extra tensors are the RNG states
  (``extra.rng.cpu.r<rank>``, ``extra.rng.cuda.r<rank>``) and whose metadata holds the trainer state
  (epoch, step, best values, the objective's history);
- ``step-S.optim.safetensors``: the optimiser's tensors, keyed ``state.<param index>.<name>``, with
  the non-tensor parts (param groups, scalar state) as JSON in the safetensors header.

Then ``latest.json`` is rewritten to point at step S. Every file is written atomically
(temporary file, fsync, rename: :func:`advlens.models.checkpoint.atomic_write_bytes`), and the
pointer is written last, so a SIGKILL at any moment leaves ``latest.json`` naming a complete set
(or no ``latest.json`` at all). Older sets are pruned after the pointer moves.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

from ..models import CheckpointError, Classifier, load_checkpoint
from ..models.checkpoint import META_KEY, atomic_write_bytes, build_metadata

POINTER = "latest.json"
OPTIM_META = "advlens_optim"
KEEP = 2


def save_model_checkpoint(
    model: Classifier,
    path: Path,
    recipe: dict | None = None,
    metrics: dict | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra_meta: dict | None = None,
    weights_dtype: torch.dtype | None = None,
) -> Path:
    """:func:`advlens.models.save_checkpoint`, made safe from a false pickle alarm.

    ``weights_dtype`` (e.g. ``torch.float16``) stores the model's floating-point tensors in that type,
    half the size; the loader casts them back to the model's float32.

    ``read_checkpoint_bytes`` refuses files whose first byte is 0x80 (a pickle's first byte). In a
    safetensors file the first 8 bytes are the little-endian header length, a multiple of 8, so its
    low byte is 0x80 for about 1 file in 32 (and "PK", a zip's magic, is possible): such a file would be
    refused on load. This writes the same format and, when the header length would start with those
    bytes, pads the metadata with a ``_pad`` field until it does not.
    """
    path = Path(path).with_suffix(".safetensors")
    meta = build_metadata(model, recipe, metrics, extra_meta)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if weights_dtype is not None:
        tensors = {k: v.to(weights_dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    for k, v in (extra_tensors or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    blob = st_save_bytes(tensors, metadata={META_KEY: json.dumps(meta)})
    while blob[:1] == b"\x80" or blob[:2] == b"PK":
        meta["_pad"] = meta.get("_pad", "") + " " * 8
        blob = st_save_bytes(tensors, metadata={META_KEY: json.dumps(meta)})
    atomic_write_bytes(path, blob)
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=2).encode())
    return path


def optimizer_to_tensors(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors and a JSON-able remainder."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, slot in state_dict["state"].items():
        for name, value in slot.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Rebuild a state dict that ``optimizer.load_state_dict`` accepts."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, slot in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(slot)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_training_state(
    folder: Path,
    model: Classifier,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict,
    rng: dict[str, torch.Tensor],
    recipe: dict | None = None,
) -> Path:
    """Write the set for ``trainer_state['step']`` and move ``latest.json`` to it. Returns the model path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    step = int(trainer_state["step"])
    stem = f"step-{step:08d}"
    model_path = save_model_checkpoint(
        model,
        folder / f"{stem}.safetensors",
        recipe=recipe,
        metrics=trainer_state.get("metrics"),
        extra_tensors=rng,
        extra_meta={"trainer_state": trainer_state},
    )
    tensors, meta = optimizer_to_tensors(optimizer.state_dict())
    optim_path = folder / f"{stem}.optim.safetensors"
    atomic_write_bytes(optim_path, st_save_bytes(tensors, metadata={OPTIM_META: json.dumps(meta)}))
    pointer = {"step": step, "epoch": trainer_state.get("epoch"), "model": model_path.name, "optim": optim_path.name}
    atomic_write_bytes(folder / POINTER, json.dumps(pointer, indent=2).encode())
    _prune(folder, keep={model_path.name, optim_path.name, model_path.with_suffix(".json").name})
    return model_path


def _prune(folder: Path, keep: set[str]) -> None:
    """Delete all but the newest ``KEEP`` step sets (never the ones named in ``keep``)."""
    stems = sorted({p.name.split(".")[0] for p in folder.glob("step-*.safetensors")})
    for stem in stems[:-KEEP]:
        for p in folder.glob(f"{stem}.*"):
            if p.name not in keep:
                p.unlink(missing_ok=True)


def read_pointer(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / POINTER).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_training_state(
    folder: Path, map_location: str | torch.device = "cpu"
) -> tuple[Classifier, dict, dict, dict[str, torch.Tensor]] | None:
    """(model, trainer_state, optimizer state dict, rng tensors) of ``latest.json``, or None."""
    folder = Path(folder)
    pointer = read_pointer(folder)
    if pointer is None:
        return None
    model_path = folder / pointer["model"]
    optim_path = folder / pointer["optim"]
    model, meta = load_checkpoint(model_path, map_location=map_location)
    from safetensors.torch import load_file

    extras = {k[len("extra.") :]: v for k, v in load_file(str(model_path)).items() if k.startswith("extra.")}
    try:
        blob = optim_path.read_bytes()
        optim_tensors = st_load_bytes(blob)
        with safe_open(str(optim_path), framework="pt") as f:
            optim_meta = json.loads((f.metadata() or {})[OPTIM_META])
    except (OSError, KeyError, json.JSONDecodeError, Exception) as exc:
        raise CheckpointError(f"the optimiser state {optim_path.name} cannot be read ({exc}).") from None
    return model, meta["trainer_state"], optimizer_from_tensors(optim_tensors, optim_meta), extras
