"""Parameter descriptors: the one way attacks, objectives and defenses declare what they take.

A :class:`Param` names a value, its kind, default and valid range, and its unit. Generic UIs and
the CLI build their controls from it without knowing the owner, and one :meth:`Param.validate`
checks every value, whoever supplies it (a page, the CLI, a JSON config, a URL).

Units: :data:`PIXEL` marks an L-inf budget or step in image units ([0, 1]); it is shown and read
as :mod:`advlens.budget` says (``8/255 (0.0314)``). ``"L2"`` marks an L2 budget, a plain float.

Configurations are declared the same way: :func:`declared` turns a tuple of descriptors into the
fields of a dataclass (:class:`advlens.training.config.TrainConfig`,
:class:`advlens.evaluation.spec.EvalSpec`), so one declaration gives the fields, their checks
(:func:`check_all`), the CLI flags (:mod:`advlens.cli.param_flags`) and the form's widgets
(:mod:`dashboard.params`). Besides ``float``, ``int``, ``bool`` and ``str``, a configuration field may
be a ``dict`` (names to scalars, e.g. an objective's hyperparameters), a ``tuple`` of numbers or a
``list`` (of text or numbers). :func:`json_value` checks a value read from JSON strictly (a JSON
``true`` is no number, a number no text).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .budget import BudgetError, format_linf, linf_text, parse_linf, parse_number

PIXEL = "1/255"  # an L-inf quantity in [0, 1] that people read in 1/255 units
MAX_TEXT = 10_000  # the longest text a configuration field takes
MAX_ITEMS = 100  # numbers in a list-valued setting (milestones, radii)
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class ParamError(ValueError):
    """A value a :class:`Param` does not accept; the message says what to change."""


@dataclass(frozen=True)
class Param:
    """One tunable parameter, described for generic UIs and validation.

    ``kind`` is ``float``, ``int``, ``bool`` or ``str`` (with ``choices``); configuration fields may
    also be ``dict``, ``tuple`` (numbers) or ``list``. ``optional`` means that ``None`` is accepted
    and stands for an automatic value described in ``help``.

    The remaining fields describe a configuration field for forms and the command line (all
    optional; attacks leave them empty): ``label`` (the form's label), ``group`` (the form's section),
    ``key`` (the short name in links and widget keys; default ``name``), ``flags`` (the CLI option
    strings; default ``--name-with-dashes``; a bool's further flags turn it off, e.g. ``--plain``),
    ``min_open`` (``min`` itself is refused) and ``tags`` (free markers, e.g. ``"recipe"``).
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
    label: str = ""
    group: str = ""
    key: str = ""
    flags: tuple = ()
    min_open: bool = False
    tags: tuple = ()

    @property
    def is_budget(self) -> bool:
        return self.unit == PIXEL

    def format(self, value) -> str:
        """``value`` for people: budgets as ``8/255 (0.0314)``, other floats to 4 digits."""
        return self._show(value, "auto", format_linf, "{:.4g}")

    def text(self, value) -> str:
        """``value`` as an input field shows it (``8/255`` for budgets, "" for auto)."""
        return self._show(value, "", linf_text, "{:.6g}")

    @property
    def short(self) -> str:
        """The name in links and widget keys."""
        return self.key or self.name

    @property
    def cli_flags(self) -> tuple[str, ...]:
        return tuple(self.flags) or ("--" + self.name.replace("_", "-"),)

    @property
    def is_number(self) -> bool:
        return self.kind in (int, float)

    def _show(self, value, auto: str, budget, number: str) -> str:
        if value is None:
            return auto
        if self.kind is tuple or self.kind is list:
            return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        if self.kind is dict:
            return json.dumps(value) if value else ""
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
            elif self.kind is tuple or self.kind is list:
                text = [t for t in s.replace(";", ",").replace(" ", ",").split(",") if t]
                if self.kind is tuple:
                    text = [_number_of(self, t, owner) for t in text]
            elif self.kind is dict:
                text = _dict_of(self, s, owner)
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
            raise ParamError(f"{where}{self.name} must be {_kind_name(self.kind)}, not {short_repr(value)}") from None
        if self.choices and value not in self.choices:
            raise ParamError(
                f"{where}{self.name} must be one of {', '.join(map(str, self.choices))}, not {short_repr(value)}"
            )
        if self.kind in (tuple, list, dict):
            return value
        if self.min is not None and self.min_open and value <= self.min:
            raise ParamError(
                f"{where}{self.name} = {short_text(self.format(value))} is too small: {self.name} must be > {self.format(self.min)}"
            )
        if self.min is not None and value < self.min:
            raise ParamError(
                f"{where}{self.name} = {short_text(self.format(value))} is too small: {self.name} must be >= {self.format(self.min)}"
            )
        if self.max is not None and value > self.max:
            raise ParamError(
                f"{where}{self.name} = {short_text(self.format(value))} is too large: {self.name} must be <= {self.format(self.max)}"
            )
        return value

    @staticmethod
    def _where(owner: str) -> str:
        return f"{owner}: " if owner else ""


def _number_of(prm: Param, text: str, owner: str) -> float:
    try:
        return parse_number(text, prm.name)
    except BudgetError as exc:
        raise ParamError(prm._where(owner) + str(exc)) from None


def _dict_of(prm: Param, text: str, owner: str) -> dict:
    """``{"hidden": 512}`` or ``hidden=512, dropout=0.1`` -> a dict of scalars."""
    from .safe_json import loads_limited

    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = loads_limited(text, prm.name, MAX_TEXT)
        except ValueError as exc:
            raise ParamError(f"{prm._where(owner)}{prm.name}: not a JSON object ({exc})") from None
        return value if isinstance(value, dict) else {}
    return key_values(text.split(","), f"{prm._where(owner)}{prm.name} takes KEY=VALUE pairs or a JSON object, not ")


def key_values(items, prefix: str) -> dict:
    """``["hidden=512", "dropout=0.1"]`` -> ``{"hidden": 512, "dropout": 0.1}`` (each value read by
    :func:`scalar_text`); an item without ``=``: :class:`ParamError` ``prefix`` + the item (shortened)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ParamError(prefix + short_repr(item))
        k, v = item.split("=", 1)
        out[k.strip()] = scalar_text(v.strip())
    return out


def scalar_text(text: str):
    """``6`` -> 6, ``0.5`` -> 0.5, ``true`` -> True, anything else stays text (a KEY=VALUE's value)."""
    from .safe_json import loads_limited

    try:  # bounded: 100,000 nested brackets are text, never a RecursionError
        return loads_limited(text, "value", MAX_TEXT)
    except ValueError:
        return text


def _coerce(kind: type, value):
    if kind is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) and _scalar(v) for k, v in value.items()):
            raise ValueError(value)
        return dict(value)
    if kind is tuple:
        if not isinstance(value, (list, tuple)) or not all(_finite(v) for v in value):
            raise ValueError(value)
        return tuple(float(v) for v in value)
    if kind is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(value)
        return list(value)
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


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _scalar(v) -> bool:
    return v is None or isinstance(v, (str, bool)) or _finite(v)


