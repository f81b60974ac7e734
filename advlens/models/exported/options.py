"""What a program does not say about itself: its image size, class names, normalisation, dataset and
Grad-CAM layer, from command-line flags or the JSON beside the file, checked against the program."""

from __future__ import annotations

from ...safe_json import JSONLimitError, loads_limited
from ..errors import CheckpointError
from ..schema import check_metadata
from .common import ARCH, FQN, MAX_NAME
from .graph import ProgramInfo

OPTION_KEYS = ("input_size", "class_names", "mean", "std", "dataset", "description", "cam_layer")


def program_metadata(info: ProgramInfo, options: dict | None, name: str) -> dict:
    """The advlens metadata of a program: ``options`` (input size, class names, mean, std, dataset,
    description, cam_layer) checked against what the program takes and returns."""
    options = dict(options or {})
    if options.get("format") == "advlens-checkpoint":  # our own stored metadata
        program = options.get("program") if isinstance(options.get("program"), dict) else {}
        options = {k: options[k] for k in OPTION_KEYS if k in options}
        if program.get("cam_layer"):
            options.setdefault("cam_layer", program["cam_layer"])
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise CheckpointError(
            f"the options of {name} have unknown key(s) {unknown[:3]}; known: {', '.join(OPTION_KEYS)}."
        )
    c, h, w = info.input_shape
    size = options.get("input_size")
    if size is not None and list(size) != [c, h, w]:
        raise CheckpointError(
            f"{name} takes {c}x{h}x{w} images, but the input size given is {'x'.join(map(str, size))}."
        )
    names = options.get("class_names")
    if names is None:
        names = [str(i) for i in range(info.num_classes)]
    elif not isinstance(names, list) or len(names) != info.num_classes:
        count = len(names) if isinstance(names, list) else "no list of"
        raise CheckpointError(f"{name} returns {info.num_classes} logits, but {count} class names were given.")
    mean, std = options.get("mean", [0.0]), options.get("std", [1.0])
    for key, values in (("mean", mean), ("std", std)):
        if isinstance(values, list) and len(values) == 1:
            values *= c
        options[key] = values
    meta = {
        "format": "advlens-checkpoint",
        "arch": ARCH,
        "input_size": [c, h, w],
        "class_names": names,
        "mean": options["mean"],
        "std": options["std"],
        "dataset": str(options.get("dataset") or "?"),
        "description": str(options.get("description") or f"torch.export program {name}"),
        "program": {"batch": info.batch, "cam_layer": options.get("cam_layer") or ""},
    }
    meta = check_metadata(meta, f"the options of {name}")
    cam = meta["program"]["cam_layer"]
    if not isinstance(cam, str) or (cam and not FQN.match(cam.removeprefix("net."))):
        raise CheckpointError(f"the cam_layer of {name} must be a layer name such as features.3.")
    return meta


def options_from_json(data: bytes | str | None, name: str) -> dict:
    """The options in the JSON beside a program (or uploaded with it)."""
    if data is None:
        return {}
    try:
        value = loads_limited(data, name, 2_000_000)
    except JSONLimitError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{name} must be a JSON object with input_size, class_names, mean and std.")
    return value


def options_from_flags(
    input_size: str | None = None,
    classes: str | None = None,
    mean: str | None = None,
    std: str | None = None,
    dataset: str | None = None,
    cam_layer: str | None = None,
) -> dict:
    """Options from command-line text: ``3x32x32``, ``cat,dog``, ``0.49,0.48,0.45``. ValueError says what is wrong."""
    out: dict = {}
    if input_size:
        parts = input_size.lower().split("x")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts) or len(input_size) > 40:
            raise ValueError(
                f"--input-size must look like 3x32x32 (channels x height x width), not {input_size[:40]!r}"
            )
        out["input_size"] = [int(p) for p in parts]
    if classes:
        if len(classes) > 2_000_000:
            raise ValueError("--classes is too long")
        out["class_names"] = [c.strip() for c in classes.split(",")]
    for key, text in (("mean", mean), ("std", std)):
        if text:
            try:
                values = [float(v) for v in text.split(",")[:4]]
            except ValueError:
                raise ValueError(f"--{key} must be numbers separated by commas, such as 0.5,0.5,0.5") from None
            out[key] = values
    if dataset:
        out["dataset"] = dataset[:100]
    if cam_layer:
        out["cam_layer"] = cam_layer[:MAX_NAME]
    return out
