"""Argument types shared by every command, so each flag reads one way everywhere.

``--eps`` is an L-inf budget in every command: ``8/255`` or ``0.0314`` (:func:`advlens.budget.parse_linf`).
"""

from __future__ import annotations

import argparse

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
