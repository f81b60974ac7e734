"""Runs end to end: resume is exact, cancel and SIGTERM leave a consistent run, a killed worker is
detected, a kill during a save never corrupts a checkpoint, bad configs are refused up front, and a
finished run joins the model zoo."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from advlens.cli import main as cli_main
from advlens.jobs.store import RunStore, db_path, read_log_tail
from advlens.models import CheckpointError, load_checkpoint
from advlens.training import jobs
from advlens.training.config import ConfigError, TrainConfig
from advlens.training.objectives import EpochVerdict, register
from advlens.training.state import load_training_state, read_pointer
from defenses.objectives.standard import Standard

TINY = dict(
    dataset="digits",
    limit_train=256,
    val_size=32,
    batch_size=32,
    eval_size=32,
    eval_steps=2,
    log_every=2,
    test_eval=False,
)


@pytest.fixture(autouse=True)
def _no_stray_workers():
    """Kill the worker processes a test started and left running (e.g. when it failed)."""
    yield
    if not db_path().exists():
        return
    for rec in RunStore().list_runs(status=("queued", "running")):
        if rec.pid and rec.pid != os.getpid():
            try:
                os.kill(rec.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def tiny(**kw) -> TrainConfig:
    return TrainConfig.from_dict({**TrainConfig().to_dict(), **TINY, **kw})


def _weights(path):
    model, _ = load_checkpoint(path)
    return model.state_dict()


def _wait_for(predicate, timeout=180.0, poll=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("timed out")


def test_resume_continues_with_identical_step_optimizer_and_rng():
    """N steps straight == N/2 steps, interrupt, resume, N/2 steps: the same weights, bit for bit."""
    cfg = dict(objective="pgd_at", objective_params={"steps": 2, "alpha": 0.1}, eps=0.3, epochs=2, crop_padding=2)
    store = RunStore()
    straight = jobs.create(tiny(**cfg), store)
    assert jobs.execute(straight.id, store, echo=False).status == "done"
    split = jobs.create(tiny(**cfg), store)
    rec = jobs.execute(split.id, store, interrupt_at=5, echo=False)  # mid-epoch (7 steps per epoch)
    assert rec.status == "cancelled" and rec.step == 5
    assert read_pointer(rec.folder / "checkpoints")["step"] == 5
    store.requeue(split.id, "cpu")
    rec = jobs.execute(split.id, store, echo=False)
    assert rec.status == "done" and rec.step == 14
    assert "resumed from step 5" in read_log_tail(rec.log_path, 200)
    with pytest.raises(ValueError, match="is done; start a new run to train longer"):
        jobs.resume(rec.id, store)  # a finished run says what to do instead
    a, b = _weights(store.require(straight.id).final_path), _weights(rec.final_path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = load_training_state(store.require(straight.id).folder / "checkpoints")
    sb = load_training_state(rec.folder / "checkpoints")
    assert sa[1]["step"] == sb[1]["step"] == 14
    for idx, slot in sa[2]["state"].items():
        for name, value in slot.items():
            assert torch.equal(value, sb[2]["state"][idx][name]), (idx, name)
    assert torch.equal(sa[3]["rng.cpu.r0"], sb[3]["rng.cpu.r0"])
    # the metrics of the interrupted attempt were rewound, so the curves have no duplicates
    steps = store.metrics(rec.id, ["train/loss"])["train/loss"]["step"]
    assert steps == sorted(set(steps))


def test_finished_run_is_in_the_zoo_and_loads():
    from advlens.zoo import list_models, load_model

    store = RunStore()
    rec = jobs.execute(jobs.create(tiny(objective="standard", max_steps=4, eps=0.3), store).id, store, echo=False)
    assert rec.status == "done"
    entry = next(e for e in list_models() if e.source == "run")
    assert entry.name == f"run-{rec.id}-standard" and entry.arch == "small_cnn" and entry.dataset == "digits"
    assert "held-out PGD (upper bound)" in entry.description
    model = load_model(entry.name, device="cpu")
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    assert model.checkpoint_meta["recipe"]["objective"] == "standard"
    assert 0.0 <= model.checkpoint_meta["metrics"]["heldout_clean_accuracy"] <= 1.0


@register
class _GuardProbe(Standard):
    """Stops after the second epoch and asks for the weights from before it."""

    name = "test_guard_probe"
    may_restore_previous = True
    snapshots: dict = {}

    def on_epoch_end(self, ctx):
        _GuardProbe.snapshots[ctx.epoch] = {k: v.clone() for k, v in ctx.model.state_dict().items()}
        if ctx.epoch == 1:
            return EpochVerdict(metrics={"guard/pgd_acc": 0.0}, stop=True, restore_previous=True, message="probe")
        return EpochVerdict(metrics={"guard/pgd_acc": 0.5})


def test_an_objective_can_stop_training_and_restore_the_previous_epoch():
    store = RunStore()
    rec = jobs.execute(jobs.create(tiny(objective="test_guard_probe", epochs=4), store).id, store, echo=False)
    assert rec.status == "done" and rec.message == "probe" and rec.metrics["stopped_early"] == "probe"
    final = _weights(rec.final_path)
    kept = _GuardProbe.snapshots[0]
    assert all(torch.equal(final[k], kept[k]) for k in kept)
    assert not all(torch.equal(final[k], _GuardProbe.snapshots[1][k]) for k in kept)
    assert store.metrics(rec.id, ["guard/pgd_acc"])["guard/pgd_acc"]["value"] == [0.5, 0.0]


def test_a_second_run_on_the_same_device_waits_its_turn():
    import threading

    store = RunStore()
    first = jobs.create(tiny(objective="standard"), store)
    store.attach_worker(first.id, os.getpid())
    assert store.claim(first.id) == "started"  # the device is busy with "first"
    second = jobs.create(tiny(objective="standard", max_steps=2, eval_steps=0), store)
    done = {}
    worker = threading.Thread(target=lambda: done.setdefault("rec", jobs.execute(second.id, store, echo=False)))
    worker.start()
    _wait_for(lambda: "queued: 1 run(s) ahead" in read_log_tail(store.require(second.id).log_path), timeout=60)
    time.sleep(1.5)
    assert store.require(second.id).status == "queued" and worker.is_alive()
    store.finish(first.id, "cancelled", "made room")
    worker.join(timeout=120)
    assert done["rec"].status == "done" and done["rec"].step == 2


def _long_run() -> TrainConfig:
    return tiny(objective="standard", epochs=500, checkpoint_every=3, eval_steps=0)


def _running_with_steps(store, run_id, n=3):
    def check():
        rec = store.require(run_id)
        assert rec.status in ("queued", "running"), (rec.status, rec.message, read_log_tail(rec.log_path))
        return rec if rec.status == "running" and rec.step >= n else None

    return _wait_for(check)


def test_cancel_from_the_store_leaves_a_consistent_run():
    store = RunStore()
    rec = jobs.submit(_long_run(), store)
    assert rec.pid and rec.status in ("queued", "running")
    _running_with_steps(store, rec.id)
    jobs.cancel(rec.id, store)
    rec = jobs.wait(rec.id, timeout=120, store=store)
    assert rec.status == "cancelled", (rec.status, rec.message)
    assert f"at step {rec.step}/" in rec.message
    loaded = load_training_state(rec.folder / "checkpoints")
    assert loaded is not None and loaded[1]["step"] == rec.step
    model, meta = load_checkpoint(rec.folder / "checkpoints" / read_pointer(rec.folder / "checkpoints")["model"])
    assert meta["trainer_state"]["step"] == rec.step
    assert not (rec.folder / "final.safetensors").exists()
    assert _wait_for(
        lambda: (
            rec.pid
            and not os.path.exists(f"/proc/{rec.pid}")
            or open(f"/proc/{rec.pid}/stat").read().split(") ")[1][0] == "Z"
        ),
        timeout=30,
    )


def test_sigterm_cancels_gracefully_and_sigkill_is_detected_then_resumed():
    store = RunStore()
    rec = jobs.submit(_long_run(), store)
    _running_with_steps(store, rec.id)
    os.kill(rec.pid, signal.SIGTERM)
    rec = jobs.wait(rec.id, timeout=120, store=store)
    assert rec.status == "cancelled" and "SIGTERM" in rec.message

    rec = jobs.resume(rec.id, store)
    before = rec.step
    rec = _running_with_steps(store, rec.id, n=before + 3)
    os.kill(rec.pid, signal.SIGKILL)
    _wait_for(lambda: store.reap_dead() or store.require(rec.id).status == "failed", timeout=30)
    rec = store.require(rec.id)
    assert rec.status == "failed" and "killed or crashed" in rec.message
    ckpt = load_training_state(rec.folder / "checkpoints")
    assert ckpt is not None and ckpt[1]["step"] > before
    store.requeue(rec.id, "cpu")
    rec = jobs.execute(rec.id, store, interrupt_at=ckpt[1]["step"] + 2, echo=False)
    assert rec.status == "cancelled" and rec.step == ckpt[1]["step"] + 2
    assert f"resumed from step {ckpt[1]['step']}" in read_log_tail(rec.log_path, 400)


_SAVER = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    from advlens.models import build_model, save_checkpoint
    from advlens.training.state import save_training_state
    out = Path(sys.argv[1])
    model = build_model("small_cnn")
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 1, 28, 28)).sum().backward()
    opt.step()
    print("ready", flush=True)
    step = 0
    while True:
        step += 1
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01)
        save_checkpoint(model, out / "model.safetensors", metrics={"step": step})
        save_training_state(out / "ckpts", model, opt, {"step": step}, {"rng.cpu.r0": torch.get_rng_state()})
""")


