"""Universal adversarial perturbations and adversarial patches: jobs that make them, saved ones, and their
fooling rate on held-out images. The methods are in :mod:`advlens.attacks.universal` and
:mod:`advlens.attacks.patch`."""

from .saved import PerturbationError, SavedPerturbation, list_saved, load

__all__ = ["PerturbationError", "SavedPerturbation", "list_saved", "load"]
