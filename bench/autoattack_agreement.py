"""Our evaluation suites against the official AutoAttack code (``pip install pyautoattack==0.2.0``)
on the same model, images and eps: robust accuracy and time, in one process, interleaved.

    python bench/autoattack_agreement.py [--model digits_small_cnn] [--dataset digits] [--n 360]
        [--start 0] [--eps 0.1]

Pairs compared (each is the same attacks in the same cascade order), chosen with ``--suites``:
- ours ``standard`` (APGD-CE, APGD-T x 9, FAB-T x 9, Square-5000) against AutoAttack's
  ``version="standard"``;
- ours ``quick`` (APGD-CE, APGD-DLR) against AutoAttack ``attacks=['apgd-ce', 'apgd-dlr']``.

``--model`` takes a zoo name or a checkpoint path (a training run's ``final.safetensors``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import provenance  # noqa: E402

PAIRS = {"standard": None, "quick": ["apgd-ce", "apgd-dlr"]}


def official(model, x, y, eps, attacks, seed=0, verbose=False):
    from pyautoattack import AutoAttack

    version = "standard" if attacks is None else "custom"
    aa = AutoAttack(model, attacks=attacks, version=version, eps=eps, device="cpu", seed=seed)
    if not verbose:
        aa.logger.log = lambda *a, **k: None  # quiet
    t0 = time.perf_counter()
    x_adv = aa.run_standard_evaluation(x, y, batch_size=500)
    if isinstance(x_adv, tuple):
        x_adv = x_adv[0]
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        acc = float((model(x_adv).argmax(1) == y).float().mean())
    return acc, seconds


def main(argv=None) -> dict:
    from advlens.budget import parse_linf
    from advlens.data import load_dataset
    from advlens.data.subset import choose_images
    from advlens.evaluation import evaluate
    from advlens.zoo import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="digits_small_cnn")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--root")
    ap.add_argument("--n", type=int, default=360)
    ap.add_argument(
        "--start",
        type=int,
        default=0,
        help="skip this many images first (a long run split into parts: --start 500 --n 500 is images 500-999)",
    )
    ap.add_argument("--eps", default="0.1")
    ap.add_argument("--suites", default="standard", help="comma-separated: standard, quick")
    ap.add_argument("--out", help="also write the JSON report here")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="print progress (ours) and the official code's log")
    ap.add_argument(
        "--side",
        choices=("both", "ours", "official"),
        default="both",
        help="run one side only (two processes side by side on a busy machine; the times are then not "
        "interleaved in one process, so their ratio is only indicative)",
    )
    ap.add_argument(
        "--half-weights",
        action="store_true",
        help="round the weights through float16 first: the weights a shipped model is stored with",
    )
    ap.add_argument(
        "--save-ours",
        help="write our standard-suite records here, tied to the weights' digest "
        "(python -m advlens build-model NAME --evaluation FILE reuses them)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset, split="test", root=args.root)
    if not 0 <= args.start < len(ds):  # checked before the model loads
        ap.error(f"--start must be in [0, {len(ds)})")
    model = load_model(args.model, "cpu")
    if args.half_weights:
        from advlens.training.ship import half_round_trip

        model = half_round_trip(model)
    subset = choose_images(ds, args.n, offset=args.start)  # the one subset rule (first n of an official order)
    print(subset.describe())
    x, y = ds.batch(subset.indices)
    rows, ours_records = [], []
    last = [0.0]

    def progress(done, total):
        if time.perf_counter() - last[0] > 60:
            last[0] = time.perf_counter()
            print(f"ours: {done}/{total} image-attacks", flush=True)

    for eps in (parse_linf(e) for e in args.eps.split(",")):
        for suite in args.suites.split(","):
            attacks = PAIRS[suite]
            row = {
                "eps": eps,
                "suite": suite,
                "official_attacks": attacks or "standard",
                "n": len(x),
                "images": subset.rule_text(),
                "side": args.side,
            }
            if args.side in ("both", "ours"):
                t0 = time.perf_counter()
                ours = evaluate(model, x, y, eps, suite, batch_size=500, progress=progress if args.verbose else None)
                row.update(
                    ours=ours.robust_accuracy,
                    broken_by_ours=ours.broken_counts(),
                    ours_seconds_by_attack={k: round(v, 1) for k, v in ours.seconds.items()},
                    ours_seconds=round(time.perf_counter() - t0, 1),
                )
                if suite == "standard":
                    ours_records.append(ours.to_dict())
            if args.side in ("both", "official"):
                theirs, theirs_s = official(model, x, y, eps, attacks, verbose=args.verbose)
                row.update(official=theirs, official_seconds=round(theirs_s, 1))
            if args.side == "both":
                row["difference_points"] = (row["ours"] - row["official"]) * 100
                row["time_ratio"] = round(row["ours_seconds"] / row["official_seconds"], 3)
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    report = {"model": args.model, "dataset": args.dataset, "rows": rows, **provenance("autoattack_agreement.py", argv)}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    if args.save_ours and ours_records:
        from advlens.training.ship import weights_digest

        saved = {"model": args.model, "weights_digest": weights_digest(model), "records": ours_records}
        Path(args.save_ours).write_text(json.dumps(saved))
    return report


if __name__ == "__main__":
    main()