def test_sigkill_during_saves_never_leaves_a_corrupt_checkpoint(tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(os.getcwd())}
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        path = tmp_path / "model.safetensors"
        if path.exists():
            model, meta = load_checkpoint(path)  # must not raise
            assert meta["metrics"]["step"] >= 1
        state = load_training_state(tmp_path / "ckpts")
        if state is not None:
            model, trainer_state, optim, _ = state
            assert optim["state"] and trainer_state["step"] >= 1
        elif round_ > 0:
            pytest.fail("a completed training checkpoint disappeared")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_submit_checks_the_config_once_and_queues_it_on_its_device(monkeypatch):
    """The checks (which may load an init_from model) run once per submit; the row is what create makes."""
    checked, launched = [], []
    real = jobs.validate
    monkeypatch.setattr(jobs, "validate", lambda cfg: checked.append(cfg.objective) or real(cfg))
    monkeypatch.setattr(jobs, "spawn_worker", lambda run_id, command, store=None: launched.append(command) or 0)
    store = RunStore()
    rec = jobs.submit(tiny(objective="standard"), store)
    assert checked == ["standard"] and launched == [jobs.worker_command(rec.id)]
    assert rec.status == "queued" and rec.device == "cpu" and rec.config["device"] == "cpu"
    assert rec.meta == {"title": "standard · small_cnn on digits", "module": "advlens.training.jobs"}
    made = jobs.create(tiny(objective="standard", seed=1), store)
    assert checked == ["standard", "standard"] and made.kind == "train" and made.objective == "standard"
    assert {k: v for k, v in made.config.items() if k != "seed"} == {k: v for k, v in rec.config.items() if k != "seed"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--objective", "magic"], "unknown objective 'magic'"),
        (["--objective", "pgd_at", "--eps", "-0.1"], "eps must be >= 0.0"),
        (["--dataset", "mnist", "--data-root", "/nonexistent/mnist"], "/nonexistent/mnist does not exist"),
        (["--dataset", "cifar10"], "not available offline"),
    ],
)
def test_bad_config_is_refused_before_any_work(argv, message, capsys):
    assert cli_main(["train", *argv, "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert not db_path().exists() or RunStore().list_runs() == []
    with pytest.raises(ConfigError):
        jobs.submit(TrainConfig(objective="magic"))
    assert not db_path().exists() or RunStore().list_runs() == []


def test_cli_trains_from_a_config_file_and_lists_runs(tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(tiny(objective="fast_at", eps=0.3, max_steps=3).to_json())
    assert cli_main(["train", "--config", str(cfg), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "done" in out and "run-" in out
    (rec,) = RunStore().list_runs()
    assert rec.config["seed"] == 3 and rec.config["objective"] == "fast_at" and rec.config["max_steps"] == 3
    assert cli_main(["runs"]) == 0
    assert rec.id in capsys.readouterr().out


def test_build_default_model_writes_to_the_given_folder(tmp_path, capsys):
    assert cli_main(["build-default-model", "--out", str(tmp_path), "--epochs", "1"]) == 0
    model, meta = load_checkpoint(tmp_path / "digits_small_cnn.safetensors")
    assert meta["recipe"]["objective"] == "standard" and meta["recipe"]["epochs"] == 1
    assert meta["recipe"]["command"] == "python -m advlens build-default-model"
    assert meta["metrics"]["test_images"] == 360 and meta["metrics"]["test_accuracy"] > 0.8
    assert "held-out digits accuracy" in capsys.readouterr().out
