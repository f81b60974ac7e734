"""Training runs as jobs: the ``train`` kind of :mod:`advlens.jobs`, and the functions the pages and CLI call.

The job machinery (the store, the detached worker, the queue per device, cancel, resume, dead-worker
reaping) is :mod:`advlens.jobs`; this module says what is particular to training. :func:`submit`
validates the config (a bad one raises :class:`~advlens.training.config.ConfigError` before anything
is created), refuses a twin of a queued or running run, and queues it; its worker is
``python -m advlens train --run-id <id>`` (so ``torchrun`` can be its launcher), which runs the one
worker loop :func:`advlens.jobs.api.execute` with :class:`TrainingJob`. The trainer checkpoints as it
goes and records its own outcome; a cancelled or failed run resumes from ``checkpoints/latest.json``.
When a run is done, a quick evaluation of its model is queued (:func:`queue_quick_evaluation`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..jobs import api
from ..jobs.kinds import RECORDED, JobKind, register_kind
from ..jobs.store import ACTIVE, RunRecord, RunStore, run_dir
from ..jobs.worker import cancel, spawn_worker, wait
from . import distributed
from .config import ConfigError, TrainConfig, validate

__all__ = ["cancel", "create", "execute", "resume", "run_existing", "run_in_foreground", "submit", "wait"]


@register_kind
class TrainingJob(JobKind):
    """A training run: its spec is a :class:`~advlens.training.config.TrainConfig` as a dict."""

    name = "train"
    label = "training"
    done_hint = "; start a new run to train longer."
    stopped = "cancelled; resume continues from the last checkpoint"
    config_error = ConfigError

    def __init__(self, dist_ctx: distributed.DistContext | None = None, interrupt_at: int | None = None, echo=True):
        self.dist_ctx, self.interrupt_at, self.echo = dist_ctx, interrupt_at, echo

    def validate(self, spec: dict) -> dict:
        cfg = TrainConfig.from_dict(spec)
        validate(cfg)
        return cfg.to_dict()

    def requeue_device(self, job: RunRecord) -> str:
        cfg = TrainConfig.from_dict(job.config)
        validate(cfg)
        return cfg.resolved_device()

    def describe(self, spec: dict) -> dict:
        return {"title": f"{spec['objective']} · {spec['arch']} on {spec['dataset']}"}

    def worker_command(self, job_id: str) -> list[str]:
        return worker_command(job_id)

    def execute(self, job: RunRecord, progress, should_stop, log):
        from .loop import Trainer

        store = self.store
        dist_ctx = self.dist_ctx or distributed.DistContext()
        cfg = TrainConfig.from_dict(job.config)
        Trainer(cfg, job.id, store, dist_ctx, stop=should_stop, interrupt_at=self.interrupt_at, echo=self.echo).fit()
        if dist_ctx.is_main and store.require(job.id).status == "done":
            queue_quick_evaluation(store.require(job.id), store, log)
        return RECORDED  # the trainer recorded done/cancelled itself


def worker_command(run_id: str) -> list[str]:
    return [sys.executable, "-m", "advlens", "train", "--run-id", run_id]


def prepare_config(cfg: TrainConfig) -> tuple[TrainConfig, str]:
    """Validate ``cfg`` and pin its device (so the worker uses the device the UI showed)."""
    validate(cfg)
    device = cfg.resolved_device()
    cfg.device = device
    return cfg, device


def create(cfg: TrainConfig, store: RunStore | None = None, world_size: int = 1, validated: bool = False) -> RunRecord:
    """Validate and insert a queued run (no worker yet). ``validated``: the caller has just run
    :func:`prepare_config` on ``cfg`` (its checks, which may load an ``init_from`` model, are not repeated)."""
    if not validated:
        cfg, _ = prepare_config(cfg)
    return api.create(TrainingJob(), cfg.to_dict(), store, world_size=world_size, validated=True)


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
    cfg, _ = prepare_config(cfg)  # the pinned device is part of what makes two runs the same
    twin = None if allow_duplicate else active_twin(cfg, store)
    if twin is not None:
        raise DuplicateRun(twin)
    return api.submit(TrainingJob(), cfg.to_dict(), store, spawn=spawn_worker, validated=True)


def resume(run_id: str, store: RunStore | None = None) -> RunRecord:
    """Queue a cancelled or failed run again and launch its worker; training continues from the
    last checkpoint (or from the start when none was written)."""
    return api.resume(run_id, store, spawn=spawn_worker)


# ------------------------------------------------------------------------------ the worker
def execute(
    run_id: str,
    store: RunStore | None = None,
    dist_ctx: distributed.DistContext | None = None,
    interrupt_at: int | None = None,
    echo: bool = True,
) -> RunRecord:
    """The worker: :func:`advlens.jobs.api.execute` with this run's trainer. Rank 0 waits for the
    device and records; the other ranks follow its verdict. Never raises for a failed run."""
    dist_ctx = dist_ctx or distributed.DistContext()
    kind = TrainingJob(dist_ctx, interrupt_at, echo)
    return api.execute(run_id, store, echo=echo, kind=kind, is_main=dist_ctx.is_main, broadcast=dist_ctx.broadcast_str)


AUTO_EVALUATE_N = 500  # test images for the quick evaluation queued after a run finishes


def queue_quick_evaluation(rec: RunRecord, store: RunStore, log=print):
    """Queue the ``quick`` suite on a finished run's model, at its training budget (or the budget
    suggested for its images), on AUTO_EVALUATE_N test images chosen by the one subset rule (the first
    ones in an official order, a class-stratified sample of an image folder). ADVLENS_AUTO_EVALUATE=0
    turns it off. A failure to queue is logged, never raised: the run itself is done."""
    if os.environ.get("ADVLENS_AUTO_EVALUATE", "1") == "0":
        return None
    from ..zoo import load_model, suggested_linf_eps

    try:
        eps = suggested_linf_eps(load_model(rec.zoo_name, "cpu"))
        spec = {  # an evaluation spec (advlens.evaluation.spec.EvalSpec), queued by kind name
            "models": [rec.zoo_name],
            "dataset": rec.dataset,
            "root": rec.config.get("data_root"),
            "eps": [eps],
            "suite": "quick",
            "n": AUTO_EVALUATE_N,
            "checklist": False,
            "device": rec.device,
            "name": f"after training run {rec.id}",
        }
        ev = api.submit("evaluate", spec, store, spawn=spawn_worker)
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
            rec = create(cfg, store, world_size=dist_ctx.world_size, validated=True)
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
        store.requeue(run_id, TrainingJob().requeue_device(rec))
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