def _kind_name(kind: type) -> str:
    return {
        float: "a number",
        int: "a whole number",
        bool: "true or false",
        dict: "a JSON object of names to numbers, text or booleans",
        tuple: "a list of numbers",
        list: "a list",
    }.get(kind, "text")


# ------------------------------------------------------------------------ declared configurations
class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()  # the default of a configuration field that has none (it must be given)


def annotation(prm: Param) -> str:
    """The dataclass annotation of a declared field: ``int``, ``str | None``, ``tuple[float, ...]``..."""
    base = {tuple: "tuple[float, ...]", list: "list"}.get(prm.kind, prm.kind.__name__)
    return f"{base} | None" if prm.optional else base


def declared(params: tuple[Param, ...]):
    """Class decorator: a dataclass whose fields are ``params`` (name, annotation, default), in order.

    Mutable defaults (dict, list) become ``default_factory`` copies; :data:`REQUIRED` leaves a field
    without a default (such fields come first)."""

    def wrap(cls):
        notes = {}
        for prm in params:
            notes[prm.name] = annotation(prm)
            if prm.default is REQUIRED:
                continue
            if isinstance(prm.default, (dict, list)):
                setattr(cls, prm.name, field(default_factory=lambda d=prm.default: copy.deepcopy(d)))
            else:
                setattr(cls, prm.name, prm.default)
        cls.__annotations__ = notes
        return dataclass(cls)

    return wrap


def json_value(prm: Param, value):
    """``value`` of a JSON document as field ``prm`` holds it; :class:`ParamError` otherwise.

    Stricter than :meth:`Param.validate`: JSON booleans are not numbers, numbers are not text, text is
    at most :data:`MAX_TEXT` characters. Ranges are :meth:`Param.validate`'s business."""
    kind, name = prm.kind, prm.name
    if value is None and prm.optional:
        return None
    if kind is int and _finite(value) and float(value).is_integer():
        return int(value)
    if kind is float and _finite(value):
        return float(value)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str) and len(value) <= MAX_TEXT:
        return value
    if kind is dict and isinstance(value, dict):
        bad = [k for k, v in value.items() if not isinstance(k, str) or not _scalar(v)]
        if bad:
            raise ParamError(f"{name} must map names to numbers, text or booleans; {bad[0]!r} does not.")
        return dict(value)
    if kind is tuple:
        if isinstance(value, (list, tuple)) and len(value) > MAX_ITEMS:
            raise ParamError(f"{name} takes at most {MAX_ITEMS} numbers, not {len(value):,}.")
        if isinstance(value, (list, tuple)) and all(_finite(v) for v in value):
            return tuple(float(v) for v in value)
        raise ParamError(f"{name} must be a list of numbers, not {short_repr(value)}.")
    if kind is list and isinstance(value, list):
        return list(value)
    what = {int: "a whole number", float: "a finite number", str: "text", list: "a list"}.get(kind, _kind_name(kind))
    if prm.optional:
        what += " or null"
    raise ParamError(f"{name} must be of type {annotation(prm)} ({what}), not {short_repr(value)}.")


def short_repr(value) -> str:
    """``repr(value)`` as a message shows it: at most 60 characters (:func:`short_text`)."""
    return short_text(repr(value))


def short_text(text: str) -> str:
    """A value as a message shows it: at most 60 characters (a 100,000-digit flag is not echoed)."""
    return text if len(text) <= 60 else text[:57] + "..."


def check_all(params, values, owner: str = "", each: bool = False) -> list[str]:
    """Every problem :meth:`Param.validate` finds in ``values`` (an object or a dict), one message
    each; with ``each``, one entry per parameter ("" where its value is fine)."""
    problems = []
    for prm in params:
        value = values.get(prm.name) if isinstance(values, dict) else getattr(values, prm.name)
        try:
            prm.validate(value, owner)
            problem = ""
        except ParamError as exc:
            problem = str(exc)
        if problem or each:
            problems.append(problem)
    return problems


def format_params(params: tuple[Param, ...], values: dict) -> str:
    """``eps=8/255 (0.0314), steps=10``: a parameter set for captions, logs and reports."""
    known = {p.name: p for p in params}
    return ", ".join(
        f"{k}={known[k].format(v)}" if k in known else f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in values.items()
    )
