"""The GPU suite's smoke mode: every step of ``bench/gpu_suite.py`` at a toy size on the CPU, so the
suite is ready (and has not rotted) whenever a GPU is lent (issue 15)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_suite_smoke_runs_every_step(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "bench/gpu_suite.py", "--smoke", "--out", str(out), "--scratch", str(tmp_path / "scratch")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["steps"]) == {"device_tests", "fast_at", "attacks", "cams", "lab_call"}
    assert all(step["ok"] for step in summary["steps"].values()) and summary["smoke"]
    fast_at = json.loads((out / "fast_at.json").read_text())
    assert fast_at["suite"] == "quick" and 0 <= fast_at["robust_accuracy"] <= fast_at["clean_accuracy"] <= 1
    attacks = json.loads((out / "attacks.json").read_text())
    assert {r["method"] for r in attacks["rows"]} >= {"advlens PGD-10", "floor: 11 fwd+bwd"}


def test_gpu_suite_says_what_to_carry():
    proc = subprocess.run(
        [sys.executable, "bench/gpu_suite.py", "--what-to-carry"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "pip download" in proc.stdout and "cifar10-jpeg.tar.gz" in proc.stdout
