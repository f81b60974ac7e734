"""The shipped zoo: MNIST and CIFAR-10 models with recipes and metrics, the sample images, and the
``build-model`` / ``build-samples`` commands that rebuild them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from advlens.data import DATASETS, DataError, load_dataset
from advlens.data.samples import first_per_class, load_samples
from advlens.models import build_model
from advlens.models.registry import arch_options_problem
from advlens.training.config import ConfigError, TrainConfig, validate
from advlens.training.shipped import RECIPES
from advlens.zoo import list_models, load_model
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SHIPPED = tuple(RECIPES)


def test_assets_stay_under_20_mb():
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total < 20e6, f"assets/ holds {total / 1e6:.1f} MB"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_has_recipe_metrics_and_half_weights(name):
    meta = json.loads((ASSETS / "models" / f"{name}.json").read_text())
    recipe, metrics = meta["recipe"], meta["metrics"]
    assert recipe["command"] == f"python -m advlens build-model {name}"
    assert recipe["why"] and recipe["objective"] == RECIPES[name].settings["objective"]
    assert metrics["test_images"] == 10_000
    assert metrics["robust"], "a robust accuracy from the standard suite"
    for r in metrics["robust"]:
        assert r["suite"] == "standard" and "APGD-CE" in r["protocol"] and r["n"] >= 500
        lo, hi = r["robust_interval_95"]
        assert lo <= r["robust_accuracy"] <= hi
        if RECIPES[name].data == "cifar10-jpeg":  # class-sorted folders: a stratified sample of every class
            assert r["subset"]["rule"] == "stratified" and r["subset"]["classes_covered"] == 10, r.get("subset")
            assert "class-stratified sample" in r["protocol"] and min(r["subset"]["class_counts"].values()) >= 50
    with safe_open(str(ASSETS / "models" / f"{name}.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    if metrics["weights"].startswith("float16"):
        assert "F16" in dtypes and "F32" not in dtypes
        assert abs(metrics["test_accuracy"] - metrics["test_accuracy_float32"]) < 0.001
    model = load_model(name, "cpu")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # cast back on load


def test_shipped_models_meet_their_targets():
    def meta(name):
        return json.loads((ASSETS / "models" / f"{name}.json").read_text())["metrics"]

    assert meta("mnist_small_cnn")["test_accuracy"] >= 0.98
    robust = meta("mnist_small_cnn_pgd_at")
    assert robust["test_accuracy"] >= 0.98
    assert meta("cifar10_resnet20")["test_accuracy"] > meta("cifar10_resnet20_fast_at")["test_accuracy"]
    at_eps = {round(r["eps"] * 255): r["robust_accuracy"] for r in meta("cifar10_resnet20_fast_at")["robust"]}
    std_eps = {round(r["eps"] * 255): r["robust_accuracy"] for r in meta("cifar10_resnet20")["robust"]}
    assert at_eps[8] > std_eps[8] + 0.2  # adversarial training buys robustness at 8/255


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_classify_the_shipped_samples(name):
    model = load_model(name, "cpu")
    ds = load_dataset("cifar10_samples" if model.input_size[0] == 3 else "mnist_samples")
    with torch.no_grad():
        acc = float((model(ds.images).argmax(1) == ds.labels).float().mean())
    assert acc >= (0.9 if model.input_size[0] == 1 else 0.5), acc
    assert model.spec.dataset in ("mnist", "cifar10")


def test_zoo_lists_the_shipped_models():
    names = {e.name for e in list_models()}
    assert set(SHIPPED) <= names and "digits_small_cnn" in names


def test_sample_sets_ship_ten_per_class_round_robin():
    for name in ("mnist_samples", "cifar10_samples"):
        ds = load_dataset(name)
        assert len(ds) == 100 and ds.pixels.dtype == torch.uint8
        assert torch.bincount(ds.labels, minlength=10).tolist() == [10] * 10
        assert ds.labels[:10].tolist() == sorted(ds.labels[:10].tolist()) or len(set(ds.labels[:10].tolist())) == 10
        assert len(set(ds.item_names)) == 100
        assert not DATASETS[name].trainable and DATASETS[name].offline
    assert sum(p.stat().st_size for p in (ASSETS / "samples").iterdir()) < 1e6


def test_first_per_class_takes_classes_in_turn():
    labels = torch.tensor([1, 1, 0, 2, 0, 1, 2, 2, 0])
    assert first_per_class(labels, 2).tolist() == [2, 0, 3, 4, 1, 6]


def test_a_tampered_sample_file_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.array([object()], dtype=object), allow_pickle=True)
    (tmp_path / "mnist_samples.npz").write_bytes((tmp_path / "x.npy").read_bytes())
    load_samples.cache_clear()
    with pytest.raises(DataError, match="cannot be read|malformed"):
        load_samples("mnist_samples", tmp_path)
    load_samples.cache_clear()


def test_sample_sets_cannot_be_trained_on():
    with pytest.raises(ConfigError, match="without a training split"):
        validate(TrainConfig(dataset="mnist_samples"))


def test_resnet20_is_the_027m_cifar_variant():
    model = build_model("resnet20")
    assert sum(p.numel() for p in model.parameters()) == 269_722
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert model.default_cam_layer() == "net.layer3"


def test_arch_options_are_checked_without_allocating():
    assert arch_options_problem("small_cnn", {"hidden": 512}) == ""
    assert "no option 'width'" in arch_options_problem("small_cnn", {"width": 3})
    assert "from 8 to 4096" in arch_options_problem("small_cnn", {"hidden": 0})
    assert "no option" in arch_options_problem("resnet20", {"hidden": 8})
    with pytest.raises(ConfigError, match="arch_kwargs"):
        validate(TrainConfig(arch_kwargs={"hidden": -1}), check_data=False)
    small = build_model("small_cnn", arch_kwargs={"hidden": 16})
    assert small.net.fc1.out_features == 16


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist is missing")
def test_build_model_packages_weights_with_half_precision(tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "advlens",
        "build-model",
        "mnist_small_cnn",
        "--from-checkpoint",
        str(ASSETS / "models" / "mnist_small_cnn.safetensors"),
        "--data-root",
        str(SHARED_DATA / "mnist"),
        "--n",
        "16",
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    meta = json.loads((out / "mnist_small_cnn.json").read_text())
    shipped = json.loads((ASSETS / "models" / "mnist_small_cnn.json").read_text())
    assert meta["metrics"]["test_accuracy"] == pytest.approx(shipped["metrics"]["test_accuracy"], abs=1e-6)
    assert meta["metrics"]["weights_digest"] == shipped["metrics"]["weights_digest"]
    assert [r["n"] for r in meta["metrics"]["robust"]] == [16]
    assert "robust" in done.stdout and "float16" in done.stdout


def test_build_model_refuses_unknown_names_and_foreign_evaluations(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "advlens", "build-model", "nope"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 2 and "no shipped recipe" in done.stderr + done.stdout


def test_zoo_shows_the_shipped_evaluation_with_its_protocol():
    from advlens.evaluation.known import evaluation_of
    from advlens.zoo import get_entry

    for name in SHIPPED:
        text = evaluation_of(get_entry(name))
        assert text and "shipped with the model" in text and "AutoAttack" in text and "n = " in text
