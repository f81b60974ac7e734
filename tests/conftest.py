"""Shared fixtures. Every test runs with its own ADVLENS_HOME so nothing touches ~/.advlens."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ADVLENS_SHARED_DATA", ROOT.parent / "shared" / "data"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLENS_HOME", str(tmp_path / "advlens_home"))
    monkeypatch.setenv("ADVLENS_DATA_DIR", str(tmp_path / "advlens_data"))
    monkeypatch.chdir(ROOT)
    yield


@pytest.fixture(scope="session")
def digits_model():
    from advlens.zoo import load_model

    return load_model("digits_small_cnn", device="cpu")


@pytest.fixture(scope="session")
def lite0():
    from advlens.zoo import load_model

    return load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def digits_test():
    from advlens.data import load_digits

    return load_digits("test")


@pytest.fixture
def shared_mnist() -> Path:
    path = SHARED_DATA / "mnist"
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found in {path}")
    return path
