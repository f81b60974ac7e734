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
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.at_step_cost import cpu_model  # noqa: E402

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
    from advlens.models import load_checkpoint
    from advlens.training import jobs
    from advlens.training.config import TrainConfig
    from advlens.training.evaluate import clean_accuracy, robust_predictions

    cfg = TrainConfig(
        objective="pgd_at",
        objective_params={"steps": args.train_steps, "alpha": args.train_alpha},
        dataset="mnist",
        data_root=args.data_root,
        arch="small_cnn",
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer="adam",
        lr=args.lr,
        schedule="onecycle",
        eps=args.eps,
        eps_warmup=args.eps_warmup,
        crop_padding=0,
        flip=False,
        val_size=min(1000, args.limit_train // 4) if args.limit_train else 1000,
        eval_size=500,
        eval_steps=10,
        limit_train=args.limit_train,
        seed=args.seed,
        log_every=20,
        name="bench: MNIST PGD-AT" + (" (smoke)" if args.smoke else ""),
    )
    t0 = time.time()
    rec = jobs.run_in_foreground(cfg)
    train_s = time.time() - t0
    if rec.status != "done":
        raise SystemExit(f"training ended {rec.status}: {rec.message}")
    model, _ = load_checkpoint(rec.final_path)
    model.eval()
    test = load_dataset("mnist", "test", root=args.data_root)
    n = args.eval_limit or len(test)
    x, y = test.pixels[:n], test.labels[:n]
    t1 = time.time()
    clean = clean_accuracy(model, x, y)
    torch.manual_seed(0)
    robust = robust_predictions(model, x, y, args.eps, args.eval_steps, args.eval_alpha, args.eval_restarts)
    eval_s = time.time() - t1
    report = {
        "benchmark": "MNIST PGD-AT, small_cnn, eps 0.3"
        + (" (SMOKE: tiny settings, not a result)" if args.smoke else ""),
        "run_id": rec.id,
        "clean_accuracy": clean,
        "robust_accuracy": float(robust.float().mean()),
        "test_images": n,
        "attack": f"PGD-{args.eval_steps}, step {args.eval_alpha}, {args.eval_restarts} restarts, eps {args.eps}",
        "train_seconds": round(train_s, 1),
        "eval_seconds": round(eval_s, 1),
        "recipe": {
            k: getattr(args, k)
            for k in ("epochs", "batch_size", "lr", "train_steps", "train_alpha", "eps_warmup", "limit_train", "seed")
        },
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "date": date.today().isoformat(),
        "command": "python bench/train_mnist_pgd_at.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(json.dumps(report, indent=2))
    print(
        f"| MNIST PGD-AT (small_cnn, eps 0.3) | {clean * 100:.2f}% | {report['robust_accuracy'] * 100:.2f}% "
        f"({report['attack']}, {n} images) | {train_s / 60:.1f} min train + {eval_s / 60:.1f} min eval | "
        f"`{report['command'].strip()}` | {report['date']} |"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
