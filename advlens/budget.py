"""L-inf budgets: one way to read them and one way to show them.

Images live in [0, 1], so the engine, JSON files and the run store keep an L-inf budget as a float
in [0, 1]. People think of it in pixel levels of an 8-bit image, where 8/255 is the CIFAR-10
standard and 0.3 (76.5/255) Madry's MNIST budget. So every page, the CLI and every report show a
budget in both forms (:func:`format_linf`), in the order the field writes it: ``8/255 (0.0314)`` for a
whole number of grey levels, ``0.3 (76.5/255)`` otherwise; every input takes either form
(:func:`parse_linf`): ``8/255``, ``0.0314`` or ``2/255``. A bare number above 1 is refused rather
than guessed at: "8" could mean 8/255 or a budget eight times the whole pixel range.
"""

from __future__ import annotations

import math
import re

LEVELS = 255  # pixel levels of an 8-bit image: the denominator people read budgets in

# Each number has one way to match (digits with an optional fraction, or a fraction alone), so a
# text that fails to match is rejected in linear time: ``\d*\.?\d+`` could split a run of n digits in
# n ways and backtracked over all of them (8,000 digits took 7 s).
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_FRACTION = re.compile(rf"\s*([-+]?{_NUMBER}(?:e[-+]?\d+)?)\s*/\s*({_NUMBER})\s*", re.IGNORECASE)
MAX_BUDGET_CHARS = 64  # "0.031372549019607843" is 20; a longer text is not a budget, only work to read


class BudgetError(ValueError):
    """A budget that cannot be read; the message says which forms are accepted."""


def _levels(eps: float) -> str:
    return f"{eps * LEVELS:.4g}/{LEVELS}"


def _decimal(eps: float) -> str:
    text = f"{eps:.4f}".rstrip("0").rstrip(".")
    return f"{eps:.2g}" if text in ("0", "-0") and eps else text


def levels_first(eps: float) -> bool:
    """Whether the field writes ``eps`` as x/255: a whole number of grey levels (8/255, 2/255, 16/255)
    that is not also a short decimal. The values that are both (0, 0.2, 0.4, 0.6, 0.8, 1 are 0, 51,
    102, 153, 204 and 255 levels) are written as decimals, as the MNIST literature writes 0.2."""
    if not math.isfinite(eps):
        return False
    levels = eps * LEVELS  # the tolerances absorb float32 rounding of measured norms (40/255 -> 40.000001)
    whole = abs(levels - round(levels)) < 5e-4
    short_decimal = abs(eps * 100 - round(eps * 100)) < 1e-5
    return whole and not short_decimal


def linf_text(eps: float) -> str:
    """The short form people type, the field's own: ``8/255`` for a whole number of grey levels,
    the decimal otherwise (``0.3``, ``0.0314``); :func:`parse_linf` reads it back to the same value."""
    return _levels(eps) if levels_first(eps) else f"{eps:.6g}"


def format_linf(eps: float) -> str:
    """The one display form of an L-inf budget, in the field's order: ``8/255 (0.0314)`` for a whole
    number of grey levels, ``0.3 (76.5/255)`` (the decimal first) otherwise."""
    if levels_first(eps):
        return f"{_levels(eps)} ({_decimal(eps)})"
    return f"{_decimal(eps)} ({_levels(eps)})"


def format_budget(eps: float, norm: str = "Linf") -> str:
    """A budget in its norm's display form: ``8/255 (0.0314)`` or ``0.3 (76.5/255)`` for L-inf, ``0.5`` for L2."""
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
        raw = str(text)
        if len(raw) > MAX_BUDGET_CHARS:
            raise BudgetError(
                f"{what} is {len(raw):,} characters long; write a number such as 0.0314 or a fraction "
                f"such as 8/255 (at most {MAX_BUDGET_CHARS} characters)"
            )
        s = raw.strip()
        m = _FRACTION.fullmatch(s)
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
