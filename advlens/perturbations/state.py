"""Where a perturbation job keeps its loop state between runs: ``state.safetensors`` in the job's folder.

The tensors (the patch or the universal perturbation, Adam's moments, the CPU random generator) are
safetensors; the step, the history and a fingerprint of the job's spec go in the file's metadata. A
state whose fingerprint differs from the spec (the job was changed), or that cannot be read (a torn
write), is ignored: the job then starts again from the beginning, and says so in its log.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ..models.checkpoint import atomic_write_bytes

FILE = "state.safetensors"
MAX_BYTES = 256 * 2**20  # a patch or a perturbation of an ImageNet-size image is a few MB


def fingerprint(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_state(folder: Path, spec: dict, state: dict) -> None:
    tensors = {f"t.{k}": v.contiguous() for k, v in state["tensors"].items()}
    tensors["rng"] = state["rng"]
    meta = {"step": str(state["step"]), "history": json.dumps(state["history"]), "spec": fingerprint(spec)}
    atomic_write_bytes(Path(folder) / FILE, save(tensors, metadata=meta))


def read_state(folder: Path, spec: dict, log=print) -> dict | None:
    """The saved state of the job with ``spec``, or None (no state, another spec, unreadable)."""
    path = Path(folder) / FILE
    if not path.is_file() or path.is_symlink():
        return None
    if path.stat().st_size > MAX_BYTES:
        log(f"ignoring {path.name}: larger than {MAX_BYTES >> 20} MB; starting from the beginning")
        return None
    try:
        with open(path, "rb") as fh:  # the metadata first: a state of another spec is not loaded
            size = int.from_bytes(fh.read(8), "little")
            if size > 2**20:
                raise ValueError("header too large")
            header = json.loads(fh.read(size))
        meta = header.get("__metadata__", {})
        if meta.get("spec") != fingerprint(spec):
            log("the saved state belongs to another version of this job; starting from the beginning")
            return None
        raw = load_file(str(path))
        state = {
            "step": int(meta["step"]),
            "history": [float(v) for v in json.loads(meta["history"])],
            "tensors": {k[2:]: v for k, v in raw.items() if k.startswith("t.")},
            "rng": raw["rng"].to(torch.uint8),
        }
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        log(f"ignoring an unreadable {path.name} ({exc.__class__.__name__}); starting from the beginning")
        return None
    log(f"continuing from step {state['step']} (saved state)")
    return state


def clear_state(folder: Path) -> None:
    (Path(folder) / FILE).unlink(missing_ok=True)
