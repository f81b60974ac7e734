"""``python -m advlens fetch-model NAME [--from FILE]``: install a RobustBench model in the cache.

    python -m advlens fetch-model rb:cifar10/Linf/Carmon2019Unlabeled          # download (progress, ETA)
    python -m advlens fetch-model rb:cifar10/Linf/Wong2020Fast --from model.pt # a file obtained elsewhere
    python -m advlens models --robustbench                                     # the catalogue

The file is read with ``torch.load(weights_only=True)`` only, converted once to our safetensors
checkpoint and from then on loaded like any other model (:mod:`advlens.models.robustbench`).
"""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("fetch-model", help="download (or install from a file) a RobustBench model: rb:cifar10/Linf/...")
    p.add_argument(
        "name", help="a catalogue name, e.g. rb:cifar10/Linf/Carmon2019Unlabeled (see `models --robustbench`)"
    )
    p.add_argument("--from", dest="source", metavar="FILE", help="install this checkpoint file instead of downloading")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server (default 60)")
    p.set_defaults(func=run)


def progress_bar(done: int, total: int | None, eta: float | None) -> None:
    from ..models.robustbench.download import format_progress

    print(f"\r  {format_progress(done, total, eta)}   ", end="", file=sys.stderr, flush=True)


def run(args) -> int:
    from ..models.robustbench import fetch, get_catalog_entry, is_cached
    from ..models.robustbench.catalog import approx_bytes

    entry = get_catalog_entry(args.name)
    if args.source is None and is_cached(entry):
        print(f"{entry.name} is in the cache already")
        return 0
    if args.source is None:
        print(f"downloading {entry.name} ({approx_bytes(entry) / 1e6:,.0f} MB of weights) from {entry.source}")
    try:
        path = fetch(
            entry.name, args.source, progress=progress_bar if args.source is None else None, timeout=args.timeout
        )
    finally:
        if args.source is None:
            print(file=sys.stderr)
    print(f"installed {entry.name} -> {path}")
    print(f"  {entry.describe()}")
    return 0


def print_catalog() -> int:
    from ..models.robustbench import ENTRIES, is_cached

    print(f"{'name':<52s} {'architecture':<18s} {'clean':>7s} {'AutoAttack':>10s}  cache")
    for e in ENTRIES:
        print(
            f"{e.name:<52s} {e.architecture:<18s} {e.clean:6.2f}% {e.autoattack:9.2f}%  "
            f"{'cached' if is_cached(e) else 'not downloaded'}"
        )
    print(f"{len(ENTRIES)} models; published figures: RobustBench, AutoAttack standard at each entry's eps")
    return 0
