"""MNIST PGD adversarial training (Madry et al. 2018) with small_cnn, through the real trainer.

Trains a tracked run (``python -m advlens train`` in-process), then evaluates the final model on
the MNIST test set: clean accuracy, and robust accuracy under L-inf PGD-40 (step 0.01, random
start) with 5 restarts at eps 0.3, on the same images (methods reference, section 5). Targets on
the 2-core CPU: >= 98% clean, >= 89% robust, training in <= 30 minutes (Madry: 98.8% / 89.3% with
PGD-100 x 20 restarts, after 100k steps of PGD-40 training on a GPU).

The CPU recipe trades Madry's 83 epochs of PGD-40 for 4 epochs of PGD-7 (step 0.06) with a one-cycle Adam
schedule and an eps warm-up, which converge fast on MNIST:

    python bench/train_mnist_pgd_at.py                      # the full benchmark (~30 + ~30 min eval)
    python bench/train_mnist_pgd_at.py --smoke              # a 1-minute check of the script

The data comes from ``../shared/data/mnist`` (``--data-root``). Results go to stdout as JSON and a
Markdown row for ``bench/RESULTS.md``; ``--out`` also writes the JSON to a file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import MNIST_BASE, evaluate_run, publish, run_and_time, run_report  # noqa: E402

DEFAULT_ROOT = ROOT.parent / "shared" / "data" / "mnist"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="MNIST PGD-AT benchmark (small_cnn, eps 0.3)")
    ap.add_argument("--data-root", default=str(DEFAULT_ROOT))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate (one-cycle)")
    ap.add_argument("--train-steps", type=int, default=7, help="PGD steps during training")
    ap.add_argument(
        "--train-alpha", type=float, default=0.06, help="PGD step size during training (7 x 0.06 = 1.4 eps)"
    )
    ap.add_argument("--eps-warmup", type=float, default=0.15, help="fraction of training with a ramped eps")
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--eval-steps", type=int, default=40)
    ap.add_argument("--eval-alpha", type=float, default=0.01)
    ap.add_argument("--eval-restarts", type=int, default=5)
    ap.add_argument("--eval-limit", type=int, default=0, help="evaluate on the first N test images (0: all 10k)")
    ap.add_argument("--limit-train", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--home", default=None, help="ADVLENS_HOME for the run (default: the current one)")
    ap.add_argument("--out", default=None, help="also write the JSON report here")
    ap.add_argument("--smoke", action="store_true", help="tiny settings to check the script (not a result)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.epochs, args.limit_train, args.eval_limit, args.train_steps, args.eval_steps = 1, 512, 200, 2, 5
        args.eval_restarts = 2
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.home:
        os.environ["ADVLENS_HOME"] = args.home
    from advlens.data import load_dataset
    from advlens.training.config import TrainConfig

    cfg = TrainConfig(
        objective="pgd_at",
        objective_params={"steps": args.train_steps, "alpha": args.train_alpha},
        **MNIST_BASE,
        data_root=args.data_root,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        eps=args.eps,
        eps_warmup=args.eps_warmup,
        val_size=min(1000, args.limit_train // 4) if args.limit_train else 1000,
        eval_size=500,
        eval_steps=10,
        limit_train=args.limit_train,
        seed=args.seed,
        log_every=20,
        name="bench: MNIST PGD-AT" + (" (smoke)" if args.smoke else ""),
    )
    rec, train_s = run_and_time(cfg)
    test = load_dataset("mnist", "test", root=args.data_root)
    n = args.eval_limit or len(test)
    x, y = test.pixels[:n], test.labels[:n]
    measured = evaluate_run(rec, x, y, args.eps, args.eval_steps, args.eval_alpha, args.eval_restarts)
    keys = ("epochs", "batch_size", "lr", "train_steps", "train_alpha", "eps_warmup", "limit_train", "seed")
    report, row = run_report(
        "MNIST PGD-AT, small_cnn, eps 0.3" + (" (SMOKE: tiny settings, not a result)" if args.smoke else ""),
        "MNIST PGD-AT (small_cnn, eps 0.3)",
        rec,
        measured,
        f"PGD-{args.eval_steps}, step {args.eval_alpha}, {args.eval_restarts} restarts, eps {args.eps}",
        train_s,
        {k: getattr(args, k) for k in keys},
        "train_mnist_pgd_at.py",
        argv,
    )
    return publish(report, row, args.out)


if __name__ == "__main__":
    main()
