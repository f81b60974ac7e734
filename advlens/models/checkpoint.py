"""Checkpoints: safetensors weights plus a JSON metadata file.

``foo.safetensors`` holds the tensors (and a copy of the metadata in its header, so a single
uploaded file is enough); ``foo.json`` holds the metadata: architecture, dataset, class names,
input size, normalisation, training recipe, metrics and creation time. Nothing is ever
unpickled: safetensors cannot execute code, and legacy ``.pt`` files are only read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

from ..safe_files import UnsafeFileError, read_small_file
from .base import Classifier, ModelSpec
from .errors import CheckpointError
from .schema import MAX_CHECKPOINT_BYTES, MAX_METADATA_BYTES, check_header, parse_metadata_text, read_header

FORMAT_VERSION = 1
META_KEY = "advlens"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_metadata(
    model: Classifier, recipe: dict | None = None, metrics: dict | None = None, extra: dict | None = None
) -> dict:
    meta = {
        "format": "advlens-checkpoint",
        "format_version": FORMAT_VERSION,
        **model.spec.to_dict(),
        "recipe": recipe or {},
        "metrics": metrics or {},
        "created_at": _now(),
    }
    if extra:
        meta.update(extra)
    return meta


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder: Path) -> list[str]:
    """Delete the temporary files :func:`atomic_write_bytes` leaves in ``folder`` when its process is
    killed mid-write (``.<name>.<random>.tmp``, torn, never renamed into place). Call it only where
    no other process writes into ``folder`` (a run's worker on resume). Returns the names removed."""
    removed = []
    for p in Path(folder).glob(".*.tmp"):
        try:
            if p.is_file() and not p.is_symlink():
                p.unlink()
                removed.append(p.name)
        except OSError:  # gone already, or not ours to delete: leave it
            continue
    return removed


def save_checkpoint(
    model: Classifier,
    path: str | os.PathLike,
    recipe: dict | None = None,
    metrics: dict | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra_meta: dict | None = None,
) -> Path:
    """Save ``model`` to ``path`` (.safetensors) and its metadata beside it (.json). Atomic."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    meta = build_metadata(model, recipe, metrics, extra_meta)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for k, v in (extra_tensors or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    blob = st_save_bytes(tensors, metadata={META_KEY: json.dumps(meta)})
    atomic_write_bytes(path, blob)
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=2).encode())
    return path


def _parse_meta(text: str, where: str) -> dict:
    return parse_metadata_text(text, where)


def read_checkpoint_bytes(
    blob: bytes, meta_text: str | bytes | None = None, name: str = "the file"
) -> tuple[dict[str, torch.Tensor], dict]:
    """Decode safetensors bytes (never pickle) after checking the metadata and the tensor header
    against the architecture (:mod:`advlens.models.schema`). Returns (tensors, metadata)."""
    if len(blob) < 8:
        raise CheckpointError(f"{name} is empty or truncated; it is not a safetensors checkpoint.")
    # A safetensors file is an 8-byte little-endian header length, then a JSON header ("{").
    # Anything else that starts like a pickle (0x80 + protocol) or a zip (torch.save) is refused.
    if blob[8:9] != b"{" and (blob[:1] == b"\x80" or blob[:2] == b"PK"):
        raise CheckpointError(
            f"{name} looks like a pickle/torch.save file. advlens never unpickles uploads; "
            "save the weights with safetensors (advlens.models.save_checkpoint)."
        )
    if blob[8:9] != b"{":
        raise CheckpointError(f"{name} is not a valid safetensors file (no JSON header).")
    header = read_header(blob, name)
    if meta_text is None:
        embedded = header.get("__metadata__")
        meta_text = embedded.get(META_KEY) if isinstance(embedded, dict) else None
        if not isinstance(meta_text, str):
            raise CheckpointError(f"{name} has no advlens metadata; provide its .json file too.")
    meta = _parse_meta(meta_text, f"the metadata of {name}")
    check_header(header, expected_tensors(meta, name), name)
    try:
        tensors = st_load_bytes(blob)
    except (SafetensorError, Exception) as exc:  # safetensors raises several types on junk
        raise CheckpointError(f"{name} is not a valid safetensors file ({exc}).") from None
    return tensors, meta


def _spec_of(meta: dict, name: str) -> ModelSpec:
    from .registry import get_architecture

    try:
        spec = ModelSpec.from_dict(meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"the metadata of {name} is malformed ({exc}).") from None
    try:
        get_architecture(spec.arch)
    except KeyError as exc:
        raise CheckpointError(str(exc.args[0])) from None
    return spec


def expected_tensors(meta: dict, name: str = "the checkpoint") -> dict[str, tuple[tuple[int, ...], bool]]:
    """``model.<key>`` -> (shape, floating) of the network the metadata describes, computed on the
    ``meta`` device: shapes without storage, so a hostile input size costs no memory."""
    from .registry import build_model

    spec = _spec_of(meta, name)
    try:
        with torch.device("meta"):
            probe = build_model(spec.arch, spec=spec, pretrained=False)
    except Exception as exc:
        raise CheckpointError(f"cannot build a {spec.arch!r} from the metadata of {name}: {exc}") from None
    return {f"model.{k}": (tuple(v.shape), v.is_floating_point()) for k, v in probe.state_dict().items()}


def model_from_tensors(tensors: dict[str, torch.Tensor], meta: dict, name: str = "the checkpoint") -> Classifier:
    from .registry import build_model

    spec = _spec_of(meta, name)
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{name}: tensor {k!r} contains NaN or infinite values.")
    try:
        model = build_model(spec.arch, spec=spec, pretrained=False)
    except Exception as exc:
        raise CheckpointError(f"cannot build a {spec.arch!r} from the metadata of {name}: {exc}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{name} does not fit a {spec.arch!r}: {len(missing)} missing tensor(s) "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}."
        )
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{name}: tensor {k!r} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}.")
    model.load_state_dict(state, strict=True)
    model.eval()
    model.checkpoint_meta = meta
    return model


def _read(path: Path, max_bytes: int) -> bytes:
    """A checkpoint file's bytes: a regular file within ``max_bytes`` (never a pipe or a device)."""
    try:
        return read_small_file(path, max_bytes)
    except UnsafeFileError as exc:
        raise CheckpointError(str(exc)) from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[Classifier, dict]:
    """Load a checkpoint from disk. Accepts the .safetensors path, the .json path or the stem."""
    path = Path(path)
    if path.suffix == ".pt2":  # a torch.export program (advlens.models.exported)
        from .exported import load_program

        return load_program(path, map_location)
    candidates = [path] if path.suffix == ".safetensors" else [path.with_suffix(".safetensors")]
    weights = next((p for p in candidates if p.is_file()), None)
    if weights is None:
        if path.suffix in {".pt", ".pth"} and path.is_file():
            return _load_legacy_torch(path, map_location)
        raise CheckpointError(f"no checkpoint at {path}: expected a .safetensors file (looked for {candidates[0]}).")
    meta_path = weights.with_suffix(".json")
    meta_text = _read(meta_path, MAX_METADATA_BYTES) if os.path.lexists(meta_path) else None
    tensors, meta = read_checkpoint_bytes(_read(weights, MAX_CHECKPOINT_BYTES), meta_text, name=weights.name)
    model = model_from_tensors(tensors, meta, name=weights.name).to(map_location)
    return model, meta


def load_checkpoint_upload(
    weights: bytes, meta_json: bytes | None = None, name: str = "upload"
) -> tuple[Classifier, dict]:
    """Load a checkpoint that arrived as bytes (a browser upload)."""
    tensors, meta = read_checkpoint_bytes(weights, meta_json, name=name)
    return model_from_tensors(tensors, meta, name=name), meta


def _load_legacy_torch(path: Path, map_location) -> tuple[Classifier, dict]:
    """A .pt/.pth state dict with a .json beside it, read with weights_only=True."""
    meta_path = path.with_suffix(".json")
    if not meta_path.is_file():
        raise CheckpointError(f"{path.name} is a torch file without metadata; put {meta_path.name} beside it.")
    meta = _parse_meta(_read(meta_path, MAX_METADATA_BYTES), meta_path.name)
    expected_tensors(meta, path.name)  # the metadata describes a buildable network
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path.name} could not be read safely (weights_only=True refused it: "
            f"{type(exc).__name__}). It may contain code; it was not executed."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path.name} is not a plain state dict of tensors.")
    tensors = {f"model.{k}": v for k, v in state.items()}
    return model_from_tensors(tensors, meta, name=path.name).to(map_location), meta
