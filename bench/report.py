"""What the benchmark scripts share: the machine line, the MNIST training base, the evaluation of a
finished run, and printing a report (JSON, plus the row for ``bench/RESULTS.md``)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

# small_cnn on MNIST with Adam one-cycle and no augmentation: the base of every MNIST benchmark run.
MNIST_BASE = dict(dataset="mnist", arch="small_cnn", optimizer="adam", schedule="onecycle", crop_padding=0, flip=False)


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def run_and_time(cfg):
    """Train ``cfg`` in this process; (run record, seconds). Exits unless the run finished."""
    from advlens.training import jobs

    t0 = time.time()
    rec = jobs.run_in_foreground(cfg)
    if rec.status != "done":
        raise SystemExit(f"training ended {rec.status}: {rec.message}")
    return rec, time.time() - t0


def evaluate_run(rec, x, y, eps, steps, alpha, restarts, batch_size=500, device="cpu"):
    """Clean accuracy and per-image PGD correctness of a finished run's model: (clean, robust, seconds).
    CE-PGD only: an upper bound on robust accuracy."""
    from advlens.models import load_checkpoint
    from advlens.training.evaluate import clean_accuracy, robust_predictions

    model, _ = load_checkpoint(rec.final_path, map_location=device)
    model.eval()
    t1 = time.time()
    clean = clean_accuracy(model, x, y)
    torch.manual_seed(0)
    robust = robust_predictions(model, x, y, eps, steps, alpha, restarts, batch_size=batch_size)
    return clean, robust, time.time() - t1


def publish(report: dict, row: str, out: str | None) -> dict:
    print(json.dumps(report, indent=2))
    print(row)
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
    return report


def run_report(
    title: str,
    label: str,
    rec,
    measured: tuple,
    attack: str,
    train_s: float,
    recipe: dict,
    script: str,
    argv=None,
    **extra,
) -> tuple[dict, str]:
    """The JSON report and the RESULTS.md row of a trained-and-evaluated run.
    ``measured`` is (clean accuracy, per-image robust correctness, evaluation seconds)."""
    import sys
    from datetime import date

    clean, robust, eval_s = measured
    command = f"python bench/{script} " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {
        "benchmark": title,
        "run_id": rec.id,
        "clean_accuracy": clean,
        "robust_accuracy": float(robust.float().mean()),
        "test_images": len(robust),
        "attack": attack,
        "train_seconds": round(train_s, 1),
        "eval_seconds": round(eval_s, 1),
        "recipe": recipe,
        **extra,
        "machine": machine(),
        "date": date.today().isoformat(),
        "command": command,
    }
    row = (
        f"| {label} | {clean * 100:.2f}% | {report['robust_accuracy'] * 100:.2f}% ({attack}, {len(robust)} images; "
        f"CE-PGD, an upper bound) | {train_s / 60:.1f} min train + {eval_s / 60:.1f} min eval | "
        f"`{command.strip()}` | {report['date']} |"
    )
    return report, row


def provenance(script: str, argv=None) -> dict:
    """Where a figure comes from: the machine, the date and the command that made it."""
    import sys
    from datetime import date

    args = argv if argv is not None else sys.argv[1:]
    return {
        "machine": machine(),
        "date": date.today().isoformat(),
        "command": f"python bench/{script} " + " ".join(args),
    }
