"""Submit, resume, cancel, list and run jobs of any kind: written once for every kind.

Design
------
The UI (or the CLI with ``--detach``) never runs a job in its own process. :func:`submit` checks the
spec with its kind (a bad one raises the kind's config error before anything is created), inserts a
*queued* row in the store with the spec and what the kind says of it, and launches the detached worker
the kind names (``python -m advlens.jobs <id>`` by default). The UI only reads the store.

Scheduling: one job per device at a time by default (``ADVLENS_MAX_RUNS_PER_DEVICE`` raises it). Every
worker, queued or not, owns its own job: it polls :meth:`~advlens.jobs.store.RunStore.claim`, which in
one IMMEDIATE transaction marks dead workers failed and lets the job start only if no live job holds
its device and none of that device was queued earlier. So the queue is FIFO per device and needs no
coordinator: nothing is lost if the UI, or the worker of the previous job, dies at any moment.

Dead workers: a queued/running row whose worker pid (with its start time) is gone from this host is
marked *failed* by any claim, by the pages on every refresh and by ``python -m advlens runs``.
Cancel sets the flag and SIGTERMs the worker; the kind stops at its next step with its state saved.
Resume puts a cancelled/failed job back in its queue; the kind continues from what it saved.

:func:`execute` is the one worker loop: wait for the device, run the kind, record the outcome, with
progress and an ETA (:class:`Progress`) in the row.
"""

from __future__ import annotations

import os
import time

from .kinds import RECORDED, JobKind, get_kind, kind_of
from .store import RunRecord, RunStore, log_name, run_dir
from .worker import JobLog, StopFlag, cancel, format_exception, install_sigterm, spawn_worker, wait, wait_for_turn

__all__ = ["Progress", "cancel", "create", "execute", "list_jobs", "progress_text", "resume", "submit", "wait"]

PROGRESS_SCALE = 1000  # a job that reports fractions: the row's step/total_steps in thousandths


def create(
    kind: str | JobKind, spec: dict, store: RunStore | None = None, world_size: int = 1, validated: bool = False
) -> RunRecord:
    """Check ``spec`` with its kind (skipped when the caller has just ``validated`` it), pin its device
    and insert its *queued* row; no worker yet. Returns the job's record."""
    store = store or RunStore()
    k = get_kind(kind) if isinstance(kind, str) else kind
    spec = dict(spec) if validated else k.validate(dict(spec))
    device = k.device(spec)
    spec["device"] = device  # the worker uses the device the page showed
    meta = {**k.describe(spec), "module": type(k).__module__}
    return store.create_run(spec, device, world_size=world_size, kind=k.name, meta=meta)


def submit(
    kind: str | JobKind, spec: dict, store: RunStore | None = None, spawn=None, validated: bool = False
) -> RunRecord:
    """Check ``spec`` with its kind, queue it (:func:`create`) and launch its worker. Returns the job's
    record. ``spawn`` (default :func:`~advlens.jobs.worker.spawn_worker`) launches the worker process."""
    store = store or RunStore()
    k = get_kind(kind) if isinstance(kind, str) else kind
    rec = create(k, spec, store, validated=validated)
    (spawn or spawn_worker)(rec.id, k.worker_command(rec.id), store)
    return store.require(rec.id)


def resume(job_id: str, store: RunStore | None = None, spawn=None) -> RunRecord:
    """Queue a cancelled or failed job again and launch its worker; the kind continues from what it saved."""
    store = store or RunStore()
    store.reap_dead()
    rec = store.require(job_id)
    k = kind_of(rec)
    if rec.status == "done" and not k.rerun_when_done:
        raise ValueError(f"{k.label} {job_id} is done{k.done_hint}")
    store.requeue(job_id, k.requeue_device(rec))
    (spawn or spawn_worker)(job_id, k.worker_command(job_id), store)
    return store.require(job_id)


def list_jobs(kind: str | None = None, status=None, limit: int = 50, store: RunStore | None = None) -> list[RunRecord]:
    """Jobs of one kind (None: every kind), newest first."""
    return (store or RunStore()).list_runs(status=status, limit=limit, kind=kind)


