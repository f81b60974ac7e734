"""The example plugin package in examples/ (issue 25): its architecture registers through the
plugin loader, appears in the zoo with a checkpoint of it, and loads; once from the source folder
on sys.path, once installed by pip (into a temporary folder, about 3 s)."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch

from advlens.models import build_model, save_checkpoint
from advlens.models.registry import ARCHITECTURES
from advlens.paths import user_models_dir
from advlens.plugins import GROUP, load_plugin, plugin_entry_points
from advlens.zoo import get_entry, list_models, load_model

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "advlens_plugin_example"
PACKAGE = "advlens_plugin_example"


@pytest.fixture
def clean_registry(monkeypatch):
    """Leave no trace: the example's architecture and module are removed after the test."""
    yield monkeypatch
    ARCHITECTURES.pop("example_mlp", None)
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def _declared_entry_point() -> EntryPoint:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    ((name, value),) = project["entry-points"][GROUP].items()
    return EntryPoint(name, value, GROUP)


def _zoo_round_trip() -> None:
    """A checkpoint of the plugin's architecture joins the zoo and loads with its weights."""
    torch.manual_seed(0)
    model = build_model("example_mlp", arch_kwargs={"hidden": 7}, class_names=tuple("abc"))
    save_checkpoint(model, user_models_dir() / "plugged.safetensors")
    entry = get_entry("plugged")
    assert (entry.arch, entry.source) == ("example_mlp", "imported")
    assert "plugged" in [e.name for e in list_models()]
    loaded = load_model("plugged", device="cpu")
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.net.body[1].out_features == 7


def test_example_registers_through_the_plugin_loader(clean_registry):
    assert "example_mlp" not in ARCHITECTURES
    clean_registry.syspath_prepend(str(EXAMPLE))
    load_plugin(_declared_entry_point())  # what advlens does with an installed plugin's entry point
    assert "example_mlp" in ARCHITECTURES
    _zoo_round_trip()


def test_pip_installed_example_is_found_by_its_entry_point(clean_registry, tmp_path):
    source = shutil.copytree(EXAMPLE, tmp_path / "src")  # pip builds in the source folder: not in the repo
    target = tmp_path / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run([*cmd, "--no-compile", "--target", str(target), str(source)], capture_output=True, text=True)
    if done.returncode != 0 and "No module named pip" in done.stderr:
        pytest.skip("pip is not available in this environment")
    assert done.returncode == 0, done.stderr[-2000:]
    clean_registry.syspath_prepend(str(target))
    importlib.invalidate_caches()
    found = {ep.name: ep for ep in plugin_entry_points()}
    assert found["example_mlp"].value == "advlens_plugin_example:register"
    load_plugin(found["example_mlp"])
    assert Path(sys.modules[PACKAGE].__file__).is_relative_to(target)  # the installed copy, not the source
    _zoo_round_trip()
