"""The seed defenses through the trainer and the training page: a few steps each on digits."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch
from streamlit.testing.v1 import AppTest

from advlens.jobs.store import RunStore
from advlens.models import load_checkpoint, save_checkpoint
from advlens.training import jobs
from advlens.training.config import TrainConfig
from defenses.denoise_block import DenoiseBlock

ROOT = Path(__file__).resolve().parents[1]


def fixed_batch_config(objective: str, params: dict, **overrides) -> TrainConfig:
    """64 digits, 32 of them held out: every step trains on the same 32 images (no augmentation), so
    the logged loss is the loss of one fixed problem."""
    base = dict(
        objective=objective,
        objective_params=params,
        dataset="digits",
        epochs=6,
        batch_size=32,
        limit_train=64,
        val_size=32,
        eval_size=16,
        eval_steps=1,
        crop_padding=0,
        optimizer="adam",
        lr=2e-3,
        schedule="constant",
        log_every=1,
        test_eval=False,
        device="cpu",
    )
    base.update(overrides)
    return TrainConfig(**base)


@pytest.mark.slow
@pytest.mark.parametrize(
    "objective, params, overrides",
    [
        ("attention", {"snapshot_size": 4}, {}),
        ("feature_denoise", {"steps": 2, "operator": "nonlocal_dot", "stages": "conv2"}, {}),
        ("deep_defense", {"max_iter": 2, "candidates": 3, "rho_images": 8}, {"lr": 5e-4, "epochs": 4}),
    ],
)
def test_trainer_runs_each_seed_defense_and_its_loss_decreases(objective, params, overrides, digits_model, tmp_path):
    if objective == "deep_defense":  # fine-tuning a clean model, as the paper does
        overrides = dict(overrides, init_from=str(save_checkpoint(digits_model, tmp_path / "clean")))
    cfg = fixed_batch_config(objective, params, **overrides)
    rec = jobs.run_in_foreground(cfg, echo=False)
    assert rec.status == "done", rec.message
    m = RunStore().metrics(rec.id)
    losses = m["train/loss"]["value"]
    assert len(losses) == cfg.epochs and losses[-1] < 0.85 * losses[0], losses
    model, meta = load_checkpoint(rec.folder / "final.safetensors")
    assert meta["recipe"]["objective"] == objective
    if objective == "attention":
        assert len(m["attention/iou"]["value"]) == cfg.epochs
        assert all(0.0 <= v <= 1.0 for v in m["attention/iou"]["value"])
        png = rec.folder / "snapshots" / f"attention_epoch{cfg.epochs:03d}.png"
        img = cv2.imread(str(png))
        assert img is not None and img.shape[0] == 4 * 84 and img.shape[1] == 4 * 84 + 3 * 2
        info = json.loads(png.with_suffix(".json").read_text())
        assert len(info["iou"]) == 4 and info["epoch"] == cfg.epochs
    if objective == "feature_denoise":
        assert meta["arch"] == "small_cnn_denoise" and meta["arch_kwargs"]["stages"] == ["conv2"]
        assert isinstance(model.get_submodule("net.denoise.conv2"), DenoiseBlock)
        gamma = m["train/block_gamma"]["value"]
        assert gamma[0] == 0.0 and gamma[-1] > 0.0  # the blocks leave the identity as training goes
    if objective == "deep_defense":
        rho = m["deepfool/rho2"]["value"]
        assert len(rho) == cfg.epochs and all(0.0 < v < 1.0 for v in rho)
        assert m["train/rho"]["value"][-1] > m["train/rho"]["value"][0]  # the boundary moves away


def _submit_from_page(objective: str, hyper: dict) -> str:
    """Start ``objective`` from the training page's form with tiny limits; returns the run id."""
    at = AppTest.from_file(str(ROOT / "dashboard/training.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="tr_objective").select(objective).run()
    assert not at.exception, [e.value for e in at.exception]
    k = f"{objective}_digits"
    at.number_input(key=f"tr_epochs_{k}").set_value(1)
    at.number_input(key=f"tr_batch_{k}").set_value(16)
    at.number_input(key="tr_max_steps").set_value(2)
    at.number_input(key="tr_limit").set_value(96)
    at.number_input(key="tr_val").set_value(32)
    at.number_input(key="tr_eval_size").set_value(8)
    at.number_input(key="tr_eval_steps").set_value(1)
    for name, value in hyper.items():
        widget = at.get("number_input") + at.get("selectbox") + at.get("checkbox") + at.get("text_input")
        match = [w for w in widget if w.key == f"tr_hp_{k}_{name}"]
        assert match, f"no widget for {name}"
        match[0].set_value(value)
    next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    runs = RunStore().list_runs()
    assert runs and runs[0].objective == objective
    return runs[0].id


@pytest.mark.slow
@pytest.mark.parametrize(
    "objective, hyper",
    [
        ("attention", {"adversary": "pgd", "pgd_steps": 2, "snapshot_size": 2}),
        ("feature_denoise", {"steps": 2, "operator": "mean"}),
        ("deep_defense", {"max_iter": 2, "candidates": 3, "rho_images": 4}),
    ],
)
def test_training_page_starts_each_seed_defense(objective, hyper):
    run_id = _submit_from_page(objective, hyper)
    rec = jobs.wait(run_id, timeout=300)
    assert rec.status == "done", (rec.status, rec.message, (rec.folder / "worker.out").read_text()[-2000:])
    assert rec.config["objective"] == objective
    for name, value in hyper.items():
        assert rec.config["objective_params"][name] == value
    model, meta = load_checkpoint(rec.folder / "final.safetensors")
    assert meta["arch"] == ("small_cnn_denoise" if objective == "feature_denoise" else "small_cnn")
    assert torch.isfinite(model(torch.rand(2, 1, 28, 28))).all()
    # Deep Defense fine-tunes a clean model: the page preselects the shipped one; the others start fresh.
    assert rec.config["init_from"] == ("digits_small_cnn" if objective == "deep_defense" else "")
    assert meta["recipe"]["init_from"] == rec.config["init_from"]
