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


def queue_device(want: str | None) -> str:
    """The one device resolver of the job queues: 'cpu' or 'cuda:N' for a config's ``device`` text.

    'auto' (or empty) is the device this process would use; 'cuda' means 'cuda:0', so an evaluation on
    'cuda' and a training run on 'cuda:0' wait in the same queue. A CUDA device that this machine does
    not have raises ValueError with a one-line message (the caller turns it into its config error).
    """
    text = (want or "").strip().lower()
    if text in ("", "auto"):
        dev = get_device()
        return "cpu" if dev.type == "cpu" else f"cuda:{dev.index or 0}"
    if text == "cpu":
        return "cpu"
    if not text.startswith("cuda"):
        raise ValueError(f"unknown device {want!r}: use auto, cpu, cuda or cuda:N")
    index_text = text.split(":", 1)[1] if ":" in text else "0"
    if not index_text.isdigit() or len(index_text) > 3:
        raise ValueError(f"unknown device {want!r}: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"device {want!r} was asked for, but CUDA is not available here.")
    index = int(index_text)
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {want!r} was asked for, but this machine has {torch.cuda.device_count()} GPU(s).")
    return f"cuda:{index}"
