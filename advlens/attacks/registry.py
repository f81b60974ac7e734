"""The registry of attacks: name -> class."""

from __future__ import annotations

from ..params import format_params
from .apgd import APGD, APGDDLR
from .base import Attack, AttackConfigError
from .cw import CWL2
from .deepfool import DeepFool
from .fgsm import FGSM
from .mifgsm import MIFGSM
from .pgd import PGD, PGDL2
from .square import Square
from .stepll import StepLL

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls for cls in (FGSM, PGD, PGDL2, MIFGSM, StepLL, DeepFool, CWL2, Square, APGD, APGDDLR)
}


def get_attack(name: str) -> type[Attack]:
    """The attack class registered as ``name``; :class:`AttackConfigError` when unknown."""
    try:
        return ATTACKS[name]
    except KeyError:
        raise AttackConfigError(f"unknown attack {name!r}; available: {', '.join(ATTACKS)}") from None


def describe_attack(name: str, params: dict) -> str:
    """``eps=8/255 (0.0314), steps=10``: an attack's settings for captions and reports."""
    cls = ATTACKS.get(name)
    return format_params(cls.params() if cls is not None else (), params)
