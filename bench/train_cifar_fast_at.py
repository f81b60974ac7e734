"""CIFAR-10 Fast-AT (Wong, Rice and Kolter 2020) with PreAct-ResNet-18, through the real trainer.

The recipe of the paper: eps 8/255, FGSM with a uniform random start and alpha = 1.25 eps = 10/255,
15 epochs, SGD momentum 0.9, weight decay 5e-4, a cyclic learning rate 0 -> 0.2 -> 0, batch 128,
random crop (4 px) and flips, mixed precision on CUDA, and the catastrophic-overfitting guard.
Evaluation: clean accuracy and PGD-50 x 10 restarts (step 2/255) on the test set (published:
86.06% / 46.06% in 12 minutes on a GPU; on this JPEG q75 copy the numbers are not directly
comparable).

The data is the JPEG copy ``../shared/data/cifar10-jpeg.tar.gz``, unpacked once to
``/tmp/cifar10-jpeg`` and read as an image folder. On the 2-core CPU only a short version runs
(``--short``: a subset, one epoch, a small PGD evaluation), which checks the pipeline and the
throughput but is far from the published accuracy:

    python bench/train_cifar_fast_at.py --short             # CPU: minutes, a pipeline check
    python bench/train_cifar_fast_at.py                     # the full recipe (needs a GPU)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import evaluate_run, publish, run_and_time, run_report  # noqa: E402

ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
UNPACKED = Path("/tmp/cifar10-jpeg")


def ensure_unpacked(archive: Path = ARCHIVE, target: Path = UNPACKED) -> Path:
    """Unpack the JPEG copy once into ``/tmp``; returns the image-folder root."""
    from advlens.data.base import DataError
    from advlens.data.folder import unpack_folder_archive

    try:
        return unpack_folder_archive(archive, target)
    except DataError as exc:
        raise SystemExit(f"{exc} Unpack CIFAR-10 as an image folder to {target} yourself.") from None


def fast_at_config(root: Path, **settings):
    """The Fast-AT recipe (Wong et al. 2020) on the image folder ``root``; ``settings`` override it."""
    from advlens.training.config import TrainConfig

    recipe = dict(
        objective="fast_at",
        objective_params={"alpha_ratio": 1.25},  # FGSM step 1.25 eps = 10/255 from a uniform random start
        dataset="folder",
        data_root=str(root),
        arch="preact_resnet18",
        epochs=15,
        batch_size=128,
        optimizer="sgd",
        lr=0.2,  # the peak of the cyclic schedule 0 -> 0.2 -> 0
        momentum=0.9,
        weight_decay=5e-4,
        schedule="cyclic",
        eps=8 / 255,
        crop_padding=4,
        flip=True,
    )
    return TrainConfig(**{**recipe, **settings})


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="CIFAR-10 Fast-AT benchmark (PreAct-ResNet-18, eps 8/255)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.2, help="peak of the cyclic learning rate")
    ap.add_argument("--limit-train", type=int, default=0)
    ap.add_argument("--eval-limit", type=int, default=0, help="evaluate on the first N test images (0: all)")
    ap.add_argument("--eval-steps", type=int, default=50)
    ap.add_argument("--eval-restarts", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--home", default=None, help="ADVLENS_HOME for the run")
    ap.add_argument("--out", default=None, help="also write the JSON report here")
    ap.add_argument(
        "--short",
        action="store_true",
        help="the CPU version: 2000 training images, 1 epoch, PGD-10 x 1 on 200 test images",
    )
    args = ap.parse_args(argv)
    if args.short:
        args.epochs, args.limit_train, args.eval_limit, args.eval_steps, args.eval_restarts = 1, 2000, 200, 10, 1
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.home:
        os.environ["ADVLENS_HOME"] = args.home
    from advlens.data import load_dataset
    from advlens.data.subset import choose_images

    root = ensure_unpacked()
    eps = 8 / 255
    cfg = fast_at_config(
        root,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        val_size=min(1000, args.limit_train // 10) if args.limit_train else 1000,
        eval_size=256 if not args.short else 64,
        eval_steps=10,
        limit_train=args.limit_train,
        seed=args.seed,
        device=args.device,
        log_every=5,
        test_eval=not args.short,
        name="bench: CIFAR-10 Fast-AT" + (" (short CPU version)" if args.short else ""),
    )
    rec, train_s = run_and_time(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    test = load_dataset("folder", split="test", root=str(root))
    subset = choose_images(test, args.eval_limit or 0)  # the one subset rule: class-stratified for folders
    x, y = test.pixels[subset.indices], test.labels[subset.indices]
    measured = evaluate_run(rec, x, y, eps, args.eval_steps, 2 / 255, args.eval_restarts, batch_size=256, device=device)
    short = " — SHORT CPU VERSION (subset, 1 epoch): a pipeline check, not the published recipe" if args.short else ""
    report, row = run_report(
        "CIFAR-10 (JPEG q75 copy) Fast-AT, preact_resnet18, eps 8/255" + short,
        f"CIFAR-10 Fast-AT (preact_resnet18, 8/255){' SHORT' if args.short else ''}",
        rec,
        measured,
        f"PGD-{args.eval_steps}, step 2/255, {args.eval_restarts} restart(s)",
        train_s,
        {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "limit_train", "seed")},
        "train_cifar_fast_at.py",
        argv,
        stopped_early=rec.metrics.get("stopped_early", ""),
        device=str(device),
    )
    return publish(report, row, args.out)


if __name__ == "__main__":
    main()
