"""Evaluations as jobs: queued through the run store, cancelled and resumed at batch granularity,
persisted; a bad spec is refused before anything is created; torchrun shards equal one process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from advlens.evaluation import EvalConfigError, EvalSpec
from advlens.evaluation import jobs as eval_jobs
from advlens.jobs import RunStore, cancel, db_path, wait


@pytest.fixture(autouse=True)
def _no_stray_workers():
    yield
    if not db_path().exists():
        return
    for rec in RunStore().list_runs(status=("queued", "running"), kind=None):
        if rec.pid and rec.pid != os.getpid():
            try:
                os.kill(rec.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def spec(**kw) -> EvalSpec:
    base = dict(models=["digits_small_cnn"], dataset="digits", eps=[0.08], suite="quick", n=16, checklist=False)
    return EvalSpec(**{**base, **kw})


def test_a_bad_spec_is_refused_before_a_run_exists():
    for bad, match in (
        (spec(models=[]), "at least one model"),
        (spec(models=["nope"]), "unknown model 'nope'"),
        (spec(eps=["8"]), "above 1"),
        (spec(suite="strong"), "unknown suite"),
        (spec(norm="L3"), "unknown norm"),
        (spec(n=-1), "n must be"),
        (spec(dataset="imagenet_samples"), "expects"),
        (spec(eps=[0.1, 0.1]), "twice"),
    ):
        with pytest.raises(EvalConfigError, match=match):
            eval_jobs.submit(bad)
    assert not db_path().exists() or not RunStore().list_runs(kind=None)
    with pytest.raises(EvalConfigError, match="unknown evaluation setting"):
        EvalSpec.from_dict({**spec().to_dict(), "steps": 3})


def test_an_evaluation_job_runs_in_its_own_process_and_persists_its_report():
    rec = eval_jobs.submit(spec(eps=[0.05, 0.1]))
    assert rec.kind == "evaluate" and rec.meta["suite"] == "quick" and rec.meta["models"] == ["digits_small_cnn"]
    assert rec.pid and rec.pid != os.getpid()
    rec = wait(rec.id, timeout=300)
    assert rec.status == "done", rec.message
    report = eval_jobs.load_report(rec.id)
    first, second = report["results"]
    assert first["n"] == 16 and first["eps"] == 0.05 and second["eps"] == 0.1
    assert second["robust_accuracy"] <= first["robust_accuracy"]  # a larger budget breaks at least as much
    assert rec.metrics["digits_small_cnn@0.1 (25.5/255)"]["robust_accuracy"] == second["robust_accuracy"]
    assert rec.progress == 1.0 and report["versions"]["torch"]
    gallery = eval_jobs.load_gallery(rec.id, 1)
    assert sorted(gallery) == second["gallery"] and len(gallery) == 16 - round(second["robust_accuracy"] * 16)
    # evaluations are runs of their own kind: the training lists and the zoo do not see them
    assert [r.id for r in RunStore().list_runs(kind="evaluate")] == [rec.id] and not RunStore().list_runs()


def test_a_cancelled_evaluation_resumes_from_its_last_batch_and_ends_as_an_uninterrupted_one():
    s = spec(n=24, batch_size=4, eps=[0.07])
    rec = eval_jobs.submit(s)
    store = RunStore()
    deadline = time.time() + 240
    while store.require(rec.id).step < 40 and time.time() < deadline:  # the first batch is done
        time.sleep(0.3)
    cancel(rec.id)
    stopped = wait(rec.id, timeout=120)
    assert stopped.status == "cancelled" and "resume" in stopped.message
    state = json.loads((stopped.folder / "state" / "0.json").read_text())
    assert state["position"] > 0 or state["next_batch"] > 0  # it saved where it was
    resumed = wait(eval_jobs.resume(rec.id).id, timeout=300)
    assert resumed.status == "done", resumed.message
    assert "resuming digits_small_cnn" in resumed.log_path.read_text()
    ours = eval_jobs.load_report(rec.id)["results"][0]
    whole = eval_jobs.run_spec(s)["results"][0]  # the same spec in this process, never stopped
    mismatched = sum(a["robust"] != b["robust"] for a, b in zip(ours["images"], whole["images"]))
    assert mismatched <= 1, mismatched  # batch-seeded: the same points (one image of float slack)


@pytest.mark.skipif(
    shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
    reason="torchrun is not installed beside this python",
)
def test_torchrun_shards_the_images_and_the_merged_result_equals_one_process(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["-m", "advlens", "evaluate", "--model", "digits_small_cnn", "--dataset", "digits", "--eps", "0.07"]
    args += ["--suite", "quick", "--num-images", "24", "--batch-size", "6", "--no-checklist"]
    runs = {
        "sharded": [torchrun, "--nproc_per_node", "2", "--standalone", *args, "--out", str(tmp_path / "sharded.json")],
        "single": [sys.executable, *args, "--out", str(tmp_path / "single.json")],
    }
    for name, cmd in runs.items():
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, name + out.stdout[-2000:] + out.stderr[-2000:]
    sharded = json.loads((tmp_path / "sharded.json").read_text())["results"][0]
    single = json.loads((tmp_path / "single.json").read_text())["results"][0]
    assert sharded["images"] == single["images"] and sharded["broken_by_attack"] == single["broken_by_attack"]
    assert 0 < single["robust_accuracy"] < 1  # an interesting case: some broken, some not


def test_the_best_known_evaluation_prefers_the_standard_suite_and_a_finished_run_queues_a_quick_one(monkeypatch):
    from advlens.evaluation.known import describe_best, evaluation_of, finished_evaluations
    from advlens.training import jobs as train_jobs
    from advlens.zoo import get_entry

    store = RunStore()
    assert describe_best("digits_small_cnn") is None
    for suite, n in (("quick", 16), ("standard", 8)):
        rec = store.create_run(eval_jobs.check_spec(spec(suite=suite, n=n)).to_dict(), "cpu", kind="evaluate")
        if suite == "standard":  # the CI-sized standard suite: fewer steps, targets and queries
            from tests.test_evaluation import shortened

            monkeypatch.setattr(eval_jobs, "evaluate", _with_suite(eval_jobs.evaluate, shortened("standard", 5, 1, 20)))
        assert eval_jobs.execute(rec.id, store, echo=False).status == "done"
    text = describe_best("digits_small_cnn")
    assert "standard (AutoAttack" in text and "n = 8" in text and "upper bound" not in text
    assert evaluation_of(get_entry("digits_small_cnn")) == text
    found = finished_evaluations()  # read once for a table of models: the same answer
    assert len(found["digits_small_cnn"]) == 2 and evaluation_of(get_entry("digits_small_cnn"), found) == text
    assert finished_evaluations(["mnist_small_cnn"]) == {}  # the reports of other models are not read
    # a finished training run queues the quick suite on its model (spawning is stubbed here)
    launched = []
    monkeypatch.setenv("ADVLENS_AUTO_EVALUATE", "1")
    monkeypatch.setattr(train_jobs, "spawn_worker", lambda run_id, command, store=None: launched.append(command) or 0)
    trained = store.create_run({"objective": "standard", "dataset": "digits", "arch": "small_cnn"}, "cpu")
    digits = _digits()
    monkeypatch.setattr("advlens.zoo.load_model", lambda name, device=None: digits)
    monkeypatch.setattr(eval_jobs, "check_spec", lambda s: s.validated())  # the run has no checkpoint here
    queued = train_jobs.queue_quick_evaluation(trained, store, log=lambda s: None)
    assert queued.config["suite"] == "quick" and queued.config["models"] == [trained.zoo_name]
    assert queued.config["eps"] == [32 / 255] and launched[0][-3:] == ["evaluate", "--run-id", queued.id]
    assert queued.kind == "evaluate" and queued.meta["module"] == "advlens.evaluation.jobs"


def _digits():
    from advlens.zoo import load_model

    return load_model("digits_small_cnn", "cpu")


def _with_suite(fn, suite):
    def call(*args, **kw):
        args = list(args)
        args[4] = suite
        return fn(*args, **kw)

    return call
