"""advlens.jobs: the store's migration, the kind registry, the one worker loop (progress, stop, resume),
and certification as a job. Everything runs in this process (no worker is spawned) and takes seconds."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from advlens.jobs import RunStore, api, db_path, get_kind, run_dir
from advlens.jobs.kinds import KINDS, JobKind, register_kind
from advlens.jobs.store import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]

# the runs table of a store written before this package (version 1: kinds in objective/arch, no meta)
V1_RUNS = """CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', objective TEXT NOT NULL,
dataset TEXT NOT NULL, arch TEXT NOT NULL, device TEXT NOT NULL, status TEXT NOT NULL, message TEXT NOT NULL
DEFAULT '', created_at REAL NOT NULL, queued_at REAL NOT NULL, started_at REAL, updated_at REAL NOT NULL,
finished_at REAL, pid INTEGER, pid_start TEXT, host TEXT, world_size INTEGER NOT NULL DEFAULT 1,
cancel_requested INTEGER NOT NULL DEFAULT 0, step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER NOT NULL
DEFAULT 0, epoch INTEGER NOT NULL DEFAULT 0, epochs INTEGER NOT NULL DEFAULT 0, eta_s REAL, attempts INTEGER
NOT NULL DEFAULT 0, final_path TEXT, metrics TEXT NOT NULL DEFAULT '{}', config TEXT NOT NULL{kind})"""
METRICS = "CREATE TABLE metrics (run_id TEXT NOT NULL, step INTEGER NOT NULL, epoch REAL NOT NULL, t REAL NOT NULL,"
METRICS += " key TEXT NOT NULL, value REAL)"


def _old_store(with_kind: bool) -> None:
    """A runs.sqlite as the old code wrote it: one row of each kind it knew (version 0 knew training only)."""
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute(V1_RUNS.replace("{kind}", ", kind TEXT NOT NULL DEFAULT 'train'" if with_kind else ""))
    con.execute(METRICS)
    rows = [("tr0001", "standard", "digits", "small_cnn", "cancelled", {"objective": "standard", "arch": "small_cnn"})]
    if with_kind:
        ev = {"models": ["digits_small_cnn", "x"], "suite": "quick", "dataset": "digits", "eps": [0.1]}
        pert = {"method": "universal", "model": "digits_small_cnn", "objective": "universal", "name": "u"}
        rows += [
            ("ev0001", "quick", "digits", "digits_small_cnn, x", "failed", ev),
            ("pe0001", "universal", "digits", "digits_small_cnn", "done", pert),
        ]
    for i, (run_id, objective, dataset, arch, status, config) in enumerate(rows):
        kind = {"tr": "train", "ev": "evaluate", "pe": "perturbation"}[run_id[:2]]
        cols = "id, objective, dataset, arch, device, status, created_at, queued_at, updated_at, config"
        values = (run_id, objective, dataset, arch, "cpu", status, i, i, i, json.dumps(config))
        if with_kind:
            cols, values = cols + ", kind", values + (kind,)
        con.execute(f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * len(values))})", values)
        con.execute("INSERT INTO metrics VALUES (?, 1, 0, 0, 'loss', 0.5)", (run_id,))
        run_dir(run_id).mkdir(parents=True)
        (run_dir(run_id) / "train.log").write_text("the old log\n")
    con.commit()
    con.close()
    RunStore._initialised.clear()


@pytest.mark.parametrize("with_kind", [False, True], ids=["version 0", "version 1"])
def test_an_old_store_is_migrated_in_place_and_its_jobs_list_load_and_resume(with_kind, monkeypatch):
    _old_store(with_kind)
    store = RunStore()
    jobs = {r.id: r for r in store.list_runs(kind=None)}
    assert set(jobs) == ({"tr0001", "ev0001", "pe0001"} if with_kind else {"tr0001"})
    with sqlite3.connect(db_path()) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tr = jobs["tr0001"]
    assert tr.kind == "train" and tr.objective == "standard" and tr.arch == "small_cnn"
    assert tr.meta["module"] == "advlens.training.jobs" and store.metrics("tr0001")["loss"]["value"] == [0.5]
    assert tr.log_path.name == "train.log" and tr.zoo_name == "run-tr0001-standard"
    if with_kind:
        ev, pe = jobs["ev0001"], jobs["pe0001"]
        assert ev.objective == ev.arch == "" and ev.meta["suite"] == "quick"
        assert ev.meta["models"] == ["digits_small_cnn", "x"] and ev.meta["module"] == "advlens.evaluation.jobs"
        assert ev.title == "quick: digits_small_cnn, x" and ev.config["eps"] == [0.1]
        assert pe.meta["method"] == "universal" and pe.meta["model"] == "digits_small_cnn"
        assert ev.log_path.read_text() == "the old log\n"  # an old job keeps its log
        # resume: the kind is found from the row (its module imported), the job queued, a worker launched
        launched = []
        assert api.resume("ev0001", store, spawn=lambda i, cmd, s=None: launched.append(cmd)).status == "queued"
        assert launched[0][-3:] == ["evaluate", "--run-id", "ev0001"]
        with pytest.raises(ValueError, match="is done"):
            api.resume("pe0001", store, spawn=lambda *a: 0)
    # a training run resumes with its own kind (its config checked again); opening once more changes nothing
    monkeypatch.setattr("advlens.training.jobs.TrainingJob.requeue_device", lambda self, job: "cpu")
    assert api.resume("tr0001", store, spawn=lambda *a: 0).status == "queued"
    RunStore._initialised.clear()
    assert {r.id: r.meta for r in RunStore().list_runs(kind=None)} == {r.id: r.meta for r in store.list_runs(kind=None)}


@register_kind
class Countdown(JobKind):
    """A test kind: counts ``steps`` steps, saving each in its folder, so a resumed job goes on from there."""

    name = "countdown_test"
    label = "countdown"
    stopped = "cancelled; resume goes on counting"

    def validate(self, spec):
        if not isinstance(spec.get("steps"), int) or spec["steps"] < 1:
            raise ValueError("steps must be a positive whole number")
        return {"steps": spec["steps"], "stop_at": spec.get("stop_at"), "device": "cpu"}

    def describe(self, spec):
        return {"title": f"count {spec['steps']}"}

    def execute(self, job, progress, should_stop, log):
        done = run_dir(job.id) / "done.txt"
        start = int(done.read_text()) if done.exists() else 0
        for step in range(start, job.config["steps"]):
            if should_stop():
                return None
            done.write_text(str(step + 1))
            progress((step + 1) / job.config["steps"])
            if step + 1 == job.config["stop_at"]:
                self.store.request_cancel(job.id)  # as the Stop button does
        log(f"counted from {start}")
        return {"metrics": {"counted_from": start}}


def test_a_registered_kind_runs_stops_and_resumes_in_the_one_worker_loop():
    assert KINDS["countdown_test"] is Countdown and get_kind("train").label == "training"
    with pytest.raises(ValueError, match="unknown job kind 'nope'"):
        get_kind("nope")
    with pytest.raises(ValueError, match="positive"):
        api.submit("countdown_test", {"steps": 0}, spawn=lambda *a: 0)
    assert not db_path().exists() or not RunStore().list_runs(kind=None)  # refused before a row exists
    launched = []
    rec = api.submit("countdown_test", {"steps": 5, "stop_at": 2}, spawn=lambda i, c, s=None: launched.append(c))
    assert launched == [Countdown().worker_command(rec.id)] and launched[0][-2:] == ["advlens.jobs", rec.id]
    assert rec.meta == {"title": "count 5", "module": __name__} and rec.status == "queued"
    rec = api.execute(rec.id, echo=False)
    assert rec.status == "cancelled" and rec.message == Countdown.stopped and rec.step == 400  # 2 of 5 done
    assert api.progress_text(rec) == "40%"
    rec = api.resume(rec.id, spawn=lambda *a: 0)
    rec = api.execute(rec.id, echo=False)
    assert rec.status == "done" and rec.metrics == {"counted_from": 2} and rec.progress == 1.0
    log = (rec.folder / "countdown_test.log").read_text()
    assert "cancelled" in log and "counted from 2" in log and not (rec.folder / "train.log").exists()
    assert [r.id for r in api.list_jobs("countdown_test")] == [rec.id]


def test_a_failing_kind_is_recorded_failed_with_its_message():
    rec = api.submit("countdown_test", {"steps": 3}, spawn=lambda *a: 0)
    (rec.folder / "done.txt").write_text("not a number")
    rec = api.execute(rec.id, echo=False)
    assert rec.status == "failed" and "invalid literal" in rec.message


# ------------------------------------------------------------------------------------ certification
def _cert_spec(**kw):
    from advlens.certify import CertifySpec

    base = {"model": "digits_small_cnn", "dataset": "digits", "sigma": 0.25, "images": 3, "n": 60, "n0": 10}
    return CertifySpec(**{**base, **kw})


def test_certification_is_a_job_that_resumes_with_the_images_not_finished():
    from advlens import certify as cert

    with pytest.raises(cert.CertifyConfigError, match="sigma"):
        cert.submit(_cert_spec(sigma=0))
    with pytest.raises(cert.CertifyConfigError, match="unknown model"):
        cert.submit(_cert_spec(model="nope"))
    store = RunStore()
    first = api.submit("certify", _cert_spec().to_dict(), store, spawn=lambda *a: 0)
    calls = []

    def stop_after_one():
        calls.append(1)
        return len(calls) > 1 and (first.folder / cert.RESULTS).exists()

    kind = cert.CertifyJob()
    kind.store = store
    assert kind.execute(store.require(first.id), lambda f: None, stop_after_one, lambda s: None) is None
    assert len(cert.load_certificates(first.folder)) == 1  # one image finished and kept
    rec = cert.execute(first.id, store, echo=False)  # the rest, as a resumed worker does
    assert rec.status == "done", rec.message
    report = cert.load_report(first.id)
    assert [i["position"] for i in report["images"]] == [0, 1, 2] and report["images_n"] == 3
    assert "resuming: 1 of 3" in rec.log_path.read_text() and rec.log_path.name == "certify.log"
    # an uninterrupted job gives the same certificates (each image draws its own noise)
    again = cert.execute(api.submit("certify", _cert_spec().to_dict(), store, spawn=lambda *a: 0).id, store, echo=False)
    same = cert.load_report(again.id)
    keys = ("prediction", "radius", "count")
    assert [[i[k] for k in keys] for i in same["images"]] == [[i[k] for k in keys] for i in report["images"]]
    at0 = report["certified_accuracy"][0]
    assert at0["radius"] == 0 and at0["interval_95"][0] <= at0["accuracy"] <= at0["interval_95"][1]
    assert rec.metrics["images"] == 3 and "sigma 0.25" in report["protocol"]


def test_runs_lists_the_model_of_every_kind_in_its_column(capsys):
    """``python -m advlens runs`` takes its objective/arch columns from what each kind stored in meta."""
    from advlens.cli import main
    from advlens.evaluation.jobs import EvaluationJob
    from advlens.perturbations.jobs import PerturbationJob
    from advlens.training.jobs import TrainingJob

    store = RunStore()
    cert = api.create("certify", _cert_spec().to_dict(), store)  # queued, no worker
    assert cert.status == "queued" and cert.device == "cpu" and cert.meta["module"] == "advlens.certify"
    ev_spec = {"models": ["m1", "m2"], "suite": "quick", "dataset": "digits"}
    ev = store.create_run(ev_spec, "cpu", kind="evaluate", meta=EvaluationJob().describe(ev_spec))
    pe_spec = {"method": "universal", "model": "digits_small_cnn", "name": "u", "dataset": "digits"}
    pe = store.create_run(pe_spec, "cpu", kind="perturbation", meta=PerturbationJob().describe(pe_spec))
    tr_spec = {"objective": "pgd_at", "arch": "small_cnn", "dataset": "digits", "epochs": 1}
    tr = store.create_run(tr_spec, "cpu", meta=TrainingJob().describe(tr_spec))
    assert main(["runs"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}

    def shows(run_id: str, what: str, model: str) -> bool:  # the objective, dataset and arch columns
        return f" {what:<10s} {'digits':<14s} {model:<16s} " in rows[run_id]

    assert shows(cert.id, "certificat", "digits_small_cnn") and "sigma" not in rows[cert.id]
    assert shows(ev.id, "quick", "m1, m2")
    assert shows(pe.id, "universal", "digits_small_cnn")
    assert shows(tr.id, "pgd_at", "small_cnn")


class _CountingStore:
    """What a StopFlag reads of the store, counted."""

    def __init__(self):
        self.reads, self.flag = 0, False

    def cancel_requested(self, job_id):
        self.reads += 1
        return self.flag


def test_the_stop_flag_reads_the_store_at_most_once_per_interval(monkeypatch):
    from advlens.jobs import worker

    clock = [100.0]
    monkeypatch.setattr(worker.time, "monotonic", lambda: clock[0])
    store = _CountingStore()
    stop = worker.StopFlag(store, "job", poll_s=1.0)
    assert not stop() and store.reads == 1  # the first call reads at once
    assert not any(stop() for _ in range(100)) and store.reads == 1
    store.flag = True  # another process asked for a cancel
    clock[0] += 0.5
    assert not stop() and store.reads == 1
    clock[0] += 0.6
    assert stop() and store.reads == 2 and stop.reason == "cancelled from the store"
    assert stop() and store.reads == 2  # set: never read again
    # a cancel asked in this process (RunStore.request_cancel) is read at the next call
    store, stop = _CountingStore(), worker.StopFlag(_CountingStore(), "job", poll_s=1.0)
    stop.store = store
    assert not stop() and store.reads == 1
    store.flag = True
    monkeypatch.setattr(RunStore, "cancels_requested", RunStore.cancels_requested + 1)
    assert stop() and store.reads == 2
    sigterm = worker.StopFlag(_CountingStore(), "job")
    sigterm.set("cancelled by SIGTERM")
    assert sigterm() and sigterm.store.reads == 0


def test_the_job_package_is_the_one_home_of_background_work():
    defined = {}
    for path in (ROOT / "advlens").rglob("*.py"):
        text = path.read_text()
        for name in ("class RunStore", "def spawn_worker", "def wait_for_turn", "def queue_device", "def claim"):
            if f"\n{name}(" in text or f"\n{name}:" in text or f"    {name}(" in text:
                defined.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
    assert defined == {
        "class RunStore": ["advlens/jobs/store.py"],
        "def spawn_worker": ["advlens/jobs/worker.py"],
        "def wait_for_turn": ["advlens/jobs/worker.py"],
        "def queue_device": ["advlens/device.py"],
        "def claim": ["advlens/jobs/store.py"],
    }
    assert not [p for p in (ROOT / "advlens" / "evaluation").rglob("*.py") if "train.log" in p.read_text()]


def test_the_attention_study_is_a_job_that_resumes_chunk_by_chunk(monkeypatch):
    from advlens import attention_study as study

    monkeypatch.setattr(study, "CHUNK", 2)
    spec = study.StudySpec(model="digits_small_cnn", dataset="digits", n=4, eps=0.2, steps=2)
    with pytest.raises(study.StudyConfigError, match="unknown attribution method"):
        study.submit(study.StudySpec(**{**spec.to_dict(), "method": "nope"}))
    store = RunStore()
    rec = api.submit("attention", spec.to_dict(), store, spawn=lambda *a: 0)
    assert rec.meta["module"] == "advlens.attention_study" and rec.device == "cpu"
    asked = []
    kind = study.AttentionStudyJob()
    kind.store = store
    stop = lambda: asked.append(1) or len(asked) > 1  # noqa: E731  (stop before the second chunk)
    assert kind.execute(store.require(rec.id), lambda f: None, stop, lambda s: None) is None
    assert sorted(p.name for p in (rec.folder / "chunks").iterdir()) == ["0.json"]
    rec = study.execute(rec.id, store, echo=False)
    assert rec.status == "done", rec.message
    spec_back, a = study.load_result(rec.id)
    assert spec_back["n"] == 4 and a.n_total == 4 and len(a.success) == 4 - a.n_clean_wrong
    assert rec.metrics == {"analysed": len(a.success), "broken": a.n_success, "clean_wrong": a.n_clean_wrong}
    assert set(a.metrics) >= {"iou", "entropy_delta"} and all(len(v) == len(a.success) for v in a.metrics.values())
    # the same study in one go gives the same per-image figures (each chunk its own seed)
    whole = study.run_chunks(spec, _digits_model(), *study.images(spec)[:2], log=lambda s: None)
    assert study.merge(whole)["success"] == a.success.tolist()
    # the page's inline study reports its progress: the attack is the first half, the maps the second
    seen = []
    x, y, _ = study.images(spec)
    quiet = study.study_chunk(spec, _digits_model(), x, y, 0)
    shown = study.study_chunk(spec, _digits_model(), x, y, 0, progress=lambda d, t: seen.append((d, t)))
    assert (shown["success"], shown["indices"]) == (quiet["success"], quiet["indices"])  # nothing else changes
    assert seen[-1] == (100, 100) and (50, 100) in seen and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert study.merge(whole)["metrics"]["iou"] == pytest.approx(a.metrics["iou"].tolist())


def _digits_model():
    from advlens.zoo import load_model

    return load_model("digits_small_cnn", "cpu")


def test_certify_detach_queues_a_job(monkeypatch, capsys):
    from advlens import certify as cert
    from advlens.cli import main

    launched = []
    monkeypatch.setattr(cert, "spawn_worker", lambda run_id, command, store=None: launched.append(command) or 0)
    argv = ["certify", "--model", "digits_small_cnn", "--sigma", "0.25", "--images", "20", "--n", "100", "--detach"]
    assert main(argv) == 0
    (rec,) = RunStore().list_runs(kind="certify")
    assert f"certification {rec.id} queued on cpu" in capsys.readouterr().out
    assert rec.config["images"] == 20 and rec.config["n"] == 100 and launched[0][-2:] == ["advlens.jobs", rec.id]
    assert main([*argv[:-3], "--n", "0", "--detach"]) == 2  # a bad setting: one line, nothing queued
    assert "n must be" in capsys.readouterr().err and len(RunStore().list_runs(kind="certify")) == 1


def test_the_corruption_suite_detaches_as_a_job_that_keeps_finished_models(monkeypatch, capsys):
    from advlens.cli import main
    from advlens.evaluation import corruption_suite as cs

    monkeypatch.setattr(cs, "spawn_worker", lambda run_id, command, store=None: 0)
    monkeypatch.setattr(cs, "NAMES", ("gaussian_noise", "brightness", "contrast", "pixelate"))  # 4 of 15, for CI
    argv = ["evaluate", "--suite", "corruptions", "--model", "digits_small_cnn", "--dataset", "digits", "--n", "4"]
    assert main([*argv, "--detach"]) == 0
    (rec,) = RunStore().list_runs(kind="corruptions")
    assert f"corruption evaluation {rec.id} queued" in capsys.readouterr().out and rec.config["n"] == 4
    calls = []
    kind = cs.CorruptionsJob()
    stop = lambda: calls.append(1) or len(calls) > 2  # noqa: E731  (stopped inside the model)
    assert kind.execute(RunStore().require(rec.id), lambda f: None, stop, lambda s: None) is None
    assert not (rec.folder / "parts").exists()  # nothing half-done is kept
    done = api.execute(rec.id, echo=False)
    assert done.status == "done", done.message
    report = json.loads((rec.folder / "report.json").read_text())
    (result,) = report["results"]
    assert (
        result["n"] == 4
        and list(result["corruptions"]) == list(cs.NAMES)
        and (rec.folder / "parts" / "0.json").is_file()
    )
    assert done.metrics["digits_small_cnn"]["mCA"] == result["mean_corruption_accuracy"]
    assert main([*argv[:-2], "--n", "4", "--model", "nope", "--detach"]) == 2


def test_a_job_runs_in_its_own_worker_process():
    """The generic worker (``python -m advlens.jobs ID``) imports the kind's module and runs the loop."""
    from advlens import certify as cert

    rec = cert.submit(_cert_spec(images=2, n=20, n0=5))
    assert rec.pid and rec.status in ("queued", "running")
    rec = api.wait(rec.id, timeout=240)
    assert rec.status == "done", (rec.message, (rec.folder / "worker.out").read_text()[-2000:])
    assert cert.load_report(rec.id)["images_n"] == 2 and "done" in rec.log_path.read_text()
