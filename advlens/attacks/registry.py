"""The registry of attacks: name -> class."""

from __future__ import annotations

from ..params import format_params
from ..registry import Registry
from .apgd import APGD, APGDDLR, APGDDLRL2, APGDL2, APGDT, APGDTL2
from .apgd_l1 import APGDDLRL1, APGDL1, APGDTL1
from .base import Attack, AttackConfigError
from .cw import CWL2
from .deepfool import DeepFool
from .fab import FABT, FABTL2
from .fab_l1 import FABTL1
from .fgsm import FGSM
from .fmn import FMNL0, FMNL1, FMNL2, FMNLinf
from .hopskipjump import HopSkipJump, HopSkipJumpLinf
from .input_diversity import DIFGSM, TIFGSM
from .mifgsm import MIFGSM
from .pgd import PGD, PGDL2
from .sparse_rs import SparseRS
from .square import Square, SquareL1, SquareL2
from .stepll import StepLL

ATTACKS: Registry[type[Attack]] = Registry(
    "attack",
    (
        FGSM,
        PGD,
        PGDL2,
        MIFGSM,
        StepLL,
        DeepFool,
        CWL2,
        Square,
        SquareL2,
        SquareL1,
        APGD,
        APGDDLR,
        APGDT,
        FABT,
        APGDL2,
        APGDDLRL2,
        APGDTL2,
        FABTL2,
        APGDL1,
        APGDDLRL1,
        APGDTL1,
        FABTL1,
        FMNL0,
        FMNL1,
        FMNL2,
        FMNLinf,
        SparseRS,
        HopSkipJump,
        HopSkipJumpLinf,
        DIFGSM,
        TIFGSM,
    ),
    AttackConfigError,
)


def get_attack(name: str) -> type[Attack]:
    """The attack class registered as ``name``; :class:`AttackConfigError` when unknown."""
    return ATTACKS.lookup(name)


def describe_attack(name: str, params: dict) -> str:
    """``eps=8/255 (0.0314), steps=10``: an attack's settings for captions and reports."""
    cls = ATTACKS.get(name)
    return format_params(cls.params() if cls is not None else (), params)
