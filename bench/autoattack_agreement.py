"""Our evaluation suites against the official AutoAttack code (``pip install pyautoattack==0.2.0``)
on the same model, images and eps: robust accuracy and time, in one process, interleaved.

    python bench/autoattack_agreement.py [--model digits_small_cnn] [--dataset digits] [--n 360]
        [--eps 0.1] [--repeats 1]

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


def official(model, x, y, eps, attacks, seed=0):
    from pyautoattack import AutoAttack

    version = "standard" if attacks is None else "custom"
    aa = AutoAttack(model, attacks=attacks, version=version, eps=eps, device="cpu", seed=seed)
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
    from advlens.evaluation import evaluate
    from advlens.zoo import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="digits_small_cnn")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--root")
    ap.add_argument("--n", type=int, default=360)
    ap.add_argument("--eps", default="0.1")
    ap.add_argument("--suites", default="standard", help="comma-separated: standard, quick")
    ap.add_argument("--out", help="also write the JSON report here")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model = load_model(args.model, "cpu")
    ds = load_dataset(args.dataset, split="test", root=args.root)
    x, y = ds.batch(range(min(args.n, len(ds))))
    rows = []
    for eps in (parse_linf(e) for e in args.eps.split(",")):
        for suite in args.suites.split(","):
            attacks = PAIRS[suite]
            t0 = time.perf_counter()
            ours = evaluate(model, x, y, eps, suite, batch_size=500)
            ours_s = time.perf_counter() - t0
            theirs, theirs_s = official(model, x, y, eps, attacks)
            rows.append(
                {
                    "eps": eps,
                    "suite": suite,
                    "official_attacks": attacks or "standard",
                    "broken_by_ours": ours.broken_counts(),
                    "ours": ours.robust_accuracy,
                    "official": theirs,
                    "difference_points": (ours.robust_accuracy - theirs) * 100,
                    "ours_seconds": round(ours_s, 1),
                    "official_seconds": round(theirs_s, 1),
                    "time_ratio": round(ours_s / theirs_s, 3),
                    "n": len(x),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    report = {"model": args.model, "dataset": args.dataset, "rows": rows, **provenance("autoattack_agreement.py", argv)}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
