"""The ``corruptions`` suite: accuracy under the 15 common corruptions at 5 severities (no budget).

RobustBench's ``corruptions`` threat model on CIFAR-10-C (Hendrycks and Dietterich 2019), with the
corruptions generated on the fly from any dataset by :mod:`advlens.corruptions` (deterministic given
the seed; image ``i`` is keyed by its dataset index, so a subset's corruptions do not depend on the
batch). The images are chosen by the one subset rule, as for every evaluation
(:func:`advlens.evaluation.jobs.images`).

The report holds the clean accuracy, the accuracy per corruption and severity with its 95%
Clopper-Pearson interval, the mean per corruption, and the mean corruption accuracy (mCA, the mean
over the 75 cells, RobustBench's figure). The mCA's 95% interval treats the images as the
independent units: each image's score is the fraction of the 75 corrupted versions it gets right,
and the interval is the normal one on the mean of those n scores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..corruptions import CORRUPTIONS, NAMES, PAPER, SEVERITIES, corrupt
from ..data import to_float
from ..data.subset import SUBSET_SEED
from ..models.modes import eval_mode, model_device
from .intervals import clopper_pearson

SUITE_NAME = "corruptions"


@dataclass
class CorruptionSpec:
    """What :func:`advlens.evaluation.jobs.images` reads to choose the images (the one subset rule)."""

    dataset: str
    split: str = "test"
    root: str | None = None
    n: int = 0
    offset: int = 0
    indices: list[int] | None = None
    subset_seed: int = SUBSET_SEED
    legacy_first_n: bool = False


@dataclass
class CorruptionResult:
    seed: int
    clean_correct: torch.Tensor  # (n,) bool
    correct: dict[str, torch.Tensor] = field(default_factory=dict)  # corruption -> (5, n) bool
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return len(self.clean_correct)

    def accuracy(self, name: str, severity: int) -> float:
        return float(self.correct[name][severity - 1].float().mean())

    def mean_accuracy(self) -> float:
        """mCA: the mean accuracy over every corruption and severity evaluated."""
        return float(torch.stack(list(self.correct.values())).float().mean()) if self.correct else float("nan")

    def mean_interval(self) -> tuple[float, float]:
        scores = torch.stack(list(self.correct.values())).float().mean((0, 1))  # per image
        m = float(scores.mean())
        if self.n < 2:
            return 0.0, 1.0
        half = 1.96 * float(scores.std()) / math.sqrt(self.n)
        return max(0.0, m - half), min(1.0, m + half)

    def protocol(self) -> str:
        return (
            f"common corruptions ({len(self.correct)} corruptions x {len(SEVERITIES)} severities, generated on the "
            f"fly after {PAPER}; seed {self.seed}), n = {self.n}"
        )

    def to_dict(self) -> dict:
        lo, hi = self.mean_interval()
        clo, chi = clopper_pearson(int(self.clean_correct.sum()), self.n)
        table = {}
        for name, cor in self.correct.items():
            cells = []
            for s in SEVERITIES:
                k = int(cor[s - 1].sum())
                cells.append({"severity": s, "accuracy": k / self.n, "interval_95": list(clopper_pearson(k, self.n))})
            table[name] = {
                "title": CORRUPTIONS[name].title,
                "family": CORRUPTIONS[name].family,
                "exact_replica": CORRUPTIONS[name].exact,
                "mean": float(cor.float().mean()),
                "severities": cells,
            }
        return {
            "suite": SUITE_NAME,
            "protocol": self.protocol(),
            "n": self.n,
            "seed": self.seed,
            "clean_accuracy": float(self.clean_correct.float().mean()),
            "clean_interval_95": [clo, chi],
            "mean_corruption_accuracy": self.mean_accuracy(),
            "mean_interval_95": [lo, hi],
            "corruptions": table,
            "seconds": round(self.seconds, 2),
        }


def _predict(model, x: torch.Tensor, device) -> torch.Tensor:
    with torch.no_grad():
        return model(x.to(device)).argmax(1).cpu()


def evaluate_corruptions(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    keys=None,
    seed: int = 0,
    names=NAMES,
    batch_size: int = 128,
    progress: Callable[[int, int], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CorruptionResult:
    """Accuracy of ``model`` on ``x`` (uint8 or float in [0, 1]) under each corruption and severity.

    ``keys``: the images' dataset indices (they seed each image's corruption; default 0 .. n-1).
    ``progress(done, total)`` counts (corruption, severity) cells; ``should_stop()`` is polled after
    each cell (the result then holds the cells done so far)."""
    for name in names:
        CORRUPTIONS.lookup(name)
    x = to_float(x)
    y = torch.as_tensor(y).long().cpu()
    keys = list(range(len(x))) if keys is None else [int(k) for k in keys]
    device = model_device(model)
    t0 = time.perf_counter()
    chunks = [slice(s, s + batch_size) for s in range(0, len(x), batch_size)]
    with eval_mode(model):
        clean = torch.cat([_predict(model, x[c], device) for c in chunks]) == y
        result = CorruptionResult(int(seed), clean)
        total, done = len(names) * len(SEVERITIES), 0
        for name in names:
            rows = []
            for s in SEVERITIES:
                pred = torch.cat([_predict(model, corrupt(x[c], name, s, seed, keys[c]), device) for c in chunks])
                rows.append(pred == y)
                done += 1
                if progress is not None:
                    progress(done, total)
            result.correct[name] = torch.stack(rows)
            if should_stop is not None and should_stop():
                break
    result.seconds = time.perf_counter() - t0
    return result


def format_table(report: dict) -> str:
    """The 15 x 5 accuracies, the mean per corruption and the mCA, as plain text for the CLI."""
    lines = [f"{'corruption':<22s}" + "".join(f"{'sev ' + str(s):>8s}" for s in SEVERITIES) + f"{'mean':>8s}"]
    for name, row in report["corruptions"].items():
        cells = "".join(f"{c['accuracy'] * 100:7.1f}%" for c in row["severities"])
        mark = "" if row["exact_replica"] else " *"
        lines.append(f"{name + mark:<22s}{cells}{row['mean'] * 100:7.1f}%")
    lo, hi = report["mean_interval_95"]
    clo, chi = report["clean_interval_95"]
    lines.append(
        f"mean corruption accuracy (mCA) {report['mean_corruption_accuracy'] * 100:.2f}% [{lo * 100:.1f}, "
        f"{hi * 100:.1f}]   clean {report['clean_accuracy'] * 100:.2f}% [{clo * 100:.1f}, {chi * 100:.1f}]   "
        f"n = {report['n']}"
    )
    lines.append("* not an exact replica of the published CIFAR-10-C generator (see advlens.corruptions)")
    return "\n".join(lines)


def run(
    spec: CorruptionSpec,
    model_names: list[str],
    *,
    seed: int = 0,
    batch_size: int = 128,
    log=print,
    progress=None,
    device=None,
) -> dict:
    """Evaluate each model of ``model_names`` on the images ``spec`` chooses; returns the report."""
    from ..zoo import load_model
    from .jobs import images  # the one subset rule

    x, y, subset = images(spec)
    log(subset.describe())
    if subset.warning():
        log(f"warning: {subset.warning()}")
    report = {
        "suite": SUITE_NAME,
        "dataset": spec.dataset,
        "split": spec.split,
        "n": len(x),
        "subset": subset.to_dict(),
        "results": [],
    }
    keys = subset.indices.tolist()
    for name in model_names:
        model = load_model(name, device)
        if tuple(x.shape[1:]) != tuple(model.input_size):
            raise ValueError(f"{spec.dataset} images are {tuple(x.shape[1:])}; {name} expects {model.input_size}")
        res = evaluate_corruptions(model, x, y, keys=keys, seed=seed, batch_size=batch_size, progress=progress)
        record = {"model": name, **res.to_dict()}
        record["protocol"] = f"{record['protocol']}; {subset.describe()}"
        report["results"].append(record)
    return report
