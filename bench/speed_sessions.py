"""Lite0 PGD-10 from 1, 2 and 4 sessions at once, and beside a busy process, against one session alone.

    python bench/speed_sessions.py [--repeats 3] [--busy] [--json out.json]

A *session* is what a Streamlit session does when its user presses Run on the Attack Lab: in a
thread of its own (Streamlit runs every script run in one), ``run_attack`` PGD L-inf 2/255, 10
steps, on EfficientNet-Lite0 and the ``chelsea`` photo, recording the trajectory with its images.
N sessions start together in one process (one server); each one's time runs from the start to
its result, waiting included. Two ways:

- ``policy``: through :mod:`advlens.threads` (the gate and its thread counts), as the pages do;
- ``default``: no gate, torch's default thread count (one per core) in every session: the app
  before issue 26.

Each repeat runs every (N, way) once, in turn, so that a machine busy with other work slows all
alike; the report gives medians, and each as a ratio to the median of one session alone (policy).

``--busy`` then measures one session beside a training job (digits PGD-AT queued with
``python -m advlens train --detach`` in a fresh ADVLENS_HOME; its worker takes its threads from the
policy and registers itself) and beside an unregistered process that keeps both cores' worth of
torch threads busy (a stand-in for anything else on the machine), alternating with one session
alone between them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import machine  # noqa: E402

PARAMS = {"eps": 2 / 255, "steps": 10}
BUSY_LOOP = (
    "import torch, time\n"
    "torch.set_num_threads({threads})\n"
    "a = torch.randn(512, 512)\n"
    "end = time.time() + {seconds}\n"
    "while time.time() < end:\n"
    "    a = torch.tanh(a @ a.T / 512)\n"
)


def setup():
    from advlens.data import fit_image, sample_photo
    from advlens.zoo import load_model

    model = load_model("efficientnet_lite0", device="cpu")
    x = fit_image(sample_photo("chelsea"), model.input_size).unsqueeze(0)
    return model, x


def one_session(model, x, way: str, out: list, i: int, start: threading.Event) -> None:
    import torch

    from advlens.attacks import run_attack
    from advlens.threads import cores, interactive

    def attack():
        return run_attack(model, x, 285, "pgd", record=True, record_images=True, max_frames=60, **PARAMS)

    start.wait()
    t0 = time.perf_counter()
    if way == "policy":
        with interactive():
            attack()
    else:
        torch.set_num_threads(cores())
        attack()
    out[i] = time.perf_counter() - t0


def sessions(model, x, n: int, way: str) -> list[float]:
    out = [0.0] * n
    start = threading.Event()
    ths = [threading.Thread(target=one_session, args=(model, x, way, out, i, start)) for i in range(n)]
    for t in ths:
        t.start()
    start.set()
    for t in ths:
        t.join()
    return out


def concurrency(model, x, repeats: int) -> dict:
    sessions(model, x, 1, "policy")  # warm-up
    sessions(model, x, 1, "default")
    cells = {(n, w): [] for n in (1, 2, 4) for w in ("policy", "default")}
    for _ in range(repeats):
        for key in cells:
            cells[key].append(sessions(model, x, *key))
    alone = statistics.median(t for runs in cells[(1, "policy")] for t in runs)
    rows = []
    for (n, way), runs in cells.items():
        flat = [t for r in runs for t in r]
        worst = [max(r) for r in runs]
        rows.append(
            {
                "sessions": n,
                "way": way,
                "median_s": statistics.median(flat),
                "slowest_median_s": statistics.median(worst),
                "median_ratio_to_alone": statistics.median(flat) / alone,
                "slowest_ratio_to_alone": statistics.median(worst) / alone,
                "all_s": runs,
            }
        )
    return {"alone_s": alone, "rows": rows}


def start_training(home: str) -> tuple[str, int]:
    env = {**os.environ, "ADVLENS_HOME": home}
    out = subprocess.run(
        [sys.executable, "-m", "advlens", "train", "--objective", "pgd_at", "--dataset", "digits", "--detach"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    run_id = out.split()[1]
    from advlens.jobs.store import RunStore

    os.environ["ADVLENS_HOME"] = home
    store = RunStore()
    for _ in range(120):
        if store.require(run_id).status == "running" and (Path(home) / "threads").is_dir():
            break
        time.sleep(0.5)
    return run_id, store.require(run_id).pid


def stop_training(home: str, run_id: str) -> None:
    env = {**os.environ, "ADVLENS_HOME": home}
    subprocess.run([sys.executable, "-m", "advlens", "runs", "--cancel", run_id], cwd=ROOT, env=env, check=False)


def beside(model, x, repeats: int) -> dict:
    from advlens.threads import GATE, cores, interactive_plan, running_jobs

    rows = {"alone": [], "beside a training job": [], "beside a busy process (default way)": []}
    rows["beside a busy process (policy)"] = []
    home = tempfile.mkdtemp(prefix="advlens-bench-")
    old_home = os.environ.get("ADVLENS_HOME")
    run_id, _ = start_training(home)
    plan_with_job = interactive_plan()
    try:
        time.sleep(3)  # the job past its start-up, into its epochs
        for _ in range(repeats):
            GATE._plan = (0.0, (1, 1))  # read the job files now
            rows["beside a training job"].append(sessions(model, x, 1, "policy")[0])
        jobs = running_jobs()
    finally:
        stop_training(home, run_id)
        if old_home is None:
            os.environ.pop("ADVLENS_HOME", None)
        else:
            os.environ["ADVLENS_HOME"] = old_home
    time.sleep(3)
    GATE._plan = (0.0, (1, 1))
    for _ in range(repeats):
        rows["alone"].append(sessions(model, x, 1, "policy")[0])
        busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(threads=cores(), seconds=60)])
        time.sleep(1.0)
        rows["beside a busy process (policy)"].append(sessions(model, x, 1, "policy")[0])
        rows["beside a busy process (default way)"].append(sessions(model, x, 1, "default")[0])
        busy.kill()
        busy.wait()
    alone = statistics.median(rows["alone"])
    return {
        "training_job": {"run": run_id, "registered": jobs, "interactive_plan_beside_it": plan_with_job},
        "rows": [
            {"case": k, "median_s": statistics.median(v), "ratio_to_alone": statistics.median(v) / alone, "all_s": v}
            for k, v in rows.items()
        ],
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", action="store_true", help="also one session beside a training job and a busy process")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from advlens.threads import budget, interactive_plan

    model, x = setup()
    report = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "budget": budget(),
        "interactive_plan": interactive_plan(),
    }
    report["concurrency"] = concurrency(model, x, args.repeats)
    for r in report["concurrency"]["rows"]:
        print(
            f"{r['sessions']} session(s), {r['way']}: median {r['median_s']:.2f} s "
            f"({r['median_ratio_to_alone']:.2f}x alone), slowest {r['slowest_median_s']:.2f} s "
            f"({r['slowest_ratio_to_alone']:.2f}x)",
            flush=True,
        )
    if args.busy:
        report["beside"] = beside(model, x, args.repeats)
        for r in report["beside"]["rows"]:
            print(f"{r['case']}: median {r['median_s']:.2f} s ({r['ratio_to_alone']:.2f}x alone)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
