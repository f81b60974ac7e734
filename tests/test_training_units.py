"""Training building blocks: schedules, augmentation, the run store, optimiser-state files, config checks."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest
import torch

from advlens.jobs.store import RunStore, db_path, process_start
from advlens.training import schedule
from advlens.training.augment import Augment, random_crop, random_flip
from advlens.training.config import ConfigError, TrainConfig, validate
from advlens.training.objectives import get_objective, list_objectives
from advlens.training.state import optimizer_from_tensors, optimizer_to_tensors


def test_onecycle_matches_torch_onecyclelr_including_adam_beta1():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-3)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=100)
    for step in range(100):
        lr, beta1 = opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0]
        assert schedule.lr_at("onecycle", step, 100, 1e-3) == pytest.approx(lr, rel=1e-9, abs=1e-15)
        assert schedule.momentum_at("onecycle", step, 100, 0.9) == pytest.approx(beta1, rel=1e-9)
        opt.step()
        ref.step()


def test_other_schedules():
    assert schedule.lr_at("constant", 50, 100, 0.1) == 0.1
    assert schedule.lr_at("step", 49, 100, 0.1) == pytest.approx(0.1)
    assert schedule.lr_at("step", 50, 100, 0.1) == pytest.approx(0.01)
    assert schedule.lr_at("step", 80, 100, 0.1) == pytest.approx(0.001)
    assert schedule.lr_at("cosine", 0, 100, 0.1) == pytest.approx(0.1)
    assert schedule.lr_at("cosine", 50, 100, 0.1) == pytest.approx(0.05)
    assert schedule.lr_at("cyclic", 0, 100, 0.2) == 0.0
    assert schedule.lr_at("cyclic", 40, 100, 0.2) == pytest.approx(0.2)
    assert schedule.lr_at("cyclic", 70, 100, 0.2) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        schedule.lr_at("warp", 0, 10, 0.1)


def test_random_crop_is_a_per_image_shift_within_the_padding():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0  # a 2x2 blob in the middle
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))  # nothing falls off with shifts <= 2
    rows = out[:, 0].amax(dim=2).argmax(dim=1) - 3
    cols = out[:, 0].amax(dim=1).argmax(dim=1) - 3
    assert rows.abs().max() <= 2 and cols.abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # offsets differ between images
    assert torch.equal(random_crop(x, 0), x)


def test_random_flip_mirrors_about_half_the_images():
    x = torch.arange(8.0).view(1, 1, 1, 8).repeat(400, 3, 4, 1)
    out = random_flip(x, torch.Generator().manual_seed(1))
    flipped = (out[:, 0, 0, 0] == 7).float().mean()
    assert 0.4 < float(flipped) < 0.6
    assert torch.equal(out[out[:, 0, 0, 0] == 7], x.flip(-1)[: int((out[:, 0, 0, 0] == 7).sum())])
    assert Augment(2, False).describe() == "random crop, padding 2px"


def test_store_is_wal_and_round_trips_runs_and_metrics():
    store = RunStore()
    rec = store.create_run(TrainConfig().to_dict(), "cpu")
    assert rec.status == "queued" and rec.folder.joinpath("config.json").is_file()
    with sqlite3.connect(db_path()) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.log_metrics(rec.id, 5, 0.5, {"train/loss": 1.5, "lr": float("nan")}, progress={"step": 5})
    store.log_metrics(rec.id, 10, 1.0, {"train/loss": 1.0})
    m = store.metrics(rec.id)
    assert m["train/loss"]["step"] == [5, 10] and m["train/loss"]["value"] == [1.5, 1.0]
    assert m["lr"]["value"] == [None]
    assert store.get(rec.id).step == 5
    store.truncate_metrics(rec.id, 5)
    assert store.metrics(rec.id)["train/loss"]["step"] == [5]


def test_scheduler_runs_one_job_per_device_first_come_first_served():
    store = RunStore()
    a = store.create_run(TrainConfig().to_dict(), "cpu")
    b = store.create_run(TrainConfig().to_dict(), "cpu")
    c = store.create_run(TrainConfig().to_dict(), "cuda:0")
    assert store.claim(b.id) == "wait"  # a was queued first
    assert store.claim(a.id) == "started"
    assert store.claim(a.id) == "running"  # a second worker must not start it again
    assert store.claim(b.id) == "wait" and store.position_in_queue(b.id) == 1
    assert store.claim(c.id) == "started"  # another device is free
    store.finish(a.id, "done")
    assert store.claim(b.id) == "started"
    with pytest.raises(KeyError):
        store.claim("nope")


def test_cancel_while_queued_is_immediate_and_dead_workers_are_reaped():
    store = RunStore()
    a = store.create_run(TrainConfig().to_dict(), "cpu")
    assert store.request_cancel(a.id).status == "cancelled"
    b = store.create_run(TrainConfig().to_dict(), "cpu")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.attach_worker(b.id, proc.pid)  # the pid is gone already
    assert process_start(proc.pid) is None
    assert store.claim(b.id) == "failed"  # claim reaps first
    rec = store.get(b.id)
    assert "killed or crashed" in rec.message
    live = store.create_run(TrainConfig().to_dict(), "cpu")
    store.attach_worker(live.id, os.getpid())
    assert store.reap_dead() == [] and store.get(live.id).status == "queued"


def test_optimizer_state_round_trips_through_tensors_and_json():
    model = torch.nn.Linear(3, 2)
    for opt in (torch.optim.Adam(model.parameters(), lr=1e-3), torch.optim.SGD(model.parameters(), 0.1, 0.9)):
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        tensors, meta = optimizer_to_tensors(opt.state_dict())
        assert all(isinstance(v, torch.Tensor) for v in tensors.values())
        restored = optimizer_from_tensors(tensors, json.loads(json.dumps(meta)))
        fresh = type(opt)(model.parameters(), lr=0.5)
        fresh.load_state_dict(restored)
        for k, slot in opt.state_dict()["state"].items():
            for name, v in slot.items():
                assert torch.equal(fresh.state_dict()["state"][k][name], v)
        assert fresh.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"objective": "magic"}, "unknown objective 'magic'"),
        ({"eps": -0.1}, "eps must be >= 0.0"),
        ({"dataset": "mnist", "data_root": "/nonexistent/mnist"}, "does not exist"),
        ({"dataset": "mnist"}, "not available offline"),
        ({"dataset": "folder", "data_root": "/nonexistent/images"}, "does not exist"),
        ({"dataset": "folder"}, "needs a folder"),
        ({"optimizer": "lion"}, "optimizer must be one of sgd, adam"),
        ({"arch": "vgg"}, "unknown architecture"),
        ({"objective": "pgd_at", "objective_params": {"steps": 0}}, "steps must be >= 1"),
        ({"objective": "trades", "objective_params": {"gamma": 1}}, "unknown hyperparameter"),
    ],
)
def test_bad_configs_are_refused_with_a_clear_message(change, message):
    cfg = TrainConfig.from_dict({**TrainConfig().to_dict(), **change})
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_config_round_trips_and_rejects_unknown_keys(tmp_path):
    cfg = TrainConfig(objective="trades", eps=8 / 255, objective_params={"beta": 3.0})
    path = tmp_path / "cfg.json"
    path.write_text(cfg.to_json())
    assert TrainConfig.from_json_file(path) == cfg
    with pytest.raises(ConfigError, match="unknown configuration key"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(ConfigError, match="epochs must be of type int"):
        TrainConfig.from_dict({"epochs": "three"})


def test_registry_lists_every_objective_with_formula_source_and_defaults():
    names = {cls.name for cls in list_objectives()}
    assert {"standard", "fgsm_at", "pgd_at", "fast_at", "trades", "alp", "clp"} <= names
    for cls in list_objectives():
        assert cls.title and cls.formula and cls.source
        assert all(h.help for h in cls.hyperparams)
    assert get_objective("pgd_at").defaults("mnist") == {"steps": 40, "alpha": 0.01, "random_start": True}
    assert get_objective("pgd_at").defaults("cifar10")["alpha"] == pytest.approx(2 / 255)
    trades = get_objective("trades").defaults("digits")
    assert trades["beta"] == 6.0 and trades["init_std"] == 0.001
    assert get_objective("fgsm_at").defaults()["a"] == 0.5
    assert get_objective("fast_at").defaults()["alpha_ratio"] == 1.25


def test_an_adversarially_trained_checkpoint_reports_its_training_budget(tmp_path):
    """The Attack Lab and the lens pages suggest the trained eps of a defended model."""
    from advlens.models import build_model, load_checkpoint, save_checkpoint
    from advlens.zoo import load_model, trained_linf_eps

    def saved(recipe):
        """A checkpoint whose recipe says what the trainer writes for this objective and eps."""
        if recipe.get("objective"):
            try:
                cls = get_objective(recipe["objective"])
                recipe["adversarial"] = cls({}, TrainConfig(objective=cls.name, eps=recipe["eps"])).budget_record()
            except KeyError:
                pass
        path = save_checkpoint(build_model("small_cnn"), tmp_path / f"m{len(list(tmp_path.iterdir()))}", recipe=recipe)
        return load_checkpoint(path)[0]

    assert trained_linf_eps(saved({"objective": "pgd_at", "eps": 0.15})) == 0.15
    assert trained_linf_eps(saved({"objective": "trades", "eps": 8 / 255})) == pytest.approx(8 / 255)
    assert trained_linf_eps(saved({"objective": "standard", "eps": 0.3})) is None
    assert trained_linf_eps(saved({"objective": "deep_defense", "eps": 0.3})) is None  # no budget
    assert trained_linf_eps(saved({"objective": "gone", "eps": 0.3})) is None
    assert trained_linf_eps(saved({})) is None
    assert trained_linf_eps(load_model("efficientnet_lite0", "cpu")) is None
    assert trained_linf_eps(load_model("digits_small_cnn", "cpu")) is None
