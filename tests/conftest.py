"""Shared fixtures. Every test runs with its own ADVLENS_HOME so nothing touches ~/.advlens."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ADVLENS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _threads_per_worker() -> int:
    """The cores each test process may use: all of them (at most 2) alone; under pytest-xdist
    (``-n auto``, the README's command) the cores shared out over the workers, so two workers on a
    2-core machine do not oversubscribe it. Subprocesses a test starts (job workers, torchrun ranks,
    a streamlit server) inherit the same share through ``OMP_NUM_THREADS``."""
    cores = os.cpu_count() or 1
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    return max(1, min(2, cores // max(1, workers)))


_THREADS = _threads_per_worker()
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)
torch.set_num_threads(_THREADS)


@pytest.fixture(autouse=True, scope="session")
def _one_component_scan():
    """Scan the installed packages for Streamlit components once per test session.

    Every ``AppTest`` instance builds a component registry from
    ``streamlit.components.v2.manifest_scanner.scan_component_manifests``, which reads the
    metadata of every installed distribution: 0.1-0.4 s on an idle machine, 3-4 s on a loaded
    one, the largest cost of a page test. The installed packages do not change during a test
    session, so the scan's result is memoised for the session (the registry itself is still built
    fresh for each AppTest).
    """
    import functools

    from streamlit.components.v2 import manifest_scanner

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            manifest_scanner, "scan_component_manifests", functools.cache(manifest_scanner.scan_component_manifests)
        )
        yield


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLENS_HOME", str(tmp_path / "advlens_home"))
    monkeypatch.setenv("ADVLENS_DATA_DIR", str(tmp_path / "advlens_data"))
    monkeypatch.setenv("ADVLENS_AUTO_EVALUATE", "0")  # test_evaluation_jobs turns it on where it is tested
    monkeypatch.chdir(ROOT)
    yield


@pytest.fixture(scope="session")
def digits_model():
    from advlens.zoo import load_model

    return load_model("digits_small_cnn", device="cpu")


@pytest.fixture(autouse=True)
def _shared_model_stays_read_only(request):
    """The session's ``digits_model`` stands for a model cached for all app sessions: a test that
    used it fails if it left gradients, hooks or training mode behind on it."""
    yield
    if "digits_model" not in request.fixturenames:
        return
    model = request.getfixturevalue("digits_model")
    grads = [n for n, p in model.named_parameters() if p.grad is not None]
    hooks = [n for n, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks]
    assert not grads and not hooks and not model.training, (grads[:3], hooks[:3], model.training)


@pytest.fixture(scope="session")
def digits_reference():
    """A private copy of the digits model for reference implementations (pyautoattack calls
    ``backward()`` and leaves gradients on the parameters), so they never touch ``digits_model``."""
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
