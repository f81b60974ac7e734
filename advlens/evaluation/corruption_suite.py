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

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..corruptions import CORRUPTIONS, NAMES, PAPER, SEVERITIES, corrupt
from ..data import to_float
from ..data.subset import SUBSET_SEED
from ..intervals import clopper_pearson
from ..jobs import api
from ..jobs.kinds import JobKind, register_kind
from ..jobs.store import RunRecord, RunStore, run_dir
from ..jobs.worker import spawn_worker
from ..models.modes import eval_mode, model_device

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
    return _run_models(spec, model_names, seed, batch_size, device, log, lambda k: progress)


def _run_models(spec, models, seed, batch_size, device, log, progress_of, should_stop=None, folder=None) -> dict | None:
    """The report of ``models`` on the images ``spec`` chooses; ``progress_of(k)`` is the k-th model's
    ``progress(done, total)``. With ``folder``, each model's record is saved as ``parts/<k>.json`` when
    it is done and read back instead of redone (a resumed job). None when stopped inside a model."""
    from ..safe_json import loads_limited
    from ..zoo import load_model
    from .jobs import images  # the one subset rule

    x, y, subset = images(spec)
    log(subset.describe())
    if subset.warning():
        log(f"warning: {subset.warning()}")
    report = {"suite": SUITE_NAME, "dataset": spec.dataset, "split": spec.split, "n": len(x)}
    report.update(subset=subset.to_dict(), results=[])
    for k, name in enumerate(models):
        path = None if folder is None else folder / "parts" / f"{k}.json"
        if path is not None and path.is_file():
            report["results"].append(loads_limited(path.read_text(), path.name, 64 * 1024**2))
            continue
        model = load_model(name, device)
        if tuple(x.shape[1:]) != tuple(model.input_size):
            raise ValueError(f"{spec.dataset} images are {tuple(x.shape[1:])}; {name} expects {model.input_size}")
        res = evaluate_corruptions(
            model, x, y, keys=subset.indices.tolist(), seed=seed, batch_size=batch_size,
            names=NAMES, progress=progress_of(k), should_stop=should_stop,
        )  # fmt: skip
        if len(res.correct) < len(NAMES):
            return None  # stopped inside this model: resume redoes it
        record = {"model": name, **res.to_dict()}
        record["protocol"] = f"{record['protocol']}; {subset.describe()}"
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
            log(f"{name}: mCA {record['mean_corruption_accuracy'] * 100:.2f}% (n = {record['n']})")
        report["results"].append(record)
    return report


# ------------------------------------------------------------------------------------------ as a job
CORRUPTIONS_KIND = "corruptions"


def check_job_spec(spec: dict) -> dict:
    """A corruption evaluation job's settings: the images (:class:`CorruptionSpec`), the models, the
    corruptions' seed, the batch size and the device; ValueError with one line on the first problem."""
    from ..data.catalog import DATASETS
    from ..zoo import get_entry

    known = set(CorruptionSpec.__dataclass_fields__) | {"models", "seed", "batch_size", "device"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"unknown corruption-suite setting(s): {', '.join(unknown)}")
    models = spec.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        raise ValueError("choose at least one model")
    if len(set(models)) != len(models):
        raise ValueError("a model is listed twice")
    if spec.get("dataset") not in DATASETS:
        raise ValueError(f"unknown dataset {spec.get('dataset')!r}; available: {', '.join(DATASETS)}")
    for name in models:
        try:
            get_entry(name)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
    batch = spec.get("batch_size", 128)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 4096:
        raise ValueError(f"the batch size must be a whole number from 1 to 4096, not {batch!r}")
    images = {k: spec[k] for k in CorruptionSpec.__dataclass_fields__ if k in spec}
    return {**CorruptionSpec(**images).__dict__, "models": models, "seed": int(spec.get("seed", 0)),
            "batch_size": batch, "device": spec.get("device", "auto")}  # fmt: skip


def run_job_parts(spec: dict, folder, progress=None, should_stop=None, log=print, device=None) -> dict | None:
    """:func:`run` as a job: each model's record saved as ``parts/<k>.json`` when it is done, so a
    resumed job redoes only the model it was stopped in; ``progress(fraction)`` over all the models.
    The report, or None when stopped."""
    cspec = CorruptionSpec(**{k: spec[k] for k in CorruptionSpec.__dataclass_fields__})
    models = spec["models"]

    def progress_of(k: int):
        return None if progress is None else (lambda d, t: progress((k + d / t) / len(models)))

    return _run_models(cspec, models, spec["seed"], spec["batch_size"], device, log, progress_of, should_stop, folder)


@register_kind
class CorruptionsJob(JobKind):
    """The common-corruptions suite on one or more models, as a job (``evaluate --suite corruptions --detach``)."""

    name = CORRUPTIONS_KIND
    label = "corruption evaluation"
    stopped = "cancelled; resume goes on with the models not finished"

    def validate(self, spec: dict) -> dict:
        return check_job_spec(spec)

    def describe(self, spec: dict) -> dict:
        return {"title": f"corruptions: {', '.join(spec['models'])}", "suite": SUITE_NAME, "models": spec["models"]}

    def execute(self, job: RunRecord, progress, should_stop, log):
        folder = run_dir(job.id)
        report = run_job_parts(job.config, folder, progress, should_stop, log, device=job.device)
        if report is None:
            return None
        (folder / "report.json").write_text(json.dumps(report, indent=1))
        metrics = {r["model"]: {"mCA": r["mean_corruption_accuracy"], "interval": r["mean_interval_95"]}
                   for r in report["results"]}  # fmt: skip
        return {"metrics": metrics}


def submit_job(spec: dict, store: RunStore | None = None) -> RunRecord:
    """Check ``spec`` (see :func:`check_job_spec`), queue it and launch its worker."""
    return api.submit(CorruptionsJob(), spec, store, spawn=spawn_worker)
