"""``python -m advlens models``, ``datasets``, ``transforms``, ``device``, ``import`` and ``defend``:
what is available, and adding to it."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("models", help="list the models in the zoo")
    p.add_argument("--robustbench", action="store_true", help="list the RobustBench catalogue (rb:...) instead")
    p.set_defaults(func=run_models)
    p = sub.add_parser("datasets", help="list the datasets")
    p.set_defaults(func=run_datasets)
    p = sub.add_parser("device", help="print the device advlens will use")
    p.set_defaults(func=run_device)
    p = sub.add_parser("transforms", help="list the input transforms of defended models (M+jpeg75)")
    p.set_defaults(func=run_transforms)
    p = sub.add_parser("defend", help="save a model behind input transforms as a named zoo entry")
    p.add_argument("model", help="a model followed by its transforms, e.g. digits_small_cnn+bits3+median3")
    p.add_argument("--name", required=True, help="the name in the zoo")
    p.add_argument("--description", default="")
    p.set_defaults(func=run_defend)
    register_import(sub)


def run_models(args) -> int:
    from ..evaluation.known import evaluation_of, finished_evaluations
    from ..zoo import list_models

    if getattr(args, "robustbench", False):
        from .fetch_model import print_catalog

        return print_catalog()

    found = finished_evaluations()  # the run store read once for every model listed
    for e in list_models(include_unreadable=True):
        if e.problem:
            print(f"{e.name:<28s} [unreadable, left out] {e.path}: {e.problem}")
            continue
        acc = e.metrics.get("test_accuracy")
        extra = f"  test acc {acc * 100:.1f}%" if isinstance(acc, (int, float)) else ""
        print(f"{e.name:<28s} {e.arch:<20s} {e.dataset:<10s} [{e.source}] {e.description}{extra}")
        known = evaluation_of(e, found)
        if known:
            print(f"{'':<28s} best-known evaluation: {known}")
    return 0


def run_datasets(args) -> int:
    from ..data import DATASETS

    for d in DATASETS.values():
        print(f"{d.name:<18s} {'offline' if d.offline else 'needs files':<12s} {d.description}")
    return 0


def run_transforms(args) -> int:
    from ..transforms import list_transforms

    print("Write a defended model as a zoo name followed by transforms: digits_small_cnn+bits3+median3")
    for cls in list_transforms():
        print(f"  {cls().describe()}  [{cls.paper}]")
    return 0


def run_defend(args) -> int:
    from ..zoo import save_defense

    entry = save_defense(args.name, args.model, args.description)
    print(f"saved {entry.name}: {entry.description}")
    return 0


def run_device(args) -> int:
    from ..device import describe_device

    print(describe_device())
    return 0


def register_import(sub) -> None:
    p = sub.add_parser("import", help="validate a checkpoint and add it to your models")
    p.add_argument("path", help="a .safetensors checkpoint (its .json beside it, or embedded)")
    p.add_argument("--name", help="the name in the zoo (default: the file name); it must be new to the zoo")
    p.add_argument(
        "--replace", action="store_true", help="replace an earlier import of the same name (for every session)"
    )
    g = p.add_argument_group("torch.export programs (.pt2); these override the JSON beside the file")
    g.add_argument("--input-size", help="C x H x W the program takes, e.g. 3x32x32 (checked against the program)")
    g.add_argument("--classes", help="class names, separated by commas (default: 0, 1, ...)")
    g.add_argument("--mean", help="per-channel mean the model subtracts, e.g. 0.4914,0.4822,0.4465 (default 0)")
    g.add_argument("--std", help="per-channel std the model divides by (default 1: the program takes [0,1] images)")
    g.add_argument("--dataset", help="the dataset it was trained on, e.g. cifar10")
    g.add_argument("--cam-layer", help="the default Grad-CAM layer, e.g. features.3 (default: the last conv)")
    p.set_defaults(func=run_import)


def run_import(args) -> int:
    import os
    from pathlib import Path

    from ..models.schema import MAX_CHECKPOINT_BYTES, MAX_METADATA_BYTES
    from ..safe_files import UnsafeFileError, read_small_file
    from ..zoo import import_checkpoint
    from . import UsageError

    if Path(args.path).suffix == ".pt2":
        return run_import_program(args)
    weights = Path(args.path)
    if weights.suffix != ".safetensors":
        weights = weights.with_suffix(".safetensors")
    if not os.path.lexists(weights):
        raise UsageError(f"no checkpoint at {weights}")
    meta = weights.with_suffix(".json")
    try:  # regular files within the size limits, never a pipe or a device
        blob = read_small_file(weights, MAX_CHECKPOINT_BYTES, str(weights))
        meta_blob = read_small_file(meta, MAX_METADATA_BYTES, str(meta)) if os.path.lexists(meta) else None
    except UnsafeFileError as exc:
        raise UsageError(str(exc)) from None
    entry = import_checkpoint(blob, meta_blob, (args.name or weights.stem) + ".safetensors", replace=args.replace)
    print(f"imported {entry.name} ({entry.arch}, {entry.dataset}) -> {entry.path}")
    return 0


def run_import_program(args) -> int:
    """``import model.pt2``: a torch.export program, its options from flags and/or ``model.json`` beside it."""
    import os
    from pathlib import Path

    from ..models.exported import options_from_flags
    from ..models.schema import MAX_CHECKPOINT_BYTES, MAX_METADATA_BYTES
    from ..safe_files import UnsafeFileError, read_small_file
    from ..zoo import import_program
    from . import UsageError

    path = Path(args.path)
    side = path.with_suffix(".json")
    try:
        options = options_from_flags(args.input_size, args.classes, args.mean, args.std, args.dataset, args.cam_layer)
        blob = read_small_file(path, MAX_CHECKPOINT_BYTES, str(path))
        side_blob = read_small_file(side, MAX_METADATA_BYTES, str(side)) if os.path.lexists(side) else None
    except (UnsafeFileError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    entry = import_program(blob, side_blob, (args.name or path.stem) + ".pt2", args.replace, options)
    print(
        f"imported {entry.name} (torch.export program, {'x'.join(map(str, entry.input_size))}, {entry.dataset}) -> {entry.path}"
    )
    return 0
