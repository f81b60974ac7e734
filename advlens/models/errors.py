"""The error every checkpoint check raises (its own module: the schema and the loader share it)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A file that is not a valid advlens checkpoint. The message says why, for a person."""
