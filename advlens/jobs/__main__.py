"""``python -m advlens.jobs <id>``: be the worker of job ``<id>`` (any kind; see :mod:`advlens.jobs.api`)."""

from __future__ import annotations

import sys

from .api import execute
from .store import RunStore


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m advlens.jobs JOB_ID", file=sys.stderr)
        return 2
    store = RunStore()
    if store.get(args[0]) is None:
        print(f"error: no job {args[0]!r} in {store.path}", file=sys.stderr)
        return 2
    rec = execute(args[0], store)
    return 0 if rec.status in ("done", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
