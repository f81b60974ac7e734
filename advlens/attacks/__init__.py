"""Adversarial attacks: one small class per attack on a shared :class:`Attack` base.

>>> from advlens.attacks import ATTACKS, run_attack
>>> x_adv = ATTACKS["pgd"](model, eps=8 / 255, steps=10)(x, y)             # doctest: +SKIP
>>> result = run_attack(model, x, y, "pgd", eps=8 / 255, record=True)     # doctest: +SKIP

``ATTACKS`` maps a name to its class; ``cls.params()`` describes the parameters for UIs.
"""

from __future__ import annotations

from .apgd import APGD, APGDDLR, APGDDLRL2, APGDL2, APGDT, APGDTL2
from .base import PIXEL, Attack, AttackConfigError, Param, eval_mode
from .cw import CWL2
from .deepfool import DeepFool
from .fab import FABT, FABTL2
from .fgsm import FGSM
from .mifgsm import MIFGSM
from .minimal_eps import MinimalEps, find_minimal_eps
from .pgd import PGD, PGDL2
from .registry import ATTACKS, describe_attack, get_attack
from .result import AttackResult, attack_in_batches, run_attack
from .square import Square, SquareL2
from .stepll import StepLL
from .trajectory import Trajectory

__all__ = [
    "APGD",
    "APGDDLR",
    "APGDDLRL2",
    "APGDL2",
    "APGDT",
    "APGDTL2",
    "FABT",
    "FABTL2",
    "ATTACKS",
    "Attack",
    "AttackConfigError",
    "AttackResult",
    "CWL2",
    "DeepFool",
    "FGSM",
    "MIFGSM",
    "MinimalEps",
    "PGD",
    "PGDL2",
    "PIXEL",
    "Param",
    "Square",
    "SquareL2",
    "StepLL",
    "Trajectory",
    "attack_in_batches",
    "describe_attack",
    "eval_mode",
    "find_minimal_eps",
    "get_attack",
    "run_attack",
]
