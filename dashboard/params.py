"""Controls for :class:`advlens.params.Param` descriptors, and the one L-inf budget input.

Every page builds its settings from the engine's descriptors through :func:`param_inputs`, so a
parameter looks and reads the same on each page. An L-inf budget is a text field that takes
``8/255`` or ``0.0314`` and shows what it read in the one display form, ``8/255 (0.0314)``
(:func:`advlens.budget.format_linf`). Values go to the engine in its own units ([0, 1]).
"""

from __future__ import annotations

import math

import streamlit as st

from advlens.budget import format_linf
from advlens.params import PIXEL, Param, ParamError

# The budget field of pages that attack with a fixed method. No range here: the engine call that
# takes the budget (an attack, a training config) checks it and says what is wrong in its own words.
LINF_EPS = Param("eps", float, 8 / 255, None, None, PIXEL, "L-inf budget: the largest change of any pixel")


def uses_text(prm: Param) -> bool:
    """Budgets (two written forms), optional numbers (blank: auto), dicts (``hidden=512`` or JSON) and
    lists of numbers (``0.5, 0.75``) are text fields."""
    return (prm.kind is float and (prm.is_budget or prm.optional)) or prm.kind in (dict, tuple, list)


def state_value(prm: Param, value):
    """``value`` (engine units) as the widget of ``prm`` holds it in session state."""
    if uses_text(prm) or value is None:
        return prm.text(value)
    if prm.kind is float:
        return float(value)
    if prm.kind is int:
        return int(value)
    if prm.kind is bool:
        return bool(value)
    return value


def label_of(prm: Param) -> str:
    if prm.label and not prm.is_budget:
        return prm.label
    if prm.is_budget:
        return f"{prm.name} (L-inf: 8/255 or 0.0314)"
    if prm.unit == "L2":
        return f"{prm.name} (L2)"
    return prm.name


def param_input(
    prm: Param,
    key: str,
    default=None,
    container=None,
    label: str | None = None,
    help: str | None = None,
    choices=None,
    format_func=None,
    bounded: bool = False,
):
    """One widget for ``prm``; returns its value in engine units or raises :class:`ParamError`.

    The widget starts at ``default`` (engine units; the descriptor's default when None) unless
    ``st.session_state[key]`` already holds a value (a link or an earlier run set it). ``choices``
    (and their ``format_func``) replace the descriptor's, e.g. the models of the zoo; ``bounded``
    gives a number field the descriptor's range (the value cannot leave it).
    """
    box = container if container is not None else st
    if key not in st.session_state:
        st.session_state[key] = state_value(prm, prm.default if default is None else default)
    text = label or label_of(prm)
    tip = (help if help is not None else prm.help) + (" Leave blank for auto." if prm.optional else "")
    options = list(prm.choices if choices is None else choices)
    if uses_text(prm):
        blank = "auto" if prm.optional and prm.kind is float else None
        raw = box.text_input(text, key=key, help=tip, placeholder=blank)
        value = prm.parse(raw)
        if prm.is_budget and value is not None:
            box.caption(f"budget {format_linf(value)}")
        return value
    if prm.kind is bool:
        return prm.validate(box.checkbox(text, key=key, help=tip))
    if options:
        fmt = {"format_func": format_func} if format_func is not None else {}
        return prm.validate(box.selectbox(text, options, key=key, help=tip, **fmt))
    limits = {}
    if bounded and prm.is_number:
        limits = {"min_value": prm.kind(prm.min) if prm.min is not None else None}
        limits["max_value"] = prm.kind(prm.max) if prm.max is not None else None
    if prm.kind is int:
        return prm.validate(box.number_input(text, step=1, key=key, help=tip, **limits))
    if prm.kind is float:
        step = _step(st.session_state[key]) if bounded else 0.01
        return prm.validate(box.number_input(text, step=step, format="%g", key=key, help=tip, **limits))
    raw = (box.text_input(text, key=key, help=tip) or "").strip()
    return prm.parse(raw) if prm.optional else prm.validate(raw)


