"""Job kinds: what a background job does, as a small registered class (the way attacks are).

A kind lives with its feature (``advlens/training/jobs.py``, ``advlens/evaluation/jobs.py``,
``advlens/certify.py``, ...) and is registered with :func:`register_kind`. It says

- ``name`` (the store's ``kind`` column), ``label`` (words: "evaluation") and ``stopped`` (what a
  cancelled job's message says resume does);
- :meth:`JobKind.validate`: check a spec (a JSON-able dict) before anything is queued, raising the
  kind's one-line config error; returns the spec to store;
- :meth:`JobKind.describe`: the row's ``meta`` (a ``title`` for listings, and the kind's own fields);
- :meth:`JobKind.execute`: the work, given the job's record, ``progress(fraction)``, ``should_stop()``
  and ``log(line)``. It returns the fields :meth:`~advlens.jobs.store.RunStore.finish` records
  (``metrics``, ``final_path``), ``None`` when it stopped on request, or :data:`RECORDED` when it
  recorded its outcome itself (training's trainer does).

Submit, resume, cancel and the worker loop are written once, in :mod:`advlens.jobs.api`. The
generic worker process is ``python -m advlens.jobs <id>``: it imports the module the row names
(``meta["module"]``, recorded at submit) so the kind registers itself, then runs the loop.
"""

from __future__ import annotations

import importlib
import sys

from ..registry import Registry
from .store import LEGACY_MODULES, RunRecord

RECORDED = "recorded"  # what execute returns when the kind recorded the job's outcome itself


class JobKind:
    """The base of every job kind; subclasses set ``name`` and override what differs."""

    name = ""
    label = "job"
    stopped = "cancelled; resume starts it again"
    config_error: type[Exception] = ValueError
    rerun_when_done = False  # may a done job be resumed (run again)?
    done_hint = ""  # what to do instead, in the message refusing to resume a done job
    store = None  # the job's RunStore, set by the worker loop before execute

    def validate(self, spec: dict) -> dict:
        return dict(spec)

    def describe(self, spec: dict) -> dict:
        return {"title": spec.get("name") or self.label}

    def device(self, spec: dict) -> str:
        """The queue of the job: 'cpu' or 'cuda:N' from the spec's ``device`` (the one resolver)."""
        from ..device import queue_device

        try:
            return queue_device(spec.get("device"))
        except ValueError as exc:
            raise self.config_error(str(exc)) from None

    def requeue_device(self, job: RunRecord) -> str:
        """The queue a resumed job joins (by default the one it was submitted to)."""
        return job.device

    def worker_command(self, job_id: str) -> list[str]:
        return [sys.executable, "-m", "advlens.jobs", job_id]

    def execute(self, job: RunRecord, progress, should_stop, log):
        raise NotImplementedError


KINDS: Registry[type[JobKind]] = Registry("job kind", error=ValueError)


def register_kind(cls: type[JobKind]) -> type[JobKind]:
    """Class decorator: make ``cls`` a job kind under ``cls.name``."""
    return KINDS.add(cls)


# Where the kinds of advlens register themselves, so a kind can be named before its module is loaded
# (a finished training run queues an evaluation by name; a worker reads its row's kind).
HOMES = {**LEGACY_MODULES, "certify": "advlens.certify", "attention": "advlens.attention_study"}


def _load(module: str | None) -> None:
    if module and module.startswith("advlens.") and module.replace(".", "").replace("_", "").isalnum():
        importlib.import_module(module)


def get_kind(name: str) -> JobKind:
    """A fresh instance of the kind ``name`` (ValueError naming the known kinds when unknown)."""
    if name not in KINDS:
        _load(HOMES.get(name))
    return KINDS.lookup(name)()


def kind_of(job: RunRecord) -> JobKind:
    """The kind of a stored job, importing the module that registers it when it is not loaded yet."""
    if job.kind not in KINDS:
        _load(job.meta.get("module") or HOMES.get(job.kind))
    return get_kind(job.kind)
