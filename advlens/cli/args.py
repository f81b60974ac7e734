"""Argument types shared by every command, so each flag reads one way everywhere.

``--eps`` is an L-inf budget in every command: ``8/255`` or ``0.0314`` (:func:`advlens.budget.parse_linf`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..budget import BudgetError, parse_linf


def linf_eps(text: str) -> float:
    """argparse ``type=`` for an L-inf budget written ``8/255`` or ``0.0314``. Its range is checked
    by whoever takes it (an attack's or a config's validation), with their message."""
    try:
        return parse_linf(text)
    except BudgetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def read_image(path_text: str, model, resize: bool):
    """The image file ``--image`` names, fitted to ``model`` (centre-crop, or ``--resize``): (1, C, H, W)."""
    from pathlib import Path

    from ..data import load_upload
    from ..data.images import MAX_IMAGE_BYTES
    from ..safe_files import UnsafeFileError, read_small_file
    from . import UsageError

    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"no image at {path}")
    try:  # a regular file of at most MAX_IMAGE_BYTES, checked before it is read
        blob = read_small_file(path, MAX_IMAGE_BYTES, str(path))
    except UnsafeFileError as exc:
        raise UsageError(str(exc)) from None
    mode = "resize" if resize else "center_crop"
    return load_upload(blob, model.input_size, name=path.name, mode=mode, invert_if_light=True)


def add_image_choice(
    p, n_flags: tuple[str, ...] = ("--n",), n_default: int = 0, n_help: str = "", dest: str = "n"
) -> None:
    """The flags that choose which images of a split a command uses (:mod:`advlens.data.subset`):
    ``--n`` (or the command's own name for it), ``--offset``, ``--indices FILE`` and ``--subset-seed``."""
    from ..data.subset import RULE_HELP, SUBSET_SEED

    p.add_argument(*n_flags, dest=dest, type=int, default=n_default, help=n_help or f"N images (0: all): {RULE_HELP}")
    p.add_argument("--offset", type=int, default=0, help="skip the rule's first K images (held-out images)")
    p.add_argument(
        "--indices",
        metavar="FILE",
        help="exactly these dataset indices (numbers separated by spaces/commas/lines, a JSON list, or a "
        "report whose subset.indices to repeat)",
    )
    p.add_argument(
        "--subset-seed",
        type=int,
        default=SUBSET_SEED,
        help=f"the seed of the class-stratified sample (default {SUBSET_SEED})",
    )


def image_choice(args, dest: str = "n") -> dict:
    """``n``, ``offset``, ``indices`` (read from ``--indices FILE``) and ``seed`` of :func:`add_image_choice`."""
    from ..data import DataError
    from ..data.subset import read_indices_file
    from . import UsageError

    n = getattr(args, dest)
    if n < 0 or args.offset < 0:
        raise UsageError("the number of images and --offset must be >= 0")
    if args.indices and args.offset:
        raise UsageError("give either --indices or --offset, not both")
    try:
        indices = read_indices_file(args.indices) if args.indices else None
    except DataError as exc:
        raise UsageError(str(exc)) from None
    return {"n": n, "offset": args.offset, "indices": indices, "seed": args.subset_seed, "source": args.indices or ""}


def choose(ds, choice: dict):
    """The subset of ``ds`` that :func:`image_choice`'s ``choice`` picks (with the CLI's error type)."""
    from ..data import DataError
    from ..data.subset import choose_images
    from . import UsageError

    try:
        return choose_images(
            ds, choice["n"], choice["offset"], choice["indices"], choice["seed"], source=choice.get("source", "")
        )
    except DataError as exc:
        raise UsageError(str(exc)) from None


def print_subset(subset) -> None:
    """The images line every command prints, and its warning when classes are missing."""
    print(subset.describe())
    if subset.warning():
        print(f"warning: {subset.warning()}")


def class_index(names, value: str, what: str) -> int:
    from . import UsageError

    text = value.strip()
    if text.lstrip("-").isdigit():
        idx = int(text)
        if not 0 <= idx < len(names):
            raise UsageError(
                f"{what} {idx} is out of range: the model has {len(names)} classes (0 to {len(names) - 1})"
            )
        return idx
    lowered = [n.lower() for n in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    matches = [i for i, n in enumerate(lowered) if text.lower() in n]
    if len(matches) == 1:
        return matches[0]
    hint = f"; it matches {len(matches)} classes" if matches else ""
    raise UsageError(f"unknown {what} {value!r}{hint}: give a class index or an exact class name")


def load_input(args, model):
    """(x of shape (1, C, H, W), label or -1, description, source dict)."""
    from ..data import load_dataset
    from . import UsageError
    from .args import read_image

    if args.image:
        path = Path(args.image)
        x = read_image(args.image, model, args.resize)
        label = class_index(model.class_names, args.label, "label") if args.label else -1
        return x, label, path.name, {"kind": "file", "path": str(path)}
    if args.index is None:
        raise UsageError("--dataset needs --index")
    ds = load_dataset(args.dataset, split=args.split, root=args.root)
    x, y = ds.item(args.index)
    if tuple(x.shape[1:]) != tuple(model.input_size):
        raise UsageError(
            f"{args.dataset} images are {'x'.join(map(str, x.shape[1:]))} but the model expects "
            f"{'x'.join(map(str, model.input_size))}"
        )
    label = y if tuple(ds.class_names) == tuple(model.class_names) else -1
    if args.label:
        label = class_index(model.class_names, args.label, "label")
    return (
        x,
        label,
        ds.item_name(args.index),
        {"kind": "dataset", "dataset": args.dataset, "split": args.split, "index": args.index},
    )


def queued_line(what: str, rec, extra: str = "") -> str:
    """The line every ``--detach`` prints: which job, where it waits, and how to watch it."""
    return (
        f"{what} {rec.id} {rec.status} on {rec.device} (worker pid {rec.pid}){extra}; "
        "watch it with `python -m advlens runs`"
    )