def _step(value) -> float:
    """The +/- step of a float field: one unit of its leading digit (0.001 for a learning rate of 1e-3)."""
    try:
        value = abs(float(value))
    except (TypeError, ValueError):
        return 0.01
    return 10.0 ** math.floor(math.log10(value)) if 0 < value < 1e6 else 0.01


def field_input(
    prm: Param,
    key: str,
    default=None,
    container=None,
    url_key: str | None = None,
    read_url: bool = True,
    choices=None,
    format_func=None,
    help: str | None = None,
):
    """:func:`param_input` for a configuration field whose value lives in the URL under ``url_key``
    (a link sets it; every run writes it back), with the field's range on number inputs. A linked
    value that cannot be read, or is not among ``choices``, is ignored. Raises :class:`ParamError`."""
    options = list(prm.choices if choices is None else choices)
    if key in st.session_state and options and st.session_state[key] not in options:
        del st.session_state[key]  # e.g. another dataset with other models: start from the default again
    if url_key and read_url and key not in st.session_state and url_key in st.query_params:
        try:
            value = prm.parse(st.query_params[url_key][:1000])
            if options and value not in options:
                raise ParamError(value)
            st.session_state[key] = state_value(prm, value)
        except ParamError:
            pass
    value = param_input(prm, key, default, container, help=help, choices=options, format_func=format_func, bounded=True)
    if url_key and value is not None:
        text = url_text(prm, value)
        if st.query_params.get(url_key, "") != text:
            st.query_params[url_key] = text
    return value


def url_text(prm: Param, value) -> str:
    """A parameter value as a link writes it (budgets as 8/255, booleans as 1/0)."""
    return ("1" if value else "0") if prm.kind is bool else prm.text(value)


def seed_from_url(params, prefix: str, url_prefix: str = "") -> None:
    """Seed the widgets ``{prefix}_{name}`` of ``params`` from the link's ``{url_prefix}{name}`` values
    (unless the session already holds them); a value that cannot be read is ignored, with a warning."""
    for prm in params:
        key, url_key = f"{prefix}_{prm.name}", f"{url_prefix}{prm.name}"
        if key in st.session_state or url_key not in st.query_params:
            continue
        try:
            st.session_state[key] = state_value(prm, prm.parse(st.query_params[url_key]))
        except ParamError:
            raw = st.query_params[url_key]
            shown = repr(raw) if len(raw) <= 60 else f"{raw[:40]!r}... ({len(raw):,} characters)"
            st.warning(f"Ignored {url_key}={shown} from the link (not a valid value).")


def write_to_url(params, values: dict, url_prefix: str = "") -> None:
    for prm in params:
        if values.get(prm.name) is not None:
            text = url_text(prm, values[prm.name])
            if st.query_params.get(f"{url_prefix}{prm.name}") != text:
                st.query_params[f"{url_prefix}{prm.name}"] = text


def param_inputs(params, prefix: str, defaults: dict | None = None, columns: int = 4) -> tuple[dict, list[str]]:
    """A row of widgets for ``params``; returns (values in engine units, every problem found)."""
    params = tuple(params)
    values, errors = {}, []
    if not params:
        return values, errors
    cols = st.columns(max(1, min(columns, len(params))))
    for i, prm in enumerate(params):
        try:
            values[prm.name] = param_input(
                prm, f"{prefix}_{prm.name}", (defaults or {}).get(prm.name), cols[i % len(cols)]
            )
        except ParamError as exc:
            errors.append(str(exc))
    return values, errors


def budget_input(key: str, default: float, container=None, label: str | None = None, help: str | None = None):
    """The L-inf budget field of pages that attack with a fixed method; None (with the reason shown)
    when the text cannot be read. Its text lives in the URL under ``key`` (a link sets it)."""
    if key not in st.session_state and st.query_params.get(key):
        st.session_state[key] = st.query_params[key][:64]
    try:
        value = param_input(LINF_EPS, key, default, container, label, help)
    except ParamError as exc:
        (container if container is not None else st).error(str(exc))
        return None
    if st.query_params.get(key) != st.session_state[key]:
        st.query_params[key] = st.session_state[key]
    return value
