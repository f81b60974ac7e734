"""Worker processes of the job store: launch them detached, wait for the device, stop, cancel, wait.

Every job (a training run, an evaluation, a certification, ...) is a row of
:class:`~advlens.jobs.store.RunStore` and shares one queue per device. Each worker is its own OS
process, started detached (``start_new_session``, stdin closed, output to ``runs/<id>/worker.out``)
so it survives the browser tab closing and the Streamlit server restarting. It polls
:meth:`RunStore.claim` until its turn comes (:func:`wait_for_turn`), writes its log to the file named
for its kind (:class:`JobLog`), and stops gracefully when the store's cancel flag is set or it
receives SIGTERM (:class:`StopFlag`, :func:`install_sigterm`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import traceback
from pathlib import Path

from ..paths import PROJECT_ROOT, home
from .store import FINISHED, RunRecord, RunStore, hostname, process_start, run_dir

CLAIM_POLL_S = 1.0
CANCEL_POLL_S = 1.0  # a StopFlag reads the store's cancel flag at most this often (seconds)
WORKER_ENV = "ADVLENS_WORKER"


def max_runs_per_device() -> int:
    """Jobs one device runs at once (``ADVLENS_MAX_RUNS_PER_DEVICE``, default 1)."""
    try:
        return max(1, int(os.environ.get("ADVLENS_MAX_RUNS_PER_DEVICE", "1")))
    except ValueError:
        return 1


class JobLog:
    """Appends timestamped lines to a job's log file (``None``: no file) and echoes them to stdout."""

    def __init__(self, path: Path | None, echo: bool = True):
        self.path = path
        self.echo = echo

    def __call__(self, msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        if self.echo:
            print(line, flush=True)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")


class StopFlag:
    """Why a job should stop early. ``set`` by SIGTERM (or a step limit); calling it also reads the
    store's cancel flag, so ``should_stop()`` is the one question a kind's loop asks between steps.

    The store is read at most every ``poll_s`` seconds (the first call reads at once), since a loop may
    ask every iteration; a cancel requested by this process (:meth:`RunStore.request_cancel`) is read at
    the next call, and SIGTERM sets the flag at once."""

    def __init__(self, store: RunStore | None = None, job_id: str | None = None, poll_s: float = CANCEL_POLL_S):
        self.event = threading.Event()
        self.reason = ""
        self.store, self.job_id, self.poll_s = store, job_id, poll_s
        self._last_read: float | None = None
        self._cancels_seen = -1

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    def __bool__(self) -> bool:
        return self.event.is_set()

    def _read_due(self) -> bool:
        now = time.monotonic()
        asked_here = RunStore.cancels_requested != self._cancels_seen
        if not asked_here and self._last_read is not None and now - self._last_read < self.poll_s:
            return False
        self._last_read, self._cancels_seen = now, RunStore.cancels_requested
        return True

    def __call__(self) -> bool:
        if not self and self.store is not None and self._read_due() and self.store.cancel_requested(self.job_id):
            self.set("cancelled from the store")
        return bool(self)


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def install_sigterm(stop: StopFlag) -> None:
    """SIGTERM (what :func:`cancel` sends) sets ``stop``: the job stops at its next step, saved."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        stop.set("cancelled by SIGTERM")

    signal.signal(signal.SIGTERM, handler)


def spawn_worker(run_id: str, command: list[str], store: RunStore | None = None) -> int:
    """Launch ``command``, the detached worker process of ``run_id``; returns its pid."""
    store = store or RunStore()
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["ADVLENS_HOME"] = str(home())
    env["PYTHONUNBUFFERED"] = "1"
    env[WORKER_ENV] = "1"  # a detached job: it takes its torch threads from advlens.threads
    pythonpath = env.get("PYTHONPATH", "")
    if str(PROJECT_ROOT) not in pythonpath.split(os.pathsep):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), pythonpath) if p)
    out = open(folder / "worker.out", "ab")
    try:
        proc = subprocess.Popen(
            command,
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


def cancel(run_id: str, store: RunStore | None = None) -> RunRecord:
    """Ask a job to stop: set the flag, and SIGTERM its worker if it lives on this host."""
    store = store or RunStore()
    rec = store.request_cancel(run_id)
    if rec.status == "running" and rec.pid and rec.host == hostname():
        if rec.pid_start is None or process_start(rec.pid) == rec.pid_start:
            try:
                os.kill(rec.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
    return store.require(run_id)


def wait(run_id: str, timeout: float = 600.0, store: RunStore | None = None, poll: float = 0.5) -> RunRecord:
    """Block until the job reaches a final status (or ``timeout``); reaps dead workers meanwhile."""
    store = store or RunStore()
    deadline = time.time() + timeout
    while True:
        store.reap_dead()
        rec = store.require(run_id)
        if rec.status in FINISHED or time.time() > deadline:
            return rec
        time.sleep(poll)


def wait_for_turn(run_id: str, store: RunStore, log, stop, label: str = "job") -> str:
    """Poll :meth:`RunStore.claim` until the job may start. Returns "started", or the status that
    keeps it from starting (cancelled, or running under another worker)."""
    announced = False
    while True:
        status = store.claim(run_id, max_runs_per_device())
        if status == "started" and os.environ.get(WORKER_ENV) == "1":
            from ..threads import enter_job

            log(f"{enter_job(label)} torch thread(s) for this {label} job (advlens.threads)")
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
