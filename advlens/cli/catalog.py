"""``python -m advlens models``, ``datasets``, ``transforms``, ``device``, ``import`` and ``defend``:
what is available, and adding to it."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("models", help="list the models in the zoo")
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
    from ..zoo import list_models

    for e in list_models(include_unreadable=True):
        if e.problem:
            print(f"{e.name:<28s} [unreadable, left out] {e.path}: {e.problem}")
            continue
        acc = e.metrics.get("test_accuracy")
        extra = f"  test acc {acc * 100:.1f}%" if isinstance(acc, (int, float)) else ""
        print(f"{e.name:<28s} {e.arch:<20s} {e.dataset:<10s} [{e.source}] {e.description}{extra}")
        if e.evaluation:
            print(f"{'':<28s} best-known evaluation: {e.evaluation}")
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
    p.add_argument("--name", help="the name in the zoo (default: the file name)")
    p.set_defaults(func=run_import)


def run_import(args) -> int:
    from pathlib import Path

    from ..zoo import import_checkpoint
    from . import UsageError

    weights = Path(args.path)
    if weights.suffix != ".safetensors":
        weights = weights.with_suffix(".safetensors")
    if not weights.is_file():
        raise UsageError(f"no checkpoint at {weights}")
    meta = weights.with_suffix(".json")
    entry = import_checkpoint(
        weights.read_bytes(),
        meta.read_bytes() if meta.is_file() else None,
        (args.name or weights.stem) + ".safetensors",
    )
    print(f"imported {entry.name} ({entry.arch}, {entry.dataset}) -> {entry.path}")
    return 0
