"""The checkpoint schema: what a checkpoint's metadata and tensor header may hold, checked
**before** any model is built or any memory is allocated for its tensors.

A checkpoint is untrusted input (an upload, a file in a shared folder). Two functions check it:

- :func:`check_metadata` validates the metadata (types, ranges, sizes) and returns it normalised;
- :func:`check_header` validates the safetensors header (names, dtypes, shapes, sizes) against the
  tensors the architecture expects, computed on PyTorch's ``meta`` device (shapes, no storage).

Both collect every problem and raise one :class:`CheckpointError` that lists them. The caps below
are named so that a message can say which one a file exceeded.
"""

from __future__ import annotations

import math
from numbers import Real

from ..params import short_repr
from ..safe_json import JSONLimitError, loads_limited
from .errors import CheckpointError

MAX_CHECKPOINT_BYTES = 1_000_000_000  # 1 GB: EfficientNet-Lite0 is 19 MB, PreAct-ResNet-18 45 MB
MAX_METADATA_BYTES = 2_000_000  # ImageNet's 1000 class names take 20 kB
MAX_HEADER_BYTES = 10_000_000  # the safetensors JSON header (names, dtypes, shapes)
MAX_INPUT_SIDE = 512  # pixels per side; the zoo's largest input is 224
CHANNELS = (1, 3)
MAX_CLASSES = 10_000
MAX_CLASS_NAME = 200  # characters
MAX_TEXT = 10_000  # characters of a description or other free text
MAX_TENSORS = 5_000
WEIGHT_DTYPES = {"F32": "float32", "F16": "float16 (cast back to float32 on load)", "BF16": "bfloat16"}
COUNTER_DTYPES = {"I64": "int64"}  # BatchNorm's num_batches_tracked


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v))


def parse_metadata_text(text: str | bytes, where: str) -> dict:
    """Metadata JSON text -> a checked, normalised dict."""
    try:
        meta = loads_limited(text, where, MAX_METADATA_BYTES)
    except JSONLimitError as exc:
        raise CheckpointError(str(exc)) from None
    return check_metadata(meta, where)


def check_metadata(meta, where: str) -> dict:
    """Validate checkpoint metadata; returns a copy with ``recipe`` and ``metrics`` as dicts."""
    if not isinstance(meta, dict) or meta.get("format") != "advlens-checkpoint":
        raise CheckpointError(f"{where} is not advlens checkpoint metadata (no 'format': 'advlens-checkpoint').")
    missing = [k for k in ("arch", "input_size", "class_names", "mean", "std") if k not in meta]
    if missing:
        raise CheckpointError(f"{where} lacks the field(s): {', '.join(missing)}.")
    problems: list[str] = []
    arch = meta["arch"]
    if not isinstance(arch, str) or not 0 < len(arch) <= 100:
        problems.append(f"arch must be an architecture name, not {short_repr(arch)}")
    size = meta["input_size"]
    channels = None
    if not isinstance(size, list) or len(size) != 3 or not all(_is_int(v) for v in size):
        problems.append(f"input_size must be three whole numbers [C, H, W], not {short_repr(size)}")
    else:
        channels, h, w = size
        if channels not in CHANNELS:
            problems.append(f"input_size has {channels} channels; images have 1 (grey) or 3 (colour)")
        if not (1 <= h <= MAX_INPUT_SIDE and 1 <= w <= MAX_INPUT_SIDE):
            problems.append(f"input_size {h}x{w} is outside 1..{MAX_INPUT_SIDE} pixels per side (MAX_INPUT_SIDE)")
    names = meta["class_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names[: MAX_CLASSES + 1]):
        problems.append(f"class_names must be a list of strings, not {short_repr(names)}")
    elif not 2 <= len(names) <= MAX_CLASSES:
        problems.append(f"class_names has {len(names):,} entries; 2 to {MAX_CLASSES:,} are accepted (MAX_CLASSES)")
    elif any(len(n) > MAX_CLASS_NAME for n in names):
        problems.append(f"a class name is longer than {MAX_CLASS_NAME} characters (MAX_CLASS_NAME)")
    for key in ("mean", "std"):
        values = meta[key]
        if not isinstance(values, list) or not values or not all(_is_number(v) for v in values):
            problems.append(f"{key} must be a list of finite numbers, not {short_repr(values)}")
        elif channels in CHANNELS and len(values) not in (1, channels):
            problems.append(f"{key} has {len(values)} values for {channels} channel(s)")
        elif key == "std" and any(v <= 0 for v in values):
            problems.append(f"std must be positive (the model divides by it), not {values}")
    for key in ("dataset", "description", "created_at"):
        if key in meta and not (isinstance(meta[key], str) and len(meta[key]) <= MAX_TEXT):
            problems.append(f"{key} must be text of at most {MAX_TEXT} characters, not {short_repr(meta[key])}")
    for key in ("recipe", "metrics", "arch_kwargs"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            problems.append(f"{key} must be a JSON object, not {short_repr(meta[key])}")
    kwargs = meta.get("arch_kwargs") or {}
    if isinstance(kwargs, dict) and not all(_plain(v) for v in kwargs.values()):
        problems.append("arch_kwargs may hold only numbers, text, booleans and lists of them")
    if problems:
        raise CheckpointError(_listing(where, problems))
    out = dict(meta)
    out["recipe"], out["metrics"] = meta.get("recipe") or {}, meta.get("metrics") or {}
    return out


def read_header(blob: bytes, name: str) -> dict:
    """The JSON header of safetensors bytes, checked for size and nesting (no tensor is read)."""
    if len(blob) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{name} is {len(blob):,} bytes; at most {MAX_CHECKPOINT_BYTES:,} (MAX_CHECKPOINT_BYTES)."
        )
    n = int.from_bytes(blob[:8], "little")
    if n > MAX_HEADER_BYTES or 8 + n > len(blob):
        raise CheckpointError(f"{name} is not a valid safetensors file (its header length {n:,} does not fit).")
    try:
        header = loads_limited(blob[8 : 8 + n], f"the header of {name}", MAX_HEADER_BYTES)
    except JSONLimitError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name} is not a valid safetensors file (its header is not a JSON object).")
    return header


