"""Device selection: CUDA when available, the CPU otherwise, or the CPU when forced.

The CPU is forced by ``ADVLENS_DEVICE=cpu`` (or ``ADVLENS_FORCE_CPU=1``) in the environment,
or by the ``--cpu`` flag of the CLI and of ``streamlit run streamlit_app.py -- --cpu``.
"""

from __future__ import annotations

import os

import torch

_FORCED: str | None = None


def force_cpu(flag: bool = True) -> None:
    """Force (or stop forcing) the CPU for the rest of this process."""
    global _FORCED
    _FORCED = "cpu" if flag else None


def cpu_forced() -> bool:
    if _FORCED == "cpu":
        return True
    if os.environ.get("ADVLENS_FORCE_CPU", "").strip().lower() in {"1", "true", "yes"}:
        return True
    return os.environ.get("ADVLENS_DEVICE", "").strip().lower() == "cpu"


def get_device() -> torch.device:
    """The device every model and tensor of advlens lives on."""
    if cpu_forced() or not torch.cuda.is_available():
        return torch.device("cpu")
    wanted = os.environ.get("ADVLENS_DEVICE", "").strip().lower()
    if wanted.startswith("cuda"):
        return torch.device(wanted)
    return torch.device("cuda")


def describe_device(device: torch.device | None = None) -> str:
    """A one-line human description, e.g. 'cuda:0 (NVIDIA H100)' or 'cpu (2 threads, forced)'."""
    device = device or get_device()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    note = ", forced" if cpu_forced() and torch.cuda.is_available() else ""
    return f"cpu ({torch.get_num_threads()} threads{note})"
