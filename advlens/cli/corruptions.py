"""``python -m advlens evaluate --suite corruptions``: accuracy under 15 common corruptions x 5 severities.

    python -m advlens evaluate --suite corruptions --model cifar10_resnet20 --dataset cifar10_samples
    python -m advlens evaluate --suite corruptions --model M --dataset folder --root DIR --n 500 --out c.json

No ``--eps``: the corruptions have fixed severities (:mod:`advlens.corruptions`). The images follow
the one subset rule (``--n``, ``--offset``, ``--indices``, ``--subset-seed``); ``--seed`` seeds the
corruptions. Prints the 15 x 5 table, the mean per corruption and the mCA with its 95% interval.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path


def build_spec(args):
    from . import UsageError
    from .args import image_choice

    if not args.model or not args.dataset:
        raise UsageError("evaluate --suite corruptions needs --model and --dataset")
    for flag, value in (("--html", args.html), ("--leaderboard", args.leaderboard)):
        if value:
            raise UsageError(f"{flag} is not available with --suite corruptions (use --out or --csv)")
    if args.norm != "Linf":
        raise UsageError("--norm does not apply to --suite corruptions")
    if len(set(args.model)) != len(args.model):
        raise UsageError("a model is listed twice")
    from ..evaluation.corruption_suite import CorruptionSpec

    choice = image_choice(args)
    return CorruptionSpec(
        dataset=args.dataset,
        split=args.split,
        root=args.root,
        n=choice["n"],
        offset=choice["offset"],
        indices=choice["indices"],
        subset_seed=choice["seed"],
    )


def run_corruptions(args) -> int:
    from ..data.catalog import DATASETS
    from ..evaluation.corruption_suite import format_table, run
    from ..evaluation.spec import EvalConfigError
    from . import UsageError

    spec = build_spec(args)
    if spec.dataset not in DATASETS:
        raise UsageError(f"unknown dataset {spec.dataset!r}; available: {', '.join(DATASETS)}")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.eps:
        print("note: --eps is ignored by the corruptions suite (fixed severities)")
    if args.detach:
        return detach(args, spec)
    print(f"common corruptions suite, {spec.dataset} {spec.split} images")

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r  {done}/{total} corruption x severity cells", end="", file=sys.stderr, flush=True)

    try:
        report = run(spec, list(args.model), seed=args.seed, batch_size=args.batch_size, progress=progress)
    except (EvalConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    for r in report["results"]:
        print(f"\r{r['model']}: {r['protocol']}")
        print(format_table(r))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.out}")
    if args.csv:
        Path(args.csv).write_text(to_csv(report))
        print(f"wrote {args.csv}")
    return 0


def to_csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "corruption", "severity", "accuracy", "ci_low", "ci_high", "n"])
    for r in report["results"]:
        for name, row in r["corruptions"].items():
            for c in row["severities"]:
                w.writerow([r["model"], name, c["severity"], c["accuracy"], *c["interval_95"], r["n"]])
        w.writerow([r["model"], "mean (mCA)", "", r["mean_corruption_accuracy"], *r["mean_interval_95"], r["n"]])
    return buf.getvalue()


def detach(args, spec) -> int:
    """``--detach``: queue the suite as a job (:class:`advlens.evaluation.corruption_suite.CorruptionsJob`)."""
    from dataclasses import asdict

    from ..evaluation.corruption_suite import submit_job
    from . import UsageError
    from .args import queued_line

    settings = {**asdict(spec), "models": list(args.model), "seed": args.seed, "batch_size": args.batch_size}
    settings["device"] = getattr(args, "device", None) or "auto"
    try:
        rec = submit_job(settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(queued_line("corruption evaluation", rec))
    return 0
