"""Training objectives, one module each. Importing this package registers them with
:mod:`advlens.training.objectives` (which imports it lazily). A new defense is one more module here,
imported below."""

from . import (
    alp,
    attention,
    clp,
    deep_defense,
    fast_at,
    feature_denoise,
    fgsm_at,
    gaussian_aug,
    pgd_at,
    standard,
    trades,
)

__all__ = [
    "alp",
    "attention",
    "clp",
    "deep_defense",
    "fast_at",
    "feature_denoise",
    "fgsm_at",
    "gaussian_aug",
    "pgd_at",
    "standard",
    "trades",
]
