"""Replace a shipped model's robust-accuracy records with those of a new standard-suite evaluation.

    python -m advlens evaluate --model cifar10_resnet20_fast_at --dataset folder --root /tmp/cifar10-jpeg \\
        --eps 8/255 --suite standard --no-checklist --n 500 --out fast_at.json
    python bench/remeasure_shipped.py cifar10_resnet20_fast_at fast_at.json

The weights and the training record stay as they are; only ``metrics.robust`` of
``assets/models/NAME.json`` changes, to the report's standard-suite records for NAME (with their
protocol, the subset rule and its class counts), plus a note of the command. Used when the figures
of issue 14 turned out to be measured on one class (the first 300 images of the class-sorted JPEG
copy, all airplanes; issue 24).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from advlens.budget import format_budget
    from advlens.training.ship import summary_of

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="the shipped model (assets/models/NAME.json)")
    ap.add_argument("report", help="the JSON that `python -m advlens evaluate ... --out` wrote")
    ap.add_argument("--command", default="", help="the evaluate command, recorded beside the figures")
    args = ap.parse_args(argv)
    meta_path = ROOT / "assets" / "models" / f"{args.name}.json"
    meta = json.loads(meta_path.read_text())
    report = json.loads(Path(args.report).read_text())
    records = [r for r in report["results"] if r["model"] == args.name]
    if not records or any(r["suite"] != "standard" or not r.get("finished", True) for r in records):
        ap.error(f"{args.report} holds no finished standard-suite records of {args.name}")
    robust = []
    for r in sorted(records, key=lambda r: r["eps"]):
        row = summary_of({**r, "subset": r.get("subset") or report.get("subset")})
        row["eps_shown"] = format_budget(row["eps"], row["norm"])
        row["seconds"] = round(sum(r["seconds_by_attack"].values()), 1)
        if args.command:
            row["command"] = args.command
        robust.append(row)
    meta["metrics"]["robust"] = robust
    meta_path.write_text(json.dumps(meta, indent=2))
    for row in robust:
        lo, hi = row["robust_interval_95"]
        print(
            f"{args.name}: robust {row['robust_accuracy'] * 100:.1f}% [{lo * 100:.1f}, {hi * 100:.1f}] at "
            f"{row['eps_shown']}, n = {row['n']}; {row['protocol']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