class Progress:
    """``progress(fraction)``: the share done and an ETA (elapsed time scaled by what is left) in the row.
    Writes at most every ``every_s`` seconds, and always at 0 and 1."""

    def __init__(self, store: RunStore, job_id: str, every_s: float = 0.5):
        self.store, self.job_id, self.every_s = store, job_id, every_s
        self.t0 = time.time()
        self.last = 0.0
        self.fraction = 0.0
        self.written = 0.0

    def eta(self, fraction: float) -> float | None:
        elapsed = time.time() - self.t0
        return elapsed * (1 - fraction) / fraction if fraction > 0.01 else None

    def __call__(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        self.fraction = fraction
        now = time.monotonic()
        if 0 < fraction < 1 and now - self.last < self.every_s:
            return
        self.last = now
        self.written = fraction
        step = int(fraction * PROGRESS_SCALE)
        self.store.update(self.job_id, step=step, total_steps=PROGRESS_SCALE, eta_s=self.eta(fraction))

    def flush(self) -> None:
        """Write the last share reported, if it was held back (a job that stops keeps its true progress)."""
        if self.fraction != self.written:
            self.last = 0.0
            self(self.fraction)


def progress_text(rec: RunRecord) -> str:
    """``42% · about 3 min left`` (or the queue position words) for any job's row."""
    if rec.status == "queued":
        return "queued"
    pct = f"{rec.progress * 100:.0f}%"
    if rec.status != "running" or rec.eta_s is None:
        return pct
    s = rec.eta_s
    left = f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"
    return f"{pct} · about {left} left"


def execute(
    job_id: str,
    store: RunStore | None = None,
    echo: bool = True,
    kind: JobKind | None = None,
    is_main: bool = True,
    broadcast=None,
) -> RunRecord:
    """The one worker loop: wait for the device, run the kind, record the outcome. Never raises for a
    failed job (its message says what went wrong), except KeyboardInterrupt. Under torchrun every rank
    calls it: only the main one (``is_main``) touches the queue and records; ``broadcast`` shares its
    verdict with the other ranks."""
    store = store or RunStore()
    rec = store.require(job_id)
    k = kind or kind_of(rec)
    k.store = store  # the kind's execute may read and write its own row
    log = JobLog(run_dir(job_id) / log_name(k.name) if is_main else None, echo=echo and is_main)
    stop = StopFlag(store, job_id)
    install_sigterm(stop)
    status = _take_turn(job_id, store, log, stop, k) if is_main else ""
    if broadcast is not None:
        status = broadcast(status)
    if status != "started":
        if is_main:
            log(f"not started: the {k.label} is {status}")
        return store.require(job_id)
    try:
        progress = Progress(store, job_id)
        fields = k.execute(store.require(job_id), progress, stop, log)
        if is_main:
            if fields != RECORDED:
                progress.flush()
            _record(job_id, store, log, k, fields)
    except BaseException as exc:  # record every failure, even KeyboardInterrupt, then re-raise the latter
        if is_main:
            _record_failure(job_id, store, log, k, exc)
        if isinstance(exc, KeyboardInterrupt):
            raise
    return store.require(job_id)


def _take_turn(job_id: str, store: RunStore, log, stop: StopFlag, k: JobKind) -> str:
    """Own the row (this pid), wait for the device, and own it again once started."""
    if store.require(job_id).pid != os.getpid():
        store.attach_worker(job_id, os.getpid())
    status = wait_for_turn(job_id, store, log, stop, label=k.label)
    if status == "started":
        store.attach_worker(job_id, os.getpid())
    return status


def _record(job_id: str, store: RunStore, log, k: JobKind, fields) -> None:
    if fields == RECORDED:
        return
    if fields is None:
        store.finish(job_id, "cancelled", k.stopped)
        log("cancelled")
        return
    store.finish(job_id, "done", "", step=PROGRESS_SCALE, total_steps=PROGRESS_SCALE, **fields)
    log("done")


def _record_failure(job_id: str, store: RunStore, log, k: JobKind, exc: BaseException) -> None:
    log("failed:\n" + format_exception(exc))
    plain = isinstance(exc, (k.config_error, ValueError, KeyError))
    try:
        store.finish(job_id, "failed", str(exc) if plain else f"{type(exc).__name__}: {exc}")
    except Exception:  # the store itself failed; the log has the traceback
        pass
