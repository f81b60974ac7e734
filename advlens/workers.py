"""Worker processes of the run store: launch them detached, wait for the device, cancel, wait.

Training runs and evaluations are both *runs* of :class:`~advlens.training.store.RunStore` and share
one queue per device. Each worker is its own OS process (``python -m advlens train|evaluate
--run-id ID``), started detached so it survives the UI; it polls :meth:`RunStore.claim` until its
turn comes, and stops gracefully when the cancel flag is set or it receives SIGTERM. See
:mod:`advlens.training.jobs` for the whole design.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from .paths import PROJECT_ROOT, home
from .training.store import FINISHED, RunRecord, RunStore, hostname, process_start, run_dir

CLAIM_POLL_S = 1.0
JOB_LABELS = {"train": "training", "evaluate": "evaluation", "perturbation": "perturbation"}  # run kind -> words
WORKER_ENV = "ADVLENS_WORKER"


def max_runs_per_device() -> int:
    try:
        return max(1, int(os.environ.get("ADVLENS_MAX_RUNS_PER_DEVICE", "1")))
    except ValueError:
        return 1


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
    """Ask a run to stop: set the flag, and SIGTERM its worker if it lives on this host."""
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
    """Block until the run reaches a final status (or ``timeout``); reaps dead workers meanwhile."""
    store = store or RunStore()
    deadline = time.time() + timeout
    while True:
        store.reap_dead()
        rec = store.require(run_id)
        if rec.status in FINISHED or time.time() > deadline:
            return rec
        time.sleep(poll)


def install_sigterm(stop) -> None:
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
        if status == "started" and os.environ.get(WORKER_ENV) == "1":
            from .threads import enter_job

            kind = JOB_LABELS.get(store.require(run_id).kind, "training")
            log(f"{enter_job(kind)} torch thread(s) for this {kind} job (advlens.threads)")
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


def run_job(run_id: str, store: RunStore, what: str, body, echo: bool = True) -> RunRecord:
    """The worker loop of a job kind that runs in one piece: wait for the device, then
    ``body(rec, progress, should_stop, log)``, and record the outcome. ``progress(fraction)`` puts the
    share done and an ETA in the run's row; ``body`` returns the fields :meth:`RunStore.finish` records
    for a finished job (``metrics``, ``final_path``), or None when it stopped on request (cancelled).
    Never raises for a failed job (the run's message says what went wrong), except KeyboardInterrupt."""
    from .training.loop import RunLogger, StopRequested, format_exception

    log = RunLogger(run_dir(run_id) / "train.log", echo=echo)
    stop = StopRequested()
    install_sigterm(stop)
    rec = store.require(run_id)
    if rec.pid != os.getpid():
        store.attach_worker(run_id, os.getpid())
    status = wait_for_turn(run_id, store, log, stop)
    if status != "started":
        log(f"not started: the {what} is {status}")
        return store.require(run_id)
    store.attach_worker(run_id, os.getpid())
    t0 = time.time()
    scale = 1000

    def progress(fraction: float) -> None:
        elapsed = time.time() - t0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
        store.update(run_id, step=int(fraction * scale), total_steps=scale, eta_s=eta)

    def should_stop() -> bool:
        return bool(stop) or store.cancel_requested(run_id)

    try:
        fields = body(store.require(run_id), progress, should_stop, log)
        if fields is None:
            store.finish(run_id, "cancelled", f"cancelled; resume starts the {what} again")
            log("cancelled")
        else:
            store.finish(run_id, "done", "", step=scale, total_steps=scale, **fields)
            log("done")
    except BaseException as exc:
        log("failed:\n" + format_exception(exc))
        message = str(exc) if isinstance(exc, (ValueError, KeyError)) else f"{type(exc).__name__}: {exc}"
        try:
            store.finish(run_id, "failed", message)
        except Exception:
            pass
        if isinstance(exc, KeyboardInterrupt):
            raise
    return store.require(run_id)
