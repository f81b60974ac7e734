"""Background jobs: one store, one worker loop, one queue per device, for every kind of long work.

Training runs, evaluations, universal perturbations/patches, certifications of many images and the
attention-shift study are *jobs*: rows of the SQLite store (:mod:`advlens.jobs.store`), each run by a
detached worker process (:mod:`advlens.jobs.worker`) that waits for its device's turn, reports
progress and an ETA, stops on request and resumes from what it saved. What a job does is its *kind*,
a small class registered with :func:`~advlens.jobs.kinds.register_kind` in the module of its feature;
submit, resume, cancel and the worker loop are written once (:mod:`advlens.jobs.api`).

This package sits below training and evaluation and above the zoo: it imports neither.
"""

from .api import Progress, cancel, execute, list_jobs, progress_text, resume, submit, wait
from .kinds import RECORDED, JobKind, get_kind, kind_of, register_kind
from .store import ACTIVE, FINISHED, RunRecord, RunStore, db_path, read_log_tail, run_dir

__all__ = [
    "ACTIVE",
    "FINISHED",
    "RECORDED",
    "JobKind",
    "Progress",
    "RunRecord",
    "RunStore",
    "cancel",
    "db_path",
    "execute",
    "get_kind",
    "kind_of",
    "list_jobs",
    "progress_text",
    "read_log_tail",
    "register_kind",
    "resume",
    "run_dir",
    "submit",
    "wait",
]
