"""The CPU policy (advlens.threads): how many torch threads each kind of work gets, the registry of
running jobs, and the gate that bounds heavy interactive calls (first come, first served, with the
waiting caller's place in line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from advlens import threads


def test_budget_reads_advlens_threads_and_ignores_a_bad_value(monkeypatch):
    monkeypatch.setenv("ADVLENS_THREADS", "3")
    assert threads.budget() == 3
    for bad in ("0", "-2", "two", "1.5", ""):
        monkeypatch.setenv("ADVLENS_THREADS", bad)
        assert threads.budget() == threads.cores()


@pytest.mark.parametrize(
    ("total", "others", "expected"), [(1, 0, 1), (2, 0, 1), (2, 1, 1), (4, 0, 3), (16, 0, 15), (16, 2, 5)]
)
def test_a_job_leaves_one_thread_to_the_ui_and_shares_the_rest(total, others, expected):
    assert threads.job_threads(others=others, total=total) == expected


@pytest.mark.parametrize(
    ("total", "job_threads", "calls", "expected"),
    [
        (1, [], "", (1, 1)),
        (2, [], "", (1, 1)),  # one call at a time, on one thread (see the module's measurements)
        (2, [], "2", (1, 2)),
        (2, [1], "2", (1, 1)),  # beside a training job: the core the job leaves
        (8, [], "", (4, 1)),
        (16, [], "8", (4, 4)),
        (16, [15], "8", (1, 1)),
        (16, [1, 1], "8", (4, 3)),
        (16, [], "zero", (4, 1)),
    ],
)
def test_interactive_calls_share_what_the_jobs_leave(monkeypatch, total, job_threads, calls, expected):
    monkeypatch.setenv("ADVLENS_INTERACTIVE_CALLS", calls)
    jobs = [{"pid": -1 - i, "kind": "training", "threads": n} for i, n in enumerate(job_threads)]
    assert threads.interactive_plan(jobs=jobs, total=total) == expected


def test_running_jobs_counts_live_processes_and_drops_dead_ones(monkeypatch):
    folder = threads.jobs_dir()
    assert threads.running_jobs() == []
    assert not folder.exists()  # reading never creates the folder
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder.mkdir(parents=True)
    (folder / f"{dead.pid}.json").write_text(json.dumps({"pid": dead.pid, "kind": "training", "threads": 1}))
    (folder / f"{os.getppid()}.json").write_text(json.dumps({"pid": os.getppid(), "kind": "evaluation", "threads": 1}))
    (folder / "junk.json").write_text("{not json")
    jobs = threads.running_jobs()
    assert [(j["pid"], j["kind"]) for j in jobs] == [(os.getppid(), "evaluation")]
    assert not (folder / f"{dead.pid}.json").exists()
    monkeypatch.setenv("ADVLENS_THREADS", "2")
    assert threads.interactive_plan() == (1, 1)  # the live job takes one of the two threads


def test_enter_job_sets_and_registers_its_threads(monkeypatch):
    set_to = []
    monkeypatch.setattr(threads, "set_threads", set_to.append)
    monkeypatch.setattr("atexit.register", lambda *a: None)
    monkeypatch.setenv("ADVLENS_THREADS", "4")
    assert threads.enter_job("evaluation") == 3
    assert set_to == [3]
    rec = json.loads((threads.jobs_dir() / f"{os.getpid()}.json").read_text())
    assert rec["kind"] == "evaluation" and rec["threads"] == 3
    # The job's own file never counts against the job itself.
    monkeypatch.setenv("ADVLENS_INTERACTIVE_CALLS", "4")
    assert threads.interactive_plan() == (2, 2)


def _wait_until(cond, what: str) -> None:
    for _ in range(2000):
        if cond():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_gate_runs_calls_in_turn_and_shows_the_waiting_place(monkeypatch):
    set_to = []
    monkeypatch.setattr(threads, "set_threads", set_to.append)
    gate = threads.Gate(plan=lambda: (1, 1))
    inside, release = threading.Event(), threading.Event()
    order, places = [], []

    def first():
        with gate.slot():
            order.append("first")
            inside.set()
            release.wait(10)

    def second():
        with gate.slot(places.append):
            order.append("second")

    t1 = threading.Thread(target=first)
    t1.start()
    assert inside.wait(10)
    t2 = threading.Thread(target=second)
    t2.start()
    _wait_until(lambda: places, "the second call to report its place")
    assert places == [1] and order == ["first"] and gate.waiting == 1 and gate.running == 1
    release.set()
    t1.join(10)
    t2.join(10)
    assert order == ["first", "second"]
    assert gate.running == 0 and gate.waiting == 0
    assert set_to == [1, 1]  # each call set its own thread's torch threads to the plan's


def test_the_gate_is_reentrant_and_frees_its_slot_on_errors(monkeypatch):
    monkeypatch.setattr(threads, "set_threads", lambda n: None)
    gate = threads.Gate(plan=lambda: (1, 1))
    with pytest.raises(ValueError):
        with gate.slot():
            with gate.slot():  # a call inside a call takes no second slot (no deadlock)
                assert gate.running == 1
            raise ValueError("the engine rejected the settings")
    assert gate.running == 0
    with gate.slot():
        assert gate.running == 1


def test_a_waiter_interrupted_in_line_leaves_it(monkeypatch):
    monkeypatch.setattr(threads, "set_threads", lambda n: None)
    gate = threads.Gate(plan=lambda: (1, 1))

    class Rerun(Exception):  # what Streamlit raises in a page when the user clicks elsewhere
        pass

    def interrupted(place):
        raise Rerun

    with gate.slot():
        errors = []

        def waiter():
            try:
                with gate.slot(interrupted):
                    pass
            except Rerun:
                errors.append("rerun")

        t = threading.Thread(target=waiter)
        t.start()
        t.join(10)
        assert errors == ["rerun"] and gate.waiting == 0
    assert gate.running == 0


def test_a_long_call_lets_the_waiting_ones_go_first_and_keeps_its_random_state(monkeypatch):
    import torch

    from advlens.models.modes import eval_mode, model_lock

    model = torch.nn.Linear(2, 2)  # both calls use it: the paused one must not keep it locked
    monkeypatch.setattr(threads, "set_threads", lambda n: None)
    monkeypatch.setattr(threads, "TURN_S", 0.0)
    gate = threads.Gate(plan=lambda: (1, 1))
    started, order, draws = threading.Event(), [], []
    torch.manual_seed(5)
    expected = torch.rand(4)

    def long_call():
        with gate.slot(), eval_mode(model), eval_mode(model):
            torch.manual_seed(5)
            draws.append(torch.rand(2))
            started.set()
            _wait_until(lambda: gate.waiting == 1, "the short call to wait in line")
            assert gate.take_turns()  # its turn is over and the short call waits: it steps aside
            order.append("long resumed")
            draws.append(torch.rand(2))
            assert model_lock(model)._is_owned()  # its model's lock back, as deep as before
            assert not gate.take_turns()  # nobody waits now: it runs on
        assert not model_lock(model)._is_owned()

    def short_call():
        with gate.slot(), eval_mode(model):
            order.append("short")
            torch.manual_seed(99)  # another session's seed, between the long call's steps
            torch.rand(10)

    t1 = threading.Thread(target=long_call, daemon=True)  # a deadlock fails the test, never hangs it
    t1.start()
    assert started.wait(10)
    t2 = threading.Thread(target=short_call, daemon=True)
    t2.start()
    t1.join(10)
    t2.join(10)
    assert order == ["short", "long resumed"]
    assert torch.equal(torch.cat(draws), expected)  # as if the short call had not run in between
    assert gate.running == 0 and gate.waiting == 0
    assert not gate.take_turns()  # outside a slot: nothing to give up
