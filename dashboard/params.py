"""Controls for :class:`advlens.params.Param` descriptors, and the one L-inf budget input.

Every page builds its settings from the engine's descriptors through :func:`param_inputs`, so a
parameter looks and reads the same on each page. An L-inf budget is a text field that takes
``8/255`` or ``0.0314`` and shows what it read in the one display form, ``8/255 (0.0314)``
(:func:`advlens.budget.format_linf`). Values go to the engine in its own units ([0, 1]).
"""

from __future__ import annotations

import streamlit as st

from advlens.budget import format_linf
from advlens.params import PIXEL, Param, ParamError

# The budget field of pages that attack with a fixed method. No range here: the engine call that
# takes the budget (an attack, a training config) checks it and says what is wrong in its own words.
LINF_EPS = Param("eps", float, 8 / 255, None, None, PIXEL, "L-inf budget: the largest change of any pixel")


def uses_text(prm: Param) -> bool:
    """Budgets (two written forms) and optional numbers (blank: auto) are text fields."""
    return prm.kind is float and (prm.is_budget or prm.optional)


def state_value(prm: Param, value):
    """``value`` (engine units) as the widget of ``prm`` holds it in session state."""
    if uses_text(prm):
        return prm.text(value)
    if prm.kind is float:
        return float(value)
    if prm.kind is int:
        return int(value)
    if prm.kind is bool:
        return bool(value)
    return value


def label_of(prm: Param) -> str:
    if prm.is_budget:
        return f"{prm.name} (L-inf: 8/255 or 0.0314)"
    if prm.unit == "L2":
        return f"{prm.name} (L2)"
    return prm.name


def param_input(prm: Param, key: str, default=None, container=None, label: str | None = None, help: str | None = None):
    """One widget for ``prm``; returns its value in engine units or raises :class:`ParamError`.

    The widget starts at ``default`` (engine units; the descriptor's default when None) unless
    ``st.session_state[key]`` already holds a value (a link or an earlier run set it).
    """
    box = container if container is not None else st
    if key not in st.session_state:
        st.session_state[key] = state_value(prm, prm.default if default is None else default)
    text = label or label_of(prm)
    tip = (help if help is not None else prm.help) + (" Leave blank for auto." if prm.optional else "")
    if uses_text(prm):
        raw = box.text_input(text, key=key, help=tip, placeholder="auto" if prm.optional else None)
        value = prm.parse(raw)
        if prm.is_budget and value is not None:
            box.caption(f"budget {format_linf(value)}")
        return value
    if prm.kind is bool:
        return prm.validate(box.checkbox(text, key=key, help=tip))
    if prm.choices:
        return prm.validate(box.selectbox(text, list(prm.choices), key=key, help=tip))
    if prm.kind is int:
        return prm.validate(box.number_input(text, step=1, key=key, help=tip))
    if prm.kind is float:
        return prm.validate(box.number_input(text, step=0.01, format="%g", key=key, help=tip))
    return prm.validate(box.text_input(text, key=key, help=tip).strip())


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
            st.warning(f"Ignored {url_key}={st.query_params[url_key]!r} from the link (not a valid value).")


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
