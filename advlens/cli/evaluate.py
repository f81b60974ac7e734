"""``python -m advlens evaluate``: robust accuracy under an attack suite, per model and budget.

    python -m advlens evaluate --model digits_small_cnn --dataset digits --eps 0.1,0.15 --suite quick
    python -m advlens evaluate --model digits_small_cnn --model run-ab12cd-pgd_at --dataset digits \\
        --eps 8/255,16/255 --n 200 --out report.json

The images are the first ``--n`` of the split, in order, so runs are comparable. Every line names
the suite and n; the report (``--out``) holds the protocol and one record per image.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    from ..evaluation import SUITES

    p = sub.add_parser("evaluate", help="robust accuracy of models under an attack suite (cascade, worst case)")
    p.add_argument("--model", action="append", required=True, help="zoo model name or checkpoint (repeatable)")
    p.add_argument("--dataset", required=True, help="dataset name (see `datasets`)")
    p.add_argument("--split", default="test", choices=["test", "train"])
    p.add_argument("--root", help="local folder of the dataset files")
    p.add_argument("--eps", required=True, help="L-inf budgets, comma-separated: 0.1,0.15 or 8/255,16/255")
    p.add_argument("--suite", default="quick", help=f"one of: {', '.join(SUITES)} (default quick)")
    p.add_argument("--n", type=int, default=0, help="the first N images of the split (0: all)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checklist", action="store_true", help="also run the gradient-masking checklist")
    p.add_argument("--surrogate", help="an undefended model for the checklist's transfer check")
    p.add_argument("--out", help="write the report here (JSON)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..budget import BudgetError, format_linf, parse_linf
    from ..data import load_dataset
    from ..evaluation import evaluate, get_suite, run_checklist
    from ..zoo import load_model
    from . import UsageError

    try:
        budgets = [parse_linf(t) for t in args.eps.split(",") if t.strip()]
        suite = get_suite(args.suite)
    except (BudgetError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if not budgets or any(not 0 <= e <= 1 for e in budgets):
        raise UsageError("--eps needs budgets in [0, 1], e.g. 0.1,0.15 or 8/255")
    if args.n < 0 or args.batch_size < 1:
        raise UsageError("--n must be >= 0 and --batch-size >= 1")
    ds = load_dataset(args.dataset, split=args.split, root=args.root)
    n = len(ds) if args.n == 0 else min(args.n, len(ds))
    x, y = ds.batch(range(n))
    surrogate = load_model(args.surrogate) if args.surrogate else None
    report = {"dataset": args.dataset, "split": args.split, "n": n, "suite": suite.name, "results": []}
    print(f"{suite.title} on the first {n} {args.dataset} {args.split} images ({suite.note})")
    for name in args.model:
        model = load_model(name)
        if tuple(ds.shape) != tuple(model.input_size):
            raise UsageError(f"{args.dataset} images are {ds.shape}, {name} expects {tuple(model.input_size)}")
        for eps in budgets:
            res = evaluate(model, x, y, eps, suite, batch_size=args.batch_size, seed=args.seed, progress=_progress)
            lo, hi = res.interval
            print(
                f"\r{name:<28s} eps {format_linf(eps):<18s} clean {res.clean_accuracy * 100:6.2f}%   robust "
                f"{res.robust_accuracy * 100:6.2f}% [{lo * 100:.1f}, {hi * 100:.1f}]   broken by "
                + ", ".join(f"{k} {v}" for k, v in res.broken_counts().items())
            )
            entry = {"model": getattr(model, "zoo_name", name), **res.to_dict()}
            if args.checklist:
                checks = run_checklist(model, x, y, res, surrogate=surrogate, seed=args.seed)
                for c in checks:
                    print(f"    [{c.verdict:>4s}] {c.name}: {c.measured}")
                entry["checklist"] = [c.to_dict() for c in checks]
            report["results"].append(entry)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
    return 0


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r  {done}/{total}", end="", file=sys.stderr, flush=True)
