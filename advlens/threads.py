"""How many torch threads each kind of work uses, and how many heavy interactive calls run at once.

On a shared CPU torch's default (one intra-op thread per core, in every process and in every
Streamlit session) oversubscribes the cores: each op ends at a barrier where all its threads wait
for the slowest, so a thread that lost its core stalls the whole op (Lite0 PGD-3 took about 17 s
with two threads beside two busy processes on 2 cores, against 1 s with one). The policy:

- **Budget.** advlens may use ``ADVLENS_THREADS`` threads in all (default: the CPUs this process may
  run on).
- **Jobs** (training and evaluation workers, each its own process) leave one thread to the UI when
  the budget has more than one, and share the rest: a job gets ``(budget - 1) // jobs`` threads (at
  least 1), ``jobs`` counting itself. A running job registers itself with a small file
  ``$ADVLENS_HOME/threads/<pid>.json``; files of dead processes are ignored and removed.
- **Interactive calls** (an attack, a CAM, a sweep started from a page) share what the jobs leave
  (``available = budget - the jobs' threads``, at least 1). Each runs with ``available // 2``
  threads, between 1 and 4, and by default one runs at a time in a process
  (``ADVLENS_INTERACTIVE_CALLS`` raises that); the others wait in line, first come first served,
  and the page shows their place (:data:`GATE`). Measured on the 2-core machine (Lite0 at batch 1):

  * Streamlit runs each page in a thread of its own, and from such a thread torch's OpenMP
    threads scale worse than from a main thread: a forward pass took 0.34 s with two threads and
    0.28 s with one (0.16 s and 0.23 s from the main thread). Hence half the cores per call.
  * Two heavy calls from two threads of one process, one torch thread each, do not run side by
    side: each took 2.0-2.6x as long as alone (batch 1 and batch 8 alike), while two processes
    ran side by side at 1.0x. Taking turns finishes the first at 1x and the second at 2x instead
    of both at 2x or more. Hence one call at a time.

- **Turns.** A long call must not hold the line for its whole length (a C&W on Lite0 kept 20
  sessions' 0.05 s PGDs waiting for it: ``bench/load_test.py``). A call that reports its steps calls
  :meth:`Gate.take_turns` between them (the pages' progress callback does); once it has run for
  :data:`TURN_S` with others in line, it steps aside, joins the back of the line and goes on when its
  turn comes again (round robin). It keeps torch's random state across the pause, so a call's result
  does not depend on what ran in between (each call seeds its own draws), and lets go of its model
  locks (:mod:`advlens.models.modes`) while it waits, since a call on the same model would otherwise
  wait for it while it waits for that call.

``torch.set_num_threads`` is process-wide in name, but with torch's OpenMP backend each thread keeps
the count it last set (a new thread starts from the last value set anywhere), so the gate sets it in
the thread that runs the call, right before the call. Bounding the calls that run together is what
keeps concurrent sessions of one Streamlit process off each other's cores.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .paths import home

ENV = "ADVLENS_THREADS"
CALLS_ENV = "ADVLENS_INTERACTIVE_CALLS"
PER_CALL_MAX = 4
PLAN_TTL_S = 2.0  # how long the interactive plan is reused before the job files are read again
WAIT_POLL_S = 0.25
TURN_S = 1.0  # how long a call runs before it lets the calls waiting in line go first (Gate.take_turns)


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def budget() -> int:
    """``ADVLENS_THREADS`` (a whole number >= 1), else :func:`cores`. A bad value is ignored."""
    text = os.environ.get(ENV, "").strip()
    if text.isdigit() and 0 < int(text) <= 4096:
        return int(text)
    return cores()


def jobs_dir():
    return home() / "threads"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def running_jobs() -> list[dict]:
    """The registered jobs whose process lives: ``{"pid", "kind", "threads"}`` each. Never creates
    the folder; removes the files of dead processes."""
    folder = jobs_dir()
    out = []
    try:
        paths = list(folder.glob("*.json")) if folder.is_dir() else []
    except OSError:
        return out
    for path in paths[:256]:
        try:
            if path.stat().st_size > 4096:
                continue
            rec = json.loads(path.read_text())
            pid, threads = int(rec["pid"]), int(rec["threads"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid != os.getpid() and not _alive(pid):
            try:
                path.unlink()
            except OSError:
                pass
            continue
        out.append({"pid": pid, "kind": str(rec.get("kind", "job")), "threads": max(1, threads)})
    return out


def job_threads(others: int | None = None, total: int | None = None) -> int:
    """Threads for a training or evaluation job, with ``others`` other jobs running."""
    total = budget() if total is None else total
    others = len([j for j in running_jobs() if j["pid"] != os.getpid()]) if others is None else others
    spare = total - 1 if total > 1 else total
    return max(1, spare // (others + 1))


def interactive_plan(jobs: list[dict] | None = None, total: int | None = None) -> tuple[int, int]:
    """(threads per interactive call, how many such calls may run at once)."""
    total = budget() if total is None else total
    jobs = running_jobs() if jobs is None else jobs
    available = max(1, total - sum(j["threads"] for j in jobs if j["pid"] != os.getpid()))
    per_call = max(1, min(available // 2, PER_CALL_MAX))
    return per_call, max(1, min(max_calls(), available // per_call))


def max_calls() -> int:
    """How many heavy interactive calls may run at once in a process: ``ADVLENS_INTERACTIVE_CALLS``
    (a whole number >= 1), default 1 (see the module's notes)."""
    text = os.environ.get(CALLS_ENV, "").strip()
    return int(text) if text.isdigit() and 0 < int(text) <= 64 else 1


def set_threads(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def enter_job(kind: str = "training") -> int:
    """Called by a job's worker process when its turn comes: choose its threads, set them, and
    register the job (so the UI and other jobs leave it its cores). Returns the thread count."""
    n = job_threads()
    set_threads(n)
    try:
        folder = jobs_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{os.getpid()}.json"
        path.write_text(json.dumps({"pid": os.getpid(), "kind": kind, "threads": n, "since": time.time()}))
    except OSError:  # a read-only home: the job still runs, unregistered
        return n
    import atexit

    atexit.register(_leave, path)
    return n


def _leave(path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


class Gate:
    """A process-wide, first-come first-served bound on heavy interactive calls.

    ``with GATE.slot(on_wait)``: waits for a free slot (``on_wait(position)`` is called whenever
    the caller's place in the line changes: 1 = next), then sets this thread's torch threads to the
    plan's count. Re-entrant within a thread (a call inside a call takes no second slot).
    """

    def __init__(self, plan: Callable[[], tuple[int, int]] = interactive_plan):
        self._plan_fn = plan
        self._cond = threading.Condition()
        self._line: deque = deque()
        self._running = 0
        self._local = threading.local()
        self._plan = (0.0, (1, 1))

    def plan(self) -> tuple[int, int]:
        stamp, plan = self._plan
        now = time.monotonic()
        if now - stamp > PLAN_TTL_S:
            plan = self._plan_fn()
            self._plan = (now, plan)
        return plan

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._line)

    @contextmanager
    def slot(self, on_wait: Callable[[int], None] | None = None) -> Iterator[int]:
        if getattr(self._local, "held", 0):
            self._local.held += 1
            try:
                yield self.plan()[0]
            finally:
                self._local.held -= 1
            return
        with self._cond:
            ticket = object()
            self._line.append(ticket)
        threads = self._wait_turn(ticket, on_wait)
        self._local.held, self._local.since = 1, time.monotonic()
        try:
            set_threads(threads)
            yield threads
        finally:
            self._local.held = 0
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def _wait_turn(self, ticket, on_wait: Callable[[int], None] | None = None) -> int:
        """Wait until ``ticket`` (already in line) may run; take its slot; return the threads to use."""
        shown = None
        try:
            while True:
                threads, slots = self.plan()
                with self._cond:
                    if self._line[0] is ticket and self._running < slots:
                        self._line.popleft()
                        self._running += 1
                        return threads
                    position = self._line.index(ticket) + max(0, self._running - slots + 1)
                if on_wait is not None and position != shown:
                    shown = position
                    on_wait(position)
                with self._cond:
                    self._cond.wait(WAIT_POLL_S)
        except BaseException:
            with self._cond:
                if ticket in self._line:
                    self._line.remove(ticket)
                self._cond.notify_all()
            raise

    def take_turns(self) -> bool:
        """Called by a running call between its steps: after :data:`TURN_S` in its slot, if others
        wait in line, give the slot up, wait at the back of the line, and take it again (with
        torch's random state as it was). Returns whether it stepped aside. Cheap when it does not."""
        local = self._local
        if not getattr(local, "held", 0) or time.monotonic() - local.since < TURN_S or not self._line:
            return False
        import torch

        from .models.modes import release_held_locks

        rng = torch.get_rng_state()
        on_gpu = torch.cuda.is_available() and torch.cuda.is_initialized()
        gpu_rng = torch.cuda.get_rng_state_all() if on_gpu else None
        take_back = release_held_locks()  # a call on the same model must not wait for this one
        with self._cond:
            ticket = object()
            self._line.append(ticket)
            self._running -= 1
            self._cond.notify_all()
        try:
            threads = self._wait_turn(ticket)
        except BaseException:  # keep the count of running calls right: the slot's exit gives it back
            with self._cond:
                self._running += 1
            take_back()
            raise
        take_back()  # the slot first, then the models: the order every call takes them in
        torch.set_rng_state(rng)
        if gpu_rng is not None:
            torch.cuda.set_rng_state_all(gpu_rng)
        set_threads(threads)
        local.since = time.monotonic()
        return True


GATE = Gate()


def interactive(on_wait: Callable[[int], None] | None = None):
    """``with interactive(on_wait): ...`` runs one heavy interactive engine call under the policy."""
    return GATE.slot(on_wait)


def take_turns() -> bool:
    """Between the steps of a heavy interactive call: let the calls waiting in line go first once
    this one has run for :data:`TURN_S` (see :meth:`Gate.take_turns`)."""
    return GATE.take_turns()


def set_interactive_threads() -> int:
    """Set the calling thread's torch threads to the interactive plan's (for light work outside the
    gate, such as a page's predictions). Cheap: the plan is reused for a few seconds."""
    n = GATE.plan()[0]
    set_threads(n)
    return n
