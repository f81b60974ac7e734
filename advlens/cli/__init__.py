"""``python -m advlens``: the command line. Each module in this package that defines
``register(subparsers)`` adds one command; errors a user can fix are printed, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sqlite3
import sys

from ..data import DataError
from ..models import CheckpointError
from ..paths import home_error


class UsageError(ValueError):
    """A bad argument value; printed as ``error: ...`` with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m advlens",
        description="advlens: adversarial attacks and defenses on image classifiers, from the command line.",
    )
    parser.add_argument(
        "--cpu", action="store_true", help="force the CPU even when CUDA is available (same as ADVLENS_DEVICE=cpu)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad argument that argparse has already explained
        return exc.code if isinstance(exc.code, int) else 2
    if args.cpu:
        from ..device import force_cpu

        force_cpu()
    try:
        return int(args.func(args) or 0)
    except (UsageError, DataError, CheckpointError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, sqlite3.Error) as exc:  # ADVLENS_HOME read-only, full or not a folder: one line
        problem = home_error(exc)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2
