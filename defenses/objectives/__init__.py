"""Training objectives, one module each. Importing this package registers them with
:mod:`advlens.training.objectives` (which imports it lazily). A new defense is one more module here,
imported below."""

from . import alp, clp, fast_at, fgsm_at, pgd_at, standard, trades
from . import attention as attention  # issue 6
from . import deep_defense as deep_defense
from . import feature_denoise as feature_denoise

__all__ = ["alp", "clp", "fast_at", "fgsm_at", "pgd_at", "standard", "trades"]
