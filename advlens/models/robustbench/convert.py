"""Reading a published checkpoint safely and turning it into one of our models.

The file is opened with ``torch.load(..., weights_only=True, map_location="cpu")`` only: PyTorch's
restricted unpickler, which builds tensors and plain containers and refuses any other object, so a
file that would run code when unpickled is refused (one line) and never executed. Before that, a
web page (Google Drive's quota or sign-in page saved by hand) is recognised by its first bytes.

RobustBench's checkpoints come in several shapes, all accepted: a plain state dict;
``{'state_dict': ...}`` or ``{'model_state_dict': ...}`` or ``{'model': ...}`` (with other entries
such as the optimizer's, ignored); an entry's own key (``'last'`` for Andriushchenko et al.); keys
prefixed with ``module.`` (DataParallel) and/or ``model.`` (RobustBench's normalisation wrapper).
The normalisation buffers some files carry (``mu``/``sigma``, ``normalize.mean``/``normalize.std``)
must agree with the catalogue's, which becomes the classifier's own normalisation. The remaining
keys and shapes must be exactly those of our network for the entry (a mismatch is one line naming
the first differences), and every value finite.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from ..base import Classifier
from ..errors import CheckpointError
from ..registry import build_model
from .catalog import CatalogEntry

CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net")
PREFIXES = ("module.", "model.")
NORM_KEYS = {"mu": 0, "sigma": 1, "normalize.mean": 0, "normalize.std": 1, "mean": 0, "std": 1}


class RobustBenchError(CheckpointError):
    """A RobustBench model that cannot be fetched or installed; one line for a person."""


def _looks_like_web_page(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml"))


def load_weights_only(path: Path, shown: str) -> object:
    """``torch.load`` with ``weights_only=True`` on the CPU; any refusal is one line."""
    if _looks_like_web_page(path):
        raise RobustBenchError(
            f"{shown} is a web page, not a checkpoint (Google Drive sends one when its quota is exceeded or "
            "the file needs a sign-in); nothing was installed"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # UnpicklingError (code in the pickle), a truncated zip, junk: all refused
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        text = str(exc).lower()
        if "weights only" in text or "weights_only" in text or "unsupported global" in text:
            raise RobustBenchError(
                f"{shown} holds objects other than tensors (its pickle would run code); refused by "
                "torch.load(weights_only=True), nothing was executed or installed"
            ) from None
        raise RobustBenchError(
            f"{shown} is not a readable PyTorch checkpoint ({first}); nothing was installed"
        ) from None


def find_state_dict(obj, entry: CatalogEntry, shown: str) -> dict[str, torch.Tensor]:
    """The state dict inside what ``torch.load`` returned (see the module docstring)."""
    if entry.checkpoint_key and isinstance(obj, dict) and entry.checkpoint_key in obj:
        obj = obj[entry.checkpoint_key]
    for _ in range(3):
        if not isinstance(obj, dict):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    raise RobustBenchError(
        f"{shown} holds no state dict of tensors (looked at the top level and under "
        f"{', '.join(repr(k) for k in CONTAINER_KEYS)}); nothing was installed"
    )


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for p in PREFIXES:
                if key.startswith(p):
                    key, changed = key[len(p) :], True
        out[key] = value
    return out


def _check_norm(state: dict[str, torch.Tensor], entry: CatalogEntry, shown: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if key not in NORM_KEYS:
            out[key] = value
            continue
        want = torch.tensor(entry.norm[NORM_KEYS[key]], dtype=torch.float32)
        got = value.detach().float().flatten()
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-3):
            raise RobustBenchError(
                f"{shown}: its {key!r} is {[round(v, 4) for v in got.tolist()][:4]}, not the {want.tolist()} that "
                f"{entry.name} uses; it is not this model's checkpoint"
            )
    return out


def to_model(state: dict[str, torch.Tensor], entry: CatalogEntry, shown: str) -> Classifier:
    """Our classifier for ``entry`` with ``state`` loaded (keys and shapes checked first)."""
    state = _check_norm(strip_prefixes(state), entry, shown)
    model = build_model(
        entry.arch,
        arch_kwargs=entry.arch_kwargs,
        input_size=entry.input_size,
        mean=entry.norm[0],
        std=entry.norm[1],
        dataset=entry.dataset,
        **({"class_names": _imagenet_names()} if entry.dataset == "imagenet" else {}),
    )
    expected = model.net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise RobustBenchError(
            f"{shown} does not fit {entry.arch} {entry.arch_kwargs}: {len(missing)} missing key(s) {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}; nothing was installed"
        )
    for key, want in expected.items():
        got = state[key]
        if tuple(got.shape) != tuple(want.shape):
            raise RobustBenchError(
                f"{shown}: {key!r} has shape {tuple(got.shape)}, {entry.arch} expects {tuple(want.shape)}; "
                "nothing was installed"
            )
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise RobustBenchError(f"{shown}: {key!r} holds NaN or infinite values; nothing was installed")
        if got.is_floating_point() != want.is_floating_point():
            raise RobustBenchError(f"{shown}: {key!r} is {got.dtype}, expected {want.dtype}; nothing was installed")
    model.net.load_state_dict(state, strict=True)
    return model.eval()


def _imagenet_names() -> list[str]:
    from ..efficientnet_lite import imagenet_class_names

    return list(imagenet_class_names())


def convert_file(path: Path, entry: CatalogEntry, shown: str | None = None) -> Classifier:
    shown = shown or Path(path).name
    obj = load_weights_only(Path(path), shown)
    return to_model(find_state_dict(obj, entry, shown), entry, shown)
