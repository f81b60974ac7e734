"""What the readers of a ``.pt2`` program share: the names it goes by, the refusal message, and the
patterns that every name in an archive must match."""

from __future__ import annotations

import re

from ..errors import CheckpointError

ARCH = "torch_export"  # the ``arch`` of an imported program's metadata (not a buildable architecture)
MAX_NAME = 300
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
FQN = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\Z")  # a dotted module or tensor name


def refuse(name: str, why: str) -> CheckpointError:
    return CheckpointError(f"{name} was not loaded: {why}")


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""
