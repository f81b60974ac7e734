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
import sys
from pathlib import Path

from ..workers import cancel, install_sigterm, spawn_worker, wait, wait_for_turn
from . import distributed
from .config import ConfigError, TrainConfig, validate
from .store import ACTIVE, RunRecord, RunStore, run_dir

__all__ = ["cancel", "create", "execute", "resume", "run_existing", "run_in_foreground", "submit", "wait"]


def worker_command(run_id: str) -> list[str]:
    return [sys.executable, "-m", "advlens", "train", "--run-id", run_id]


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
    spawn_worker(rec.id, worker_command(rec.id), store)
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
    spawn_worker(run_id, worker_command(run_id), store)
    return store.require(run_id)


# ------------------------------------------------------------------------------ the worker
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
    install_sigterm(stop)
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
        if dist_ctx.is_main and store.require(run_id).status == "done":
            queue_quick_evaluation(store.require(run_id), store, log)
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


AUTO_EVALUATE_N = 500  # test images for the quick evaluation queued after a run finishes


def queue_quick_evaluation(rec: RunRecord, store: RunStore, log=print):
    """Queue the ``quick`` suite on a finished run's model, at its training budget (or the budget
    suggested for its images), on AUTO_EVALUATE_N test images chosen by the one subset rule (the first
    ones in an official order, a class-stratified sample of an image folder). ADVLENS_AUTO_EVALUATE=0
    turns it off. A failure to queue is logged, never raised: the run itself is done."""
    if os.environ.get("ADVLENS_AUTO_EVALUATE", "1") == "0":
        return None
    from ..evaluation import EvalSpec
    from ..evaluation import jobs as eval_jobs
    from ..zoo import load_model, suggested_linf_eps

    try:
        eps = suggested_linf_eps(load_model(rec.zoo_name, "cpu"))
        spec = EvalSpec(
            models=[rec.zoo_name],
            dataset=rec.dataset,
            root=rec.config.get("data_root"),
            eps=[eps],
            suite="quick",
            n=AUTO_EVALUATE_N,
            checklist=False,
            device=rec.device,
            name=f"after training run {rec.id}",
        )
        ev = eval_jobs.submit(spec, store)
    except Exception as exc:
        log(f"the quick evaluation could not be queued: {exc}")
        return None
    log(f"queued evaluation {ev.id}: the quick suite at eps {eps:.4g} on {AUTO_EVALUATE_N} test images")
    return ev


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
