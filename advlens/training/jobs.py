"""Training jobs: start, queue, cancel and resume runs, each in its own OS process.

Design
------
The UI (or the CLI with ``--detach``) never trains in its own process. :func:`submit` validates the
config (a bad one raises :class:`~advlens.training.config.ConfigError` before anything is created),
inserts a *queued* row in the run store, writes ``runs/<id>/config.json`` and launches a worker::

    python -m advlens train --run-id <id>

detached (``start_new_session=True``, stdin closed, output to ``runs/<id>/worker.out``), so it
survives the browser tab closing and the Streamlit server restarting. The UI only reads the store.

Scheduling: one run per device at a time by default (``ADVLENS_MAX_RUNS_PER_DEVICE`` raises it).
Every worker, queued or not, owns its own run: it polls :meth:`RunStore.claim` about once a second,
which in one IMMEDIATE transaction (1) marks dead workers failed, (2) lets the run start only if no
live run holds its device and no run of that device was queued earlier. So the queue is FIFO per
device, needs no coordinator (nothing is lost if the UI, or the worker of the previous run, dies at
any moment), and a queued run that is cancelled simply has its waiting worker exit.

Dead workers: a row whose status is queued/running and whose worker pid (with its start time,
so a reused pid does not count) is gone from this host is marked *failed* with a message, by any
claim, by the UI on every refresh, and by ``python -m advlens runs``. Resume continues from the
last checkpoint.

Cancel: :func:`cancel` sets the cancel flag (the worker polls it between steps) and sends SIGTERM to
the worker, whose handler requests the same graceful stop: checkpoint, then status *cancelled*.
Resume: :func:`resume` puts a cancelled/failed run back in the queue and launches a worker; the
trainer continues from ``checkpoints/latest.json``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..paths import PROJECT_ROOT, home
from . import distributed
from .config import ConfigError, TrainConfig, validate
from .store import ACTIVE, FINISHED, RunRecord, RunStore, process_start, run_dir

CLAIM_POLL_S = 1.0


def max_runs_per_device() -> int:
    try:
        return max(1, int(os.environ.get("ADVLENS_MAX_RUNS_PER_DEVICE", "1")))
    except ValueError:
        return 1


def prepare_config(cfg: TrainConfig) -> tuple[TrainConfig, str]:
    """Validate ``cfg`` and pin its device (so the worker uses the device the UI showed)."""
    validate(cfg)
    device = cfg.resolved_device()
    cfg.device = device
    return cfg, device


def create(cfg: TrainConfig, store: RunStore | None = None, world_size: int = 1) -> RunRecord:
    """Validate and insert a queued run (no worker yet)."""
    store = store or RunStore()
    cfg, device = prepare_config(cfg)
    return store.create_run(cfg.to_dict(), device, world_size=world_size)


def worker_command(run_id: str) -> list[str]:
    return [sys.executable, "-m", "advlens", "train", "--run-id", run_id]


def spawn_worker(run_id: str, store: RunStore | None = None) -> int:
    """Launch the detached worker process of ``run_id``; returns its pid."""
    store = store or RunStore()
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["ADVLENS_HOME"] = str(home())
    env["PYTHONUNBUFFERED"] = "1"
    pythonpath = env.get("PYTHONPATH", "")
    if str(PROJECT_ROOT) not in pythonpath.split(os.pathsep):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), pythonpath) if p)
    out = open(folder / "worker.out", "ab")
    try:
        proc = subprocess.Popen(
            worker_command(run_id),
            cwd=str(PROJECT_ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        store.finish(run_id, "failed", f"could not start the worker process: {exc}")
        raise
    finally:
        out.close()
    store.attach_worker(run_id, proc.pid)
    # Collect the exit status when the worker ends, so it does not linger as a zombie of this process.
    threading.Thread(target=proc.wait, name=f"advlens-worker-{run_id}", daemon=True).start()
    return proc.pid


class DuplicateRun(ConfigError):
    """The same configuration is already queued or running; ``run`` is that run."""

    def __init__(self, run: RunRecord):
        super().__init__(f"the same configuration is already {run.status} as run {run.id}.")
        self.run = run


def active_twin(cfg: TrainConfig, store: RunStore) -> RunRecord | None:
    """A queued or running run with exactly this configuration (a double click, a second Enter)."""
    wanted = cfg.to_dict()
    return next((r for r in store.list_runs(status=ACTIVE) if r.config == wanted), None)


def submit(cfg: TrainConfig, store: RunStore | None = None, allow_duplicate: bool = False) -> RunRecord:
    """Validate, queue and launch a run in the background. Returns its record.

    A configuration identical to a queued or running run raises :class:`DuplicateRun` unless
    ``allow_duplicate``: two identical runs at once are almost always one start pressed twice."""
    store = store or RunStore()
    cfg, device = prepare_config(cfg)  # the pinned device is part of what makes two runs the same
    twin = None if allow_duplicate else active_twin(cfg, store)
    if twin is not None:
        raise DuplicateRun(twin)
    rec = store.create_run(cfg.to_dict(), device)
    spawn_worker(rec.id, store)
    return store.require(rec.id)


def resume(run_id: str, store: RunStore | None = None) -> RunRecord:
    """Queue a cancelled or failed run again and launch its worker; training continues from the
    last checkpoint (or from the start when none was written)."""
    store = store or RunStore()
    store.reap_dead()
    rec = store.require(run_id)
    if rec.status == "done":
        raise ValueError(f"run {run_id} is done; start a new run to train longer.")
    cfg = TrainConfig.from_dict(rec.config)
    validate(cfg)
    store.requeue(run_id, cfg.resolved_device())
    spawn_worker(run_id, store)
    return store.require(run_id)


def cancel(run_id: str, store: RunStore | None = None) -> RunRecord:
    """Ask a run to stop: set the flag, and SIGTERM its worker if it lives on this host."""
    store = store or RunStore()
    rec = store.request_cancel(run_id)
    if rec.status == "running" and rec.pid and rec.host == _host():
        if rec.pid_start is None or process_start(rec.pid) == rec.pid_start:
            try:
                os.kill(rec.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
    return store.require(run_id)


def _host() -> str:
    from .store import hostname

    return hostname()


def wait(run_id: str, timeout: float = 600.0, store: RunStore | None = None, poll: float = 0.5) -> RunRecord:
    """Block until the run reaches a final status (or ``timeout``); reaps dead workers meanwhile."""
    store = store or RunStore()
    deadline = time.time() + timeout
    while True:
        store.reap_dead()
        rec = store.require(run_id)
        if rec.status in FINISHED or time.time() > deadline:
            return rec
        time.sleep(poll)


# ------------------------------------------------------------------------------ the worker
def _install_sigterm(stop) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        stop.set("cancelled by SIGTERM")

    signal.signal(signal.SIGTERM, handler)


def wait_for_turn(run_id: str, store: RunStore, log, stop) -> str:
    """Poll :meth:`RunStore.claim` until the run may start. Returns "started", or the status that
    keeps it from starting (cancelled, or running under another worker)."""
    announced = False
    while True:
        status = store.claim(run_id, max_runs_per_device())
        if status != "wait":
            return status
        if stop:
            store.request_cancel(run_id)
            return "cancelled"
        if not announced:
            ahead = store.position_in_queue(run_id)
            log(f"queued: {ahead} run(s) ahead on {store.require(run_id).device}; waiting for the device")
            announced = True
        time.sleep(CLAIM_POLL_S)


def execute(
    run_id: str,
    store: RunStore | None = None,
    dist_ctx: distributed.DistContext | None = None,
    interrupt_at: int | None = None,
    echo: bool = True,
) -> RunRecord:
    """The worker: wait for the device, train, and record the outcome. Never raises for a failed run."""
    from .loop import RunLogger, StopRequested, Trainer, format_exception

    store = store or RunStore()
    dist_ctx = dist_ctx or distributed.DistContext()
    stop = StopRequested()
    _install_sigterm(stop)
    log = RunLogger(run_dir(run_id) / "train.log" if dist_ctx.is_main else None, echo=echo and dist_ctx.is_main)
    status = ""
    if dist_ctx.is_main:
        rec = store.require(run_id)
        if rec.pid != os.getpid():
            store.attach_worker(run_id, os.getpid())
        status = wait_for_turn(run_id, store, log, stop)
        if status == "started":
            store.attach_worker(run_id, os.getpid())
    status = dist_ctx.broadcast_str(status)
    if status != "started":
        if dist_ctx.is_main:
            log(f"not started: the run is {status}")
        return store.require(run_id)
    try:
        cfg = TrainConfig.from_dict(store.require(run_id).config)
        Trainer(cfg, run_id, store, dist_ctx, stop=stop, interrupt_at=interrupt_at, echo=echo).fit()
    except BaseException as exc:  # record every failure, even KeyboardInterrupt, then re-raise the latter
        if dist_ctx.is_main:
            if isinstance(exc, ConfigError):
                message = str(exc)
            else:
                message = f"{type(exc).__name__}: {exc}"
            log("failed:\n" + format_exception(exc))
            try:
                store.finish(run_id, "failed", message)
            except Exception:  # the store itself failed; the log has the traceback
                pass
        if isinstance(exc, KeyboardInterrupt):
            raise
    return store.require(run_id)


def run_in_foreground(cfg: TrainConfig, store: RunStore | None = None, echo: bool = True) -> RunRecord:
    """``python -m advlens train`` without ``--detach``: create the run and be its worker (also
    under torchrun, where rank 0 creates the run and tells the other ranks its id)."""
    store = store or RunStore()
    import torch

    cfg, device = prepare_config(cfg)
    dist_ctx = distributed.init(use_cuda=device.startswith("cuda") and torch.cuda.is_available())
    try:
        run_id = ""
        if dist_ctx.is_main:
            rec = store.create_run(cfg.to_dict(), device, world_size=dist_ctx.world_size)
            store.attach_worker(rec.id, os.getpid())
            run_id = rec.id
        run_id = dist_ctx.broadcast_str(run_id)
        execute(run_id, store, dist_ctx, echo=echo)
        dist_ctx.barrier()  # rank 0 has recorded the outcome before any rank reads it
        return store.require(run_id)
    finally:
        distributed.shutdown(dist_ctx)


def run_existing(run_id: str, store: RunStore | None = None, echo: bool = True) -> RunRecord:
    """``python -m advlens train --run-id ID``: be the worker of a run the UI (or --detach) created,
    or continue a cancelled/failed run from its checkpoint."""
    store = store or RunStore()
    import torch

    rec = store.require(run_id)
    if rec.status in ("cancelled", "failed"):
        cfg = TrainConfig.from_dict(rec.config)
        validate(cfg)
        store.requeue(run_id, cfg.resolved_device())
        rec = store.require(run_id)
    elif rec.status == "done":
        raise ValueError(f"run {run_id} is already done.")
    dist_ctx = distributed.init(use_cuda=rec.device.startswith("cuda") and torch.cuda.is_available())
    try:
        execute(run_id, store, dist_ctx, echo=echo)
        dist_ctx.barrier()
        return store.require(run_id)
    finally:
        distributed.shutdown(dist_ctx)


def default_model_path(run: RunRecord) -> Path | None:
    """The final checkpoint of a finished run, when it exists."""
    if run.final_path and Path(run.final_path).is_file():
        return Path(run.final_path)
    p = run_dir(run.id) / "final.safetensors"
    return p if p.is_file() else None
