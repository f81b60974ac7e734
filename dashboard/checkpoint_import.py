"""The checkpoint import box: a ``.safetensors`` or ``.pt2`` upload, or a path on the server, into the
user's models. Nothing is executed: the engine checks the file (:func:`advlens.zoo.import_checkpoint`)."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from advlens.models import CheckpointError
from advlens.models.schema import MAX_CHECKPOINT_BYTES, MAX_METADATA_BYTES
from advlens.paths import HomeError
from advlens.safe_files import UnsafeFileError, read_small_file
from advlens.zoo import import_checkpoint


def checkpoint_loader() -> None:
    """Import a checkpoint from an upload or a path into the user's models. Nothing is executed."""
    tab_up, tab_path = st.tabs(["Upload", "Path"])
    replace = st.checkbox(
        "Replace an imported model of the same name",
        key="ckpt_replace",
        help="Off: a name the zoo has already is refused. On: an earlier import of that name is replaced for "
        "every session (shipped and pretrained models are never replaced).",
    )
    with tab_up:
        weights = st.file_uploader(
            "Weights (.safetensors) or a torch.export program (.pt2)", type=["safetensors", "pt2"], key="ckpt_weights"
        )
        meta = st.file_uploader(
            "Metadata (.json, optional if embedded; for a .pt2: class_names, mean, std, dataset, cam_layer)",
            type=["json"],
            key="ckpt_meta",
        )
        if weights is not None and meta is None and weights.name.lower().endswith(".pt2"):
            st.caption(
                "No metadata yet: a program imported alone gets classes numbered 0, 1, ..., no normalisation "
                "and no dataset. Add its JSON above first to name them."
            )
        if weights is not None and st.button("Import checkpoint", key="ckpt_import_upload"):
            _import(weights.getvalue(), meta.getvalue() if meta else None, weights.name, replace)
    with tab_path:
        path = st.text_input("Path to a .safetensors or .pt2 file (its .json beside it)", key="ckpt_path").strip()
        if path and st.button("Import from path", key="ckpt_import_path"):
            p = Path(path).expanduser()
            weights_path = p if p.suffix in (".safetensors", ".pt2") else p.with_suffix(".safetensors")
            meta_path = weights_path.with_suffix(".json")
            try:  # regular files within the size limits, never a pipe or a device
                blob = read_small_file(weights_path, MAX_CHECKPOINT_BYTES, str(weights_path))
                meta_blob = read_small_file(meta_path, MAX_METADATA_BYTES) if os.path.lexists(meta_path) else None
            except UnsafeFileError as exc:
                st.error(f"Not imported: {exc}")
                return
            _import(blob, meta_blob, weights_path.name, replace)


def _import(weights: bytes, meta: bytes | None, name: str, replace: bool = False) -> None:
    try:
        entry = import_checkpoint(weights, meta, name, replace=replace)
    except (CheckpointError, HomeError) as exc:
        st.error(f"Not imported: {exc}")
        return
    st.success(f"Imported **{entry.name}** ({entry.arch}, {entry.dataset}). It is now in every model picker.")
