"""Parameter descriptors: the one way attacks, objectives and defenses declare what they take.

A :class:`Param` names a value, its kind, default and valid range, and its unit. Generic UIs and
the CLI build their controls from it without knowing the owner, and one :meth:`Param.validate`
checks every value, whoever supplies it (a page, the CLI, a JSON config, a URL).

Units: :data:`PIXEL` marks an L-inf budget or step in image units ([0, 1]); it is shown and read
as :mod:`advlens.budget` says (``8/255 (0.0314)``). ``"L2"`` marks an L2 budget, a plain float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .budget import BudgetError, format_linf, linf_text, parse_linf, parse_number

PIXEL = "1/255"  # an L-inf quantity in [0, 1] that people read in 1/255 units
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class ParamError(ValueError):
    """A value a :class:`Param` does not accept; the message says what to change."""


@dataclass(frozen=True)
class Param:
    """One tunable parameter, described for generic UIs and validation.

    ``kind`` is ``float``, ``int``, ``bool`` or ``str`` (with ``choices``). ``optional`` means
    that ``None`` is accepted and stands for an automatic value described in ``help``.
    """

    name: str
    kind: type
    default: Any
    min: float | None = None
    max: float | None = None
    unit: str = ""
    help: str = ""
    choices: tuple = ()
    optional: bool = False

    @property
    def is_budget(self) -> bool:
        return self.unit == PIXEL

    def format(self, value) -> str:
        """``value`` for people: budgets as ``8/255 (0.0314)``, other floats to 4 digits."""
        return self._show(value, "auto", format_linf, "{:.4g}")

    def text(self, value) -> str:
        """``value`` as an input field shows it (``8/255`` for budgets, "" for auto)."""
        return self._show(value, "", linf_text, "{:.6g}")

    def _show(self, value, auto: str, budget, number: str) -> str:
        if value is None:
            return auto
        if self.is_budget:
            return budget(float(value))
        return number.format(value) if self.kind is float else str(value)

    def parse(self, text, owner: str = ""):
        """A typed value (a string from a form, the CLI or a URL, or a JSON value) -> validated value."""
        if isinstance(text, str):
            s = text.strip()
            if self.optional and s.lower() in {"", "auto", "none"}:
                return None
            if self.kind is float:
                try:
                    text = parse_linf(s, self.name) if self.is_budget else parse_number(s, self.name)
                except BudgetError as exc:
                    raise ParamError(self._where(owner) + str(exc)) from None
        return self.validate(text, owner)

    def validate(self, value, owner: str = ""):
        """Coerce ``value`` to ``kind`` and check its range; raise :class:`ParamError`."""
        where = self._where(owner)
        if value is None:
            if self.optional:
                return None
            raise ParamError(f"{where}{self.name} needs a value")
        try:
            value = _coerce(self.kind, value)
        except (TypeError, ValueError):
            raise ParamError(f"{where}{self.name} must be {_kind_name(self.kind)}, not {value!r}") from None
        if self.choices and value not in self.choices:
            raise ParamError(f"{where}{self.name} must be one of {', '.join(map(str, self.choices))}, not {value!r}")
        if self.min is not None and value < self.min:
            raise ParamError(
                f"{where}{self.name} = {self.format(value)} is too small: {self.name} must be >= {self.format(self.min)}"
            )
        if self.max is not None and value > self.max:
            raise ParamError(
                f"{where}{self.name} = {self.format(value)} is too large: {self.name} must be <= {self.format(self.max)}"
            )
        return value

    @staticmethod
    def _where(owner: str) -> str:
        return f"{owner}: " if owner else ""


def _coerce(kind: type, value):
    if kind is bool:
        if isinstance(value, str):
            low = value.strip().lower()
            if low not in _TRUE | _FALSE:
                raise ValueError(value)
            return low in _TRUE
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise ValueError(value)
        return bool(value)
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(value)
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(value)
        return value
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(value)
    return str(value)


def _kind_name(kind: type) -> str:
    return {float: "a number", int: "a whole number", bool: "true or false"}.get(kind, "text")


def format_params(params: tuple[Param, ...], values: dict) -> str:
    """``eps=8/255 (0.0314), steps=10``: a parameter set for captions, logs and reports."""
    known = {p.name: p for p in params}
    return ", ".join(
        f"{k}={known[k].format(v)}" if k in known else f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in values.items()
    )
