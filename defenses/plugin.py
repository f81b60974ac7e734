"""The advlens plugin of this package (entry point ``advlens.plugins``, see :mod:`advlens.plugins`)."""

from __future__ import annotations


def register() -> None:
    """Register the defended architectures, the training objectives and the input transforms with advlens."""
    from . import denoise_block, objectives, transforms  # noqa: F401  (importing a module registers what it defines)
