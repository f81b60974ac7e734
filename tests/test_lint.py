"""The code base passes ruff (lint and format) with the settings in pyproject.toml."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

TREE = ["advlens", "defenses", "dashboard", "tests", "bench", "streamlit_app.py"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed")
    return subprocess.run([sys.executable, "-m", "ruff", *args, "--no-cache", *TREE], capture_output=True, text=True)


def test_ruff_is_clean():
    out = _ruff("check")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_ruff_format_is_clean():
    out = _ruff("format", "--check")
    assert out.returncode == 0, "run `ruff format .`:\n" + out.stdout[-4000:] + out.stderr[-2000:]
