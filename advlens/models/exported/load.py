"""Loading a ``.pt2`` program: archive, graph, options, rebuild, shape check, in that order."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ...safe_files import UnsafeFileError, read_small_file
from ..base import ModelSpec
from ..errors import CheckpointError
from ..schema import MAX_CHECKPOINT_BYTES
from .archive import read_archive
from .classifier import ExportedClassifier
from .graph import check_program
from .options import options_from_json, program_metadata
from .rebuild import check_shapes, deserialize


def read_program(blob: bytes, options: dict | None = None, name: str = "the file") -> tuple[ExportedClassifier, dict]:
    """Validate and load a ``.pt2`` program: (model in eval mode, advlens metadata)."""
    archive = read_archive(blob, name)
    program, info = check_program(archive.program, name)
    meta = program_metadata(info, options, name)
    ep, module = deserialize(program, archive, name)
    check_shapes(ep, info, name)
    for m in module.modules():  # run the generated code rather than the (slow) fx interpreter
        if hasattr(m, "_run_with_interpreter"):
            m._run_with_interpreter = False
    spec = ModelSpec.from_dict({**meta, "arch_kwargs": {}})
    cam = meta["program"]["cam_layer"]
    cam = cam if not cam or cam.startswith("net.") else f"net.{cam}"
    model = ExportedClassifier(module, spec, info.batch, cam or None)
    if cam:
        try:
            model.get_submodule(cam)
        except AttributeError:
            layers = ", ".join(list(model.conv_layers())[-5:]) or "none found"
            raise CheckpointError(
                f"{name} has no layer {cam!r} for Grad-CAM (its conv layers end with: {layers})."
            ) from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.checkpoint_meta = meta
    return model, meta


def load_program(path, map_location: str | torch.device = "cpu") -> tuple[ExportedClassifier, dict]:
    """Load ``path`` (a ``.pt2``) with the options in the JSON beside it (advlens's stored metadata
    after an import, or the user's own file): regular files within the size caps only."""
    path = Path(path)
    side = path.with_suffix(".json")
    try:
        blob = read_small_file(path, MAX_CHECKPOINT_BYTES)
        options = options_from_json(read_small_file(side, 2_000_000), side.name) if os.path.lexists(side) else {}
    except UnsafeFileError as exc:
        raise CheckpointError(str(exc)) from None
    model, meta = read_program(blob, options, path.name)
    return model.to(map_location), meta
