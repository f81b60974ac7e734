"""Building a shipped model from its recipe: train, evaluate, store in float16, write to assets.

1. **Data.** MNIST is read from its gzip IDX folder; CIFAR-10 from the JPEG copy's tarball, unpacked
   once into ``$ADVLENS_HOME/cache`` (never into the project).
2. **Train** the recipe's config as an ordinary tracked run (it shows on the Training page), or
   take the weights of a finished run or a checkpoint file (``from_checkpoint``).
3. **Evaluate**: clean accuracy on the whole test split, in float32 and after a float16 round trip;
   robust accuracy under the standard suite (AutoAttack's cascade) on ``n`` test images chosen by
   the one subset rule (the first n of MNIST; a class-stratified sample of the CIFAR-10 JPEG copy's
   class-sorted folders, :mod:`advlens.data.subset`) at each of the recipe's budgets, or taken from an evaluation already run on the same weights
   (``evaluations``: the JSON that :meth:`Evaluation.to_dict` writes).
4. **Store** the weights in float16 when the round trip changes test accuracy by less than 0.1
   point (else float32), with the recipe, the metrics and their protocol in the metadata.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..data import load_dataset
from ..data.folder import unpack_folder_archive
from ..data.subset import Subset, choose_images
from ..models import Classifier, load_checkpoint
from ..paths import PROJECT_ROOT, home
from .shipped import CIFAR_LABEL, ShippedRecipe

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
HALF_TOLERANCE = 0.001  # float16 is kept when it moves test accuracy by less than 0.1 point


def data_root(recipe: ShippedRecipe, root: str | None = None) -> str:
    """The folder the recipe's config reads: ``root`` when given, else the copy in ``../shared/data``."""
    if recipe.data == "mnist":
        return str(root or SHARED_DATA / "mnist")
    if root:
        return str(root)
    return str(unpack_folder_archive(SHARED_DATA / "cifar10-jpeg.tar.gz", home() / "cache" / "cifar10-jpeg"))


def test_split(recipe: ShippedRecipe, root: str):
    return load_dataset(recipe.settings["dataset"], split="test", root=root)


def weights_digest(model: Classifier) -> str:
    """A short hash of the float16-rounded weights: ties an evaluation file to the weights it measured."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update((v.half() if v.is_floating_point() else v).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def half_round_trip(model: Classifier) -> Classifier:
    """A copy of ``model`` whose weights went through float16 and back."""
    import copy

    twin = copy.deepcopy(model)
    with torch.no_grad():
        for t in list(twin.parameters()) + list(twin.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    return twin.eval()


def accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    from .evaluate import clean_accuracy

    return clean_accuracy(model, x, y)


def robust_records(
    model: Classifier,
    x: torch.Tensor,
    y: torch.Tensor,
    eps_list: tuple[float, ...],
    log: Callable[[str], None] = print,
    subset: Subset | None = None,
) -> list[dict]:
    """The standard suite at each budget on ``x`` (the images ``subset`` names); the summary of each
    :class:`Evaluation`, its protocol ending with the subset's rule and class counts."""
    from ..evaluation import evaluate

    out = []
    for eps in eps_list:
        t0 = time.perf_counter()
        ev = evaluate(model, x, y, eps, "standard", batch_size=500)
        record = ev.to_dict()
        if subset is not None:
            record["protocol"] = f"{record['protocol']}; {subset.describe()}"
            record["subset"] = {k: v for k, v in subset.to_dict().items() if k not in ("indices", "files")}
        record = summary_of(record)
        record["seconds"] = round(time.perf_counter() - t0, 1)
        log(f"  eps {record['eps_shown']}: robust {record['robust_accuracy'] * 100:.2f}% ({record['protocol']})")
        out.append(record)
    return out


def summary_of(record: dict) -> dict:
    keep = ("eps", "eps_shown", "n", "protocol", "suite", "norm", "clean_accuracy", "robust_accuracy")
    out = {k: record[k] for k in keep}
    if record.get("subset"):
        out["subset"] = {k: v for k, v in record["subset"].items() if k not in ("indices", "files")}
    out["robust_interval_95"] = list(record["robust_interval_95"])
    out["broken_by_attack"] = dict(record["broken_by_attack"])
    return out


def shipped_metrics(
    recipe: ShippedRecipe,
    model: Classifier,
    root: str,
    n: int,
    evaluations: list[dict] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[dict, bool]:
    """(metrics, store in float16?) of ``model`` as the recipe evaluates it."""
    test = test_split(recipe, root)
    x, y = test.pixels, test.labels
    clean = accuracy(model, x, y)
    clean_half = accuracy(half_round_trip(model), x, y)
    half = abs(clean_half - clean) < HALF_TOLERANCE
    log(f"clean accuracy on all {len(y):,} test images: {clean * 100:.2f}% (float16: {clean_half * 100:.2f}%)")
    if evaluations is None:
        subset = choose_images(test, min(n, len(y)))
        log(f"standard suite on {subset.describe()}, at {len(recipe.eval_eps)} budget(s)...")
        xs, ys = test.batch(subset.indices)
        robust = robust_records(half_round_trip(model) if half else model, xs, ys, recipe.eval_eps, log, subset)
    else:
        robust = [summary_of(r) for r in evaluations]
    metrics = {
        "test_accuracy": clean_half if half else clean,
        "test_images": len(y),
        "test_accuracy_float32": clean,
        "robust": robust,
        "weights": "float16 (cast back to float32 on load)" if half else "float32",
        "weights_digest": weights_digest(model),
    }
    return metrics, half


def package(
    recipe: ShippedRecipe,
    model: Classifier,
    metrics: dict,
    half: bool,
    out: Path,
    run_id: str = "",
    seconds: float | None = None,
) -> Path:
    """Write ``out/<name>.safetensors`` and ``.json`` with the recipe, its reasons and the metrics."""
    from dataclasses import replace

    from .state import save_model_checkpoint

    spec = model.spec
    if recipe.data == "cifar10-jpeg":  # an image folder's run says "folder"; the model is a CIFAR-10 model
        model.spec = replace(spec, dataset="cifar10")
    settings = {k: v for k, v in recipe.settings.items() if k not in ("device",)}
    recipe_meta = {
        **settings,
        "why": dict(recipe.why),
        "data": "MNIST (gzip IDX)" if recipe.data == "mnist" else CIFAR_LABEL,
        "seconds": seconds,
        "run_id": run_id,
        "command": f"python -m advlens build-model {recipe.name}",
        "weights": metrics["weights"],
    }
    try:
        return save_model_checkpoint(
            model,
            Path(out) / f"{recipe.name}.safetensors",
            recipe=recipe_meta,
            metrics=metrics,
            extra_meta={"description": recipe.description},
            weights_dtype=torch.float16 if half else None,
        )
    finally:
        model.spec = spec


def trained_model(recipe: ShippedRecipe, root: str, from_checkpoint: str | None, echo: bool = True):
    """(model, run id, training seconds): a fresh run of the recipe, or the weights of a checkpoint."""
    from . import jobs

    if from_checkpoint:
        model, meta = load_checkpoint(from_checkpoint)
        return model, str(meta.get("run_id", "")), (meta.get("metrics") or {}).get("train_seconds")
    rec = jobs.run_in_foreground(recipe.config(root), echo=echo)
    if rec.status != "done":
        raise RuntimeError(f"the training run {rec.id} ended {rec.status}: {rec.message}")
    model, _ = load_checkpoint(rec.final_path)
    return model, rec.id, rec.metrics.get("train_seconds")
