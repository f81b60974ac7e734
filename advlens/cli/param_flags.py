"""Command-line flags made from :class:`advlens.params.Param` declarations: one flag per field.

:func:`add_param_flags` adds each parameter's flags (``Param.cli_flags``: ``--batch-size`` for
``batch_size`` unless the declaration names others) with ``default=None``, so a command can tell a
flag given from one left out; :func:`given_values` reads back the values given. The flags only
convert text to the field's kind (``--eps`` reads ``8/255`` or ``0.0314``); ranges and choices are
checked by the configuration's own validation, with its messages.

Kinds: a bool gets ``--x`` and ``--no-x`` (its further flags turn it off, e.g. ``--plain``); a
``dict`` takes ``KEY=VALUE`` and repeats (``--param beta=6 --param steps=10``); a ``list`` repeats
and splits at commas; a ``tuple`` of numbers is written ``0.5,0.75``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..params import REQUIRED, Param, ParamError, key_values


def dest_of(prm: Param, prefix: str = "") -> str:
    """``prefix + name``; without a prefix, argparse's own dest of the first flag (``--model`` -> model)."""
    return f"{prefix}{prm.name}" if prefix else prm.cli_flags[0].lstrip("-").replace("-", "_")


def _converter(prm: Param):
    """argparse ``type=``: the text as the parameter's kind, without the range check."""
    loose = replace(prm, min=None, max=None, choices=(), optional=False)

    def convert(text: str):
        try:
            return loose.parse(text)
        except ParamError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = prm.kind.__name__  # argparse names the type in its message
    return convert


def _metavar(prm: Param) -> str:
    return prm.cli_flags[0].lstrip("-").replace("-", "_").upper()


def _help(prm: Param) -> str:
    text = prm.help or prm.label or prm.name
    if prm.kind in (dict, list):
        text += " (repeatable" + (", KEY=VALUE" if prm.kind is dict else ", or comma-separated") + ")"
    if prm.choices and not all(str(c) in text for c in prm.choices):
        text += f" (one of: {', '.join(map(str, prm.choices))})"
    if prm.kind is not bool and prm.default not in (None, "", {}, (), REQUIRED) and not isinstance(prm.default, list):
        text += f" (default {prm.text(prm.default) if prm.kind is not dict else prm.default})"
    return text.replace("%", "%%")


def add_param_flags(parser, params, prefix: str = "", skip: tuple[str, ...] = (), defaults: bool = False) -> None:
    """Add the flags of ``params`` (those not named in ``skip``) to ``parser`` (dest: :func:`dest_of`).

    A flag left out reads None, or with ``defaults`` the field's default (for code that reads
    ``args`` directly)."""
    for prm in params:
        if prm.name in skip:
            continue
        flags, dest = prm.cli_flags, dest_of(prm, prefix)
        plain = prm.default if defaults and prm.default is not REQUIRED and prm.kind not in (dict, list) else None
        if prm.kind is bool:
            parser.add_argument(
                flags[0], dest=dest, action=argparse.BooleanOptionalAction, default=plain, help=_help(prm)
            )
            for off in flags[1:]:
                parser.add_argument(off, dest=dest, action="store_false", help=f"the same as --no-{flags[0][2:]}")
        elif prm.kind is dict:
            parser.add_argument(*flags, dest=dest, action="append", default=None, metavar="KEY=VALUE", help=_help(prm))
        elif prm.kind is list:
            parser.add_argument(
                *flags, dest=dest, action="append", default=None, metavar=_metavar(prm), help=_help(prm)
            )
        else:
            parser.add_argument(
                *flags, dest=dest, type=_converter(prm), default=plain, metavar=_metavar(prm), help=_help(prm)
            )


def given_values(args, params, prefix: str = "", skip: tuple[str, ...] = ()) -> dict:
    """The values of the flags of ``params`` given on the command line, in each field's kind.

    A dict flag's ``KEY=VALUE`` items become a dict (a value is read as JSON when it can be: ``6``
    is a number, ``true`` a boolean); a list flag's values are split at commas. Raises
    :class:`ParamError` for a dict item without ``=``."""
    out = {}
    for prm in params:
        if prm.name in skip:
            continue
        value = getattr(args, dest_of(prm, prefix), None)
        if value is None:
            continue
        if prm.kind is dict:
            value = key_values(value, f"{prm.cli_flags[0]} takes KEY=VALUE, not ")
        elif prm.kind is list:
            texts = value if isinstance(value, list) else [value]  # a command may set it itself
            value = [t.strip() for text in texts for t in str(text).split(",") if t.strip()]
        out[prm.name] = value
    return out


def flag_owner(parser) -> dict[str, str]:
    """option string -> dest, for every option of ``parser`` (tests check that each field has a flag)."""
    return {opt: action.dest for action in parser._actions for opt in action.option_strings}
