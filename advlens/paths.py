"""Where advlens keeps its state: ``$ADVLENS_HOME`` (default ``~/.advlens``)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ASSETS_DIR = PROJECT_ROOT / "assets"
ASSET_MODELS_DIR = ASSETS_DIR / "models"


def home() -> Path:
    return Path(os.environ.get("ADVLENS_HOME") or Path.home() / ".advlens")


def user_models_dir() -> Path:
    return home() / "models"


def runs_dir() -> Path:
    return home() / "runs"
