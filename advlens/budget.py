"""L-inf budgets: one way to read them and one way to show them.

Images live in [0, 1], so the engine, JSON files and the run store keep an L-inf budget as a float
in [0, 1]. People think of it in pixel levels of an 8-bit image, where 8/255 is the CIFAR-10
standard and 0.3 (76.5/255) Madry's MNIST budget. So every page, the CLI and every report show a
budget in both forms, ``8/255 (0.0314)`` (:func:`format_linf`), and every input takes either form
(:func:`parse_linf`): ``8/255``, ``0.0314`` or ``2/255``. A bare number above 1 is refused rather
than guessed at: "8" could mean 8/255 or a budget eight times the whole pixel range.
"""

from __future__ import annotations

import math
import re

LEVELS = 255  # pixel levels of an 8-bit image: the denominator people read budgets in

_FRACTION = re.compile(r"^\s*([-+]?\d*\.?\d+(?:e[-+]?\d+)?)\s*/\s*(\d*\.?\d+)\s*$", re.IGNORECASE)


class BudgetError(ValueError):
    """A budget that cannot be read; the message says which forms are accepted."""


def linf_text(eps: float) -> str:
    """The short form people type: ``8/255`` (``0.3`` -> ``76.5/255``)."""
    return f"{eps * LEVELS:.4g}/{LEVELS}"


def _decimal(eps: float) -> str:
    text = f"{eps:.4f}".rstrip("0").rstrip(".")
    return f"{eps:.2g}" if text in ("0", "-0") and eps else text


def format_linf(eps: float) -> str:
    """The one display form of an L-inf budget: ``8/255 (0.0314)``."""
    return f"{linf_text(eps)} ({_decimal(eps)})"


def format_budget(eps: float, norm: str = "Linf") -> str:
    """A budget in its norm's display form: ``8/255 (0.0314)`` for L-inf, ``0.5`` for L2."""
    return format_linf(eps) if norm == "Linf" else f"{eps:.4g}"


def parse_budget(text: str | float | int, norm: str = "Linf", what: str = "eps") -> float:
    """A budget of ``norm``: L-inf as :func:`parse_linf`; L2 a non-negative number (any size)."""
    if norm == "Linf":
        return parse_linf(text, what)
    value = parse_number(text, what)
    if value < 0:
        raise BudgetError(f"{what} must be >= 0, not {value:g}")
    return value


def parse_number(text: str | float | int, what: str = "the value") -> float:
    """A plain number or a fraction ``a/b`` -> float; :class:`BudgetError` otherwise."""
    if isinstance(text, bool):
        raise BudgetError(f"{what} must be a number, not {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip()
        m = _FRACTION.match(s)
        if m and float(m.group(2)) == 0:
            raise BudgetError(f"{what} {s!r} divides by zero")
        try:
            value = float(m.group(1)) / float(m.group(2)) if m else float(s)
        except ValueError:
            raise BudgetError(
                f"{what} must be a number such as 0.0314 or a fraction such as 8/255, not {s!r}"
            ) from None
    if not math.isfinite(value):
        raise BudgetError(f"{what} must be finite, not {text!r}")
    return value


def parse_linf(text: str | float | int, what: str = "eps") -> float:
    """An L-inf budget in [0, 1] from ``8/255`` or ``0.0314``. A bare number above 1 is an error."""
    value = parse_number(text, what)
    bare = not (isinstance(text, str) and "/" in text)
    if bare and value > 1.0:
        raise BudgetError(
            f"{what} {float(value):g} is above 1, the whole pixel range: write {float(value):g}/{LEVELS} for "
            f"{float(value):g} pixel levels, or a fraction of the range such as {min(1.0, value / LEVELS):.4f}"
        )
    return value
