"""``python -m advlens build-model NAME``: rebuild a shipped MNIST or CIFAR-10 model from its recipe.

The recipes are in :mod:`advlens.training.shipped`, the steps (train, evaluate with the standard
suite, store in float16 when that is harmless) in :mod:`advlens.training.ship`. ``--from-checkpoint``
packages weights already trained by the recipe (a run's ``final.safetensors``) instead of training;
``--evaluation FILE`` takes the standard-suite records of those same weights from an earlier
evaluation (checked against the weights' digest) instead of running the suite again.
"""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    from ..training.shipped import RECIPES

    p = sub.add_parser(
        "build-model",
        help="rebuild a shipped model (" + ", ".join(RECIPES) + ") from its recipe and write it to assets/models",
    )
    p.add_argument("name", help="the shipped model: " + ", ".join(RECIPES))
    p.add_argument("--data-root", default=None, help="the dataset folder (default: the copy in ../shared/data)")
    p.add_argument("--n", type=int, default=None, help="images for the standard suite (default: the recipe's)")
    p.add_argument("--from-checkpoint", default=None, help="package these weights instead of training")
    p.add_argument("--evaluation", default=None, help="standard-suite records of the same weights (JSON)")
    p.add_argument("--out", default=None, help="output folder (default: the project's assets/models)")
    p.set_defaults(func=run)


def _evaluations(path: str, digest: str) -> list[dict]:
    from . import UsageError

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the evaluation {path}: {exc}") from None
    if data.get("weights_digest") != digest:
        raise UsageError(f"{path} evaluated other weights (digest {data.get('weights_digest')}, these are {digest}).")
    records = data.get("records")
    if not records or any(r.get("suite") != "standard" for r in records):
        raise UsageError(f"{path} holds no standard-suite records.")
    return records


def run(args) -> int:
    from ..paths import ASSET_MODELS_DIR
    from ..training import ship
    from ..training.shipped import get_recipe
    from . import UsageError

    try:
        recipe = get_recipe(args.name)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if args.n is not None and args.n < 1:
        raise UsageError("--n must be at least 1")
    root = ship.data_root(recipe, args.data_root)
    try:
        model, run_id, seconds = ship.trained_model(recipe, root, args.from_checkpoint)
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    evaluations = _evaluations(args.evaluation, ship.weights_digest(model)) if args.evaluation else None
    metrics, half = ship.shipped_metrics(recipe, model, root, args.n or recipe.eval_n, evaluations)
    path = ship.package(recipe, model, metrics, half, Path(args.out) if args.out else ASSET_MODELS_DIR, run_id, seconds)
    size = path.stat().st_size / 1e6
    print(f"wrote {path} ({size:.2f} MB, {metrics['weights']})")
    print(f"clean accuracy {metrics['test_accuracy'] * 100:.2f}% on {metrics['test_images']:,} test images")
    for r in metrics["robust"]:
        print(f"robust {r['robust_accuracy'] * 100:.2f}% at eps {r['eps_shown']} · {r['protocol']}")
    return 0
