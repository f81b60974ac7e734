"""The code base passes ruff with the settings in pyproject.toml."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest


def test_ruff_is_clean():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "advlens",
            "defenses",
            "dashboard",
            "tests",
            "bench",
            "streamlit_app.py",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_advlens_does_not_import_defenses():
    """The engine must not depend on the defenses package (the trainer registry loads it lazily)."""
    code = (
        "import sys, advlens.zoo, advlens.data, advlens.models, advlens.cli; "
        "assert not any(m == 'defenses' or m.startswith('defenses.') for m in sys.modules), 'defenses imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