def check_header(header: dict, expected: dict[str, tuple[tuple[int, ...], bool]], name: str) -> None:
    """Check the tensor entries of a safetensors header against the architecture's state dict.

    ``expected`` maps each ``model.<key>`` to (shape, is_floating_point). Weights must be stored as
    float32, float16 or bfloat16, counters as int64; anything else (int8, uint8, bool, float64) is
    refused rather than silently converted.
    """
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    if len(entries) > MAX_TENSORS:
        raise CheckpointError(f"{name} holds {len(entries):,} tensors; at most {MAX_TENSORS:,} (MAX_TENSORS).")
    problems: list[str] = []
    for key, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("shape"), list):
            problems.append(f"tensor {short_repr(key)} has a malformed header entry")
            continue
        shape, dtype = entry["shape"], entry.get("dtype")
        if not all(_is_int(d) and d >= 0 for d in shape):
            problems.append(f"tensor {short_repr(key)} has a malformed shape {short_repr(shape)}")
            continue
        if key not in expected:
            continue  # reported below, with the missing ones
        want_shape, floating = expected[key]
        allowed = WEIGHT_DTYPES if floating else COUNTER_DTYPES
        if dtype not in allowed:
            problems.append(f"tensor {key!r} is stored as {dtype}; use {' or '.join(allowed.values())}")
        if tuple(shape) != tuple(want_shape):
            problems.append(f"tensor {key!r} has shape {tuple(shape)}, expected {tuple(want_shape)}")
    model_keys = {k for k in entries if k.startswith("model.")}
    missing, unexpected = sorted(set(expected) - model_keys), sorted(model_keys - set(expected))
    if missing or unexpected:
        problems.insert(
            0, f"{len(missing)} missing tensor(s) {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}"
        )
    if problems:
        raise CheckpointError(_listing(f"{name} does not fit the architecture its metadata names", problems))


def _plain(v) -> bool:
    if isinstance(v, (str, bool)) or v is None or _is_number(v):
        return True
    return isinstance(v, list) and len(v) <= 1000 and all(isinstance(x, (str, bool, int, float)) for x in v)


def _listing(where: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{where}: {problems[0]}."
    return f"{where}:\n" + "\n".join(f"- {p}" for p in problems)
