"""``python -m advlens build-default-model``: retrain the shipped digits model with the real trainer.

The recipe is the one in ``assets/models/digits_small_cnn.json``: small_cnn on all 1437 training
images of sklearn's digits, standard training, Adam with a one-cycle learning rate peaking at 1e-3,
15 epochs, batch 64, a random shift of up to 2 px (random crop with 2 px padding), seed 0. It runs
as an ordinary tracked run (it appears on the Training page), then the final checkpoint is written
to ``--out`` (default ``assets/models``) as ``digits_small_cnn.safetensors`` + ``.json``, in float16
when that changes the held-out accuracy by less than 0.1 point (the loader casts back to float32).
"""

from __future__ import annotations

from pathlib import Path

import torch

ASSET_NAME = "digits_small_cnn"


def default_model_config():
    from ..training.config import TrainConfig

    return TrainConfig(
        objective="standard",
        dataset="digits",
        arch="small_cnn",
        epochs=15,
        batch_size=64,
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        schedule="onecycle",
        crop_padding=2,
        flip=False,
        seed=0,
        val_size=0,
        eps=0.0,
        eval_size=360,
        eval_steps=0,
        device="cpu",
        name="default digits model",
    )


def register(sub) -> None:
    p = sub.add_parser(
        "build-default-model",
        help="retrain the shipped digits model (digits_small_cnn) with the trainer and write it to assets/models",
    )
    p.add_argument("--out", default=None, help="output folder (default: the project's assets/models)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's 15 epochs (for quick checks)")
    p.set_defaults(func=run)


def build_default_model(out: Path, epochs: int | None = None, echo: bool = True) -> tuple[Path, dict]:
    """Train the recipe and write ``out/digits_small_cnn.*``. Returns (path, metrics)."""
    from ..data import load_digits
    from ..models import load_checkpoint
    from ..training import jobs
    from ..training.evaluate import clean_accuracy
    from ..training.ship import HALF_TOLERANCE, half_round_trip
    from ..training.state import save_model_checkpoint
    from . import UsageError

    cfg = default_model_config()
    if epochs is not None:
        cfg.epochs = epochs
    rec = jobs.run_in_foreground(cfg, echo=echo)
    if rec.status != "done":
        raise UsageError(f"the training run {rec.id} ended {rec.status}: {rec.message}")
    model, meta = load_checkpoint(rec.final_path)
    train, test = load_digits("train"), load_digits("test")
    half = half_round_trip(model)
    test_half = clean_accuracy(half, test.pixels, test.labels)
    store_half = abs(test_half - rec.metrics["test_accuracy"]) < HALF_TOLERANCE
    metrics = {
        "test_accuracy": test_half if store_half else rec.metrics["test_accuracy"],
        "train_accuracy": clean_accuracy(half if store_half else model, train.pixels, train.labels),
        "test_images": rec.metrics["test_images"],
        "weights": "float16 (cast back to float32 on load)" if store_half else "float32",
    }
    recipe = {
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "seed": cfg.seed,
        "optimizer": cfg.optimizer,
        "schedule": "one-cycle",
        "augment": f"random shift <= {cfg.crop_padding}px (random crop, padding {cfg.crop_padding})",
        "seconds": rec.metrics.get("train_seconds"),
        "objective": "standard",
        "dataset": "digits",
        "split": "sklearn digits 80/20 stratified, seed 0",
        "run_id": rec.id,
        "command": "python -m advlens build-default-model",
        "weights": metrics["weights"],
    }
    path = save_model_checkpoint(
        model,
        Path(out) / f"{ASSET_NAME}.safetensors",
        recipe=recipe,
        metrics=metrics,
        extra_meta={"description": "small_cnn trained on sklearn digits (standard training)"},
        weights_dtype=torch.float16 if store_half else None,
    )
    return path, metrics


def run(args) -> int:
    from ..paths import ASSET_MODELS_DIR
    from . import UsageError

    if args.epochs is not None and args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    out = Path(args.out) if args.out else ASSET_MODELS_DIR
    path, metrics = build_default_model(out, args.epochs)
    print(
        f"wrote {path}: held-out digits accuracy {metrics['test_accuracy'] * 100:.2f}% "
        f"({metrics['test_images']} images), train accuracy {metrics['train_accuracy'] * 100:.2f}%"
    )
    return 0
