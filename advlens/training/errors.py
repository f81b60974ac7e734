"""The error every training-configuration check raises (its own module, so the checks that need
other modules, such as ``init_from``, can raise it without importing the whole config)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A training configuration that cannot run. The message says what to change."""
