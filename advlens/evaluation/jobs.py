"""Evaluations as jobs: the ``evaluate`` kind of :mod:`advlens.jobs`, batch by batch.

Design
------
An evaluation is a job of kind ``evaluate`` (:class:`EvaluationJob`); its spec is an
:class:`~advlens.evaluation.spec.EvalSpec`, checked before the row is created. The queue per device,
the cancel flag, dead-worker reaping and the one worker loop are :mod:`advlens.jobs`'s; the worker is
``python -m advlens evaluate --run-id ID`` and logs to ``evaluate.log`` in the job's folder.

The kind evaluates each (model, budget) *part* in order with :func:`run_spec`. Inside the job folder:

- ``parts/<k>.json``: part k once finished: the evaluation's summary and per-image records and
  the checklist; ``parts/gallery-<k>.*`` the adversarial points of its first broken images;
- ``state/<k>.*``: part k while it runs, saved after a batch at most every ``SAVE_EVERY_S``
  seconds and whenever it stops, so a cancelled, killed or failed evaluation resumes from the last
  saved batch (finished parts are never redone);
- ``report.json``: every part with the protocol and the versions, written when all are done.

Progress (parts done plus the running part's share of its image-attacks) and an ETA go to the row
(:class:`advlens.jobs.api.Progress`), so the Evaluate page and ``python -m advlens runs`` show them.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..data.subset import Subset, load_subset
from ..jobs import api
from ..jobs.kinds import JobKind, register_kind
from ..jobs.store import RunRecord, RunStore, run_dir
from ..jobs.worker import spawn_worker
from ..models.checkpoint import atomic_write_bytes
from ..models.defended import is_random
from ..safe_json import loads_limited
from . import persist
from .cascade import Evaluation, Shard, evaluate
from .checklist import run_checklist
from .spec import EvalConfigError, EvalSpec

SAVE_EVERY_S = 5.0
GALLERY = 48  # broken images kept per part, for the page's gallery


def check_spec(spec: EvalSpec) -> EvalSpec:
    """Everything that can be checked without running: the settings, the models, the dataset."""
    from ..data.catalog import DATASETS
    from ..zoo import get_entry, is_checkpoint_path

    spec.validated()
    if spec.dataset not in DATASETS:
        raise EvalConfigError(f"unknown dataset {spec.dataset!r}; available: {', '.join(DATASETS)}")
    for name in spec.models + ([spec.surrogate] if spec.surrogate else []):
        if is_checkpoint_path(name):
            if not Path(name).is_file():
                raise EvalConfigError(f"no checkpoint file {name}")
            continue
        try:
            entry = get_entry(name)
        except KeyError as exc:
            raise EvalConfigError(exc.args[0]) from None
        if problem := entry.size_problem(spec.dataset):
            raise EvalConfigError(problem)
    return spec


@register_kind
class EvaluationJob(JobKind):
    """An evaluation by a suite: its spec is an :class:`EvalSpec` as a dict."""

    name = "evaluate"
    label = "evaluation"
    stopped = "cancelled; resume continues from the last saved batch"
    config_error = EvalConfigError

    def validate(self, spec: dict) -> dict:
        return check_spec(EvalSpec.from_dict(spec)).to_dict()

    def describe(self, spec: dict) -> dict:
        models = ", ".join(spec["models"])
        return {"title": f"{spec['suite']}: {models}", "suite": spec["suite"], "models": list(spec["models"])}

    def worker_command(self, job_id: str) -> list[str]:
        return worker_command(job_id)

    def execute(self, job: RunRecord, progress, should_stop, log):
        spec = EvalSpec.from_dict(job.config)
        log(f"evaluation {job.id}: {spec.suite} suite, {spec.norm}, eps {spec.eps}, models {', '.join(spec.models)}")
        folder = run_dir(job.id)
        report = run_spec(spec, folder, progress, should_stop, log=log, device=job.device)
        if report["stopped"]:
            return None
        atomic_write_bytes(folder / "report.json", json.dumps(report, indent=1).encode())
        return {"metrics": summary(report)}


def submit(spec: EvalSpec, store: RunStore | None = None) -> RunRecord:
    """Check ``spec``, queue it and launch its worker. Returns the run's record."""
    rec = api.submit(EvaluationJob(), spec.to_dict(), store, spawn=spawn_worker)
    spec.device = rec.device
    return rec


def resume(run_id: str, store: RunStore | None = None) -> RunRecord:
    """Queue a cancelled or failed evaluation again; it continues from its last saved batch."""
    return api.resume(run_id, store, spawn=spawn_worker)


def worker_command(run_id: str) -> list[str]:
    return [sys.executable, "-m", "advlens", "evaluate", "--run-id", run_id]


# ------------------------------------------------------------------------------ running a spec
def versions() -> dict:
    import advlens

    return {
        "advlens": getattr(advlens, "__version__", "?"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(torch.device("cuda") if torch.cuda.is_available() else "cpu"),
    }


def images(spec: EvalSpec) -> tuple[torch.Tensor, torch.Tensor, Subset]:
    """The images ``spec`` evaluates, chosen by the one subset rule (:mod:`advlens.data.subset`):
    the first ``n`` where the split's order is the official one, a class-stratified sample otherwise,
    or exactly ``spec.indices``."""
    return load_subset(
        spec.dataset, spec.split, spec.root, spec.n, spec.offset, spec.indices, spec.subset_seed,
        first=spec.legacy_first_n, error=EvalConfigError,
    )  # fmt: skip


def name_images(record: dict, subset: Subset) -> dict:
    """Give each per-image record its dataset index (and file), and the protocol its images."""
    for image in record.get("images", []):
        image.update(subset.image_name(image["index"]))
    record["protocol"] = f"{record['protocol']}; {subset.describe()}"
    record["subset"] = {k: v for k, v in subset.to_dict().items() if k not in ("indices", "files")}
    return record


def part_record(name: str, ev: Evaluation, checks) -> dict:
    gallery = sorted(ev.x_adv)[:GALLERY]
    return {"model": name, **ev.to_dict(), "checklist": [c.to_dict() for c in checks], "gallery": gallery}


def run_spec(
    spec: EvalSpec,
    folder: Path | None = None,
    progress: Callable[[float], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
    shard: Shard | None = None,
    log: Callable[[str], object] = lambda s: None,
    device: torch.device | str | None = None,
) -> dict:
    """Evaluate every part of ``spec``; returns the report (``stopped`` true if it was stopped).
    With ``folder`` the parts and the running state are kept there, and finished parts are reused."""
    from ..zoo import load_model

    x, y, subset = images(spec)
    log(subset.describe())
    if subset.warning():
        log(f"warning: {subset.warning()}")
    run = _SpecRun(spec, folder, x, y, subset, progress, should_stop, shard, log)
    run.surrogate = load_model(spec.surrogate, device) if spec.surrogate else None
    report = new_report(spec, x, subset)
    models: dict[str, torch.nn.Module] = {}
    for k, (name, eps) in enumerate(run.parts):
        done = run.finished_part(k)
        if done is not None:
            report["results"].append(done)
            continue
        if name not in models:
            models.clear()  # one model in memory at a time
            models[name] = load_model(name, device)
        record = run.part(k, name, eps, models[name])
        if record is None:
            report["stopped"] = True
            return report
        report["results"].append(record)
    return report


def new_report(spec: EvalSpec, x: torch.Tensor, subset: Subset) -> dict:
    """The report's header (its protocol, images and versions), before any result."""
    return {
        "spec": spec.to_dict(),
        "dataset": spec.dataset,
        "split": spec.split,
        "n": len(x),
        "subset": subset.to_dict(),
        "suite": spec.suite,
        "norm": spec.norm,
        "versions": versions(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "results": [],
        "stopped": False,
    }


class _SpecRun:
    """One run of a spec's parts over fixed images: the named steps of a part (resume its saved
    state, attack, check, repeat, keep), with the progress bar's share of each."""

    def __init__(self, spec, folder, x, y, subset, progress, should_stop, shard, log):
        self.spec, self.folder, self.x, self.y, self.subset = spec, folder, x, y, subset
        self.progress, self.should_stop, self.shard, self.log = progress, should_stop, shard, log
        self.parts = spec.parts()
        self.surrogate = None
        # with the checklist (rank 0 runs it), the attacks fill the first half of the part's share
        # of the bar, the six checks (the longer APGD-CE run, Square, ...) the second
        self.with_checklist = spec.checklist and (shard is None or shard.rank == 0)
        self.attack_share = 0.5 if self.with_checklist else 1.0

    def done_path(self, k: int) -> Path | None:
        return self.folder / "parts" / f"{k}.json" if self.folder else None

    def state_stem(self, k: int) -> Path | None:
        return self.folder / "state" / str(k) if self.folder else None

    def finished_part(self, k: int) -> dict | None:
        """Part k's record when an earlier run finished it (a resumed evaluation never redoes it)."""
        path = self.done_path(k)
        if path is None or not path.is_file():
            return None
        return loads_limited(path.read_text(), path.name, 64 * 1024**2)

    def part_progress(self, k: int, start: float, span: float):
        def report(done: int, total: int) -> None:
            if self.progress is not None:
                self.progress((k + start + span * done / max(total, 1)) / len(self.parts))

        return report

    def saved_state(self, k: int, name: str, eps: float):
        stem = self.state_stem(k)
        if stem is None or not stem.with_suffix(".json").is_file():
            return None
        state = persist.load(stem)
        self.log(f"part {k + 1}/{len(self.parts)}: resuming {name} at eps {eps:g} from attack {state.position + 1}")
        return state

    def part(self, k: int, name: str, eps: float, model) -> dict | None:
        """Evaluate part k (model ``name`` at ``eps``); its record, or None when stopped (state saved)."""
        if tuple(self.x.shape[1:]) != tuple(model.input_size):
            raise EvalConfigError(
                f"{self.spec.dataset} images are {tuple(self.x.shape[1:])}; {name} expects {model.input_size}"
            )
        stem = self.state_stem(k)
        saver = _Saver(stem)
        ev = evaluate_part(
            self.spec,
            model,
            self.x,
            self.y,
            eps,
            self.spec.seed,
            progress=self.part_progress(k, 0.0, self.attack_share),
            should_stop=self.should_stop,
            resume=self.saved_state(k, name, eps),
            after_batch=saver if stem is not None else None,
            shard=self.shard,
        )
        if ev.stopped:
            saver(ev, force=True)
            return None
        record = self.record(k, name, eps, model, ev)
        self.keep(k, ev, record)
        return record

    def record(self, k: int, name: str, eps: float, model, ev: Evaluation) -> dict:
        """Part k's record: the evaluation, its checklist, named images, and a random defense's spread."""
        checks = []
        if self.with_checklist:
            progress = self.part_progress(k, self.attack_share, 1.0 - self.attack_share)
            checks = run_checklist(
                model, self.x, self.y, ev, surrogate=self.surrogate, seed=self.spec.seed, progress=progress
            )
        record = name_images(part_record(getattr(model, "zoo_name", name), ev, checks), self.subset)
        record["model"] = name
        if is_random(model) and self.spec.repeats > 1:
            record["spread"] = repeated(model, self.x, self.y, eps, self.spec, ev, self.should_stop, self.log)
        self.log(
            f"part {k + 1}/{len(self.parts)}: {name} at eps {record['eps_shown']}: robust "
            f"{ev.robust_accuracy * 100:.2f}% (clean {ev.clean_accuracy * 100:.2f}%, n = {ev.n})"
        )
        return record

    def keep(self, k: int, ev: Evaluation, record: dict) -> None:
        """Save part k as finished (record and gallery) and drop its running state."""
        path = self.done_path(k)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        persist.save(ev, gallery_stem(self.folder, k), keep=GALLERY)
        atomic_write_bytes(path, json.dumps(record).encode())
        stem = self.state_stem(k)
        for suffix in (".json", ".safetensors"):
            stem.with_suffix(suffix).unlink(missing_ok=True)


def evaluate_part(spec: EvalSpec, model, x, y, eps: float, seed: int, **kwargs) -> Evaluation:
    """One (model, budget) part of ``spec`` with ``seed``: its suite, norm, batch size and adaptivity."""
    return evaluate(
        model,
        x,
        y,
        eps,
        spec.suite,
        norm=spec.norm,
        batch_size=spec.batch_size,
        seed=seed,
        adaptive=spec.adaptive,
        **kwargs,
    )


def repeated(model, x, y, eps: float, spec: EvalSpec, first: Evaluation, should_stop, log) -> dict:
    """A random defense's robust accuracy varies from run to run: run the part ``spec.repeats - 1``
    more times (seeds seed+1, ...) and give the spread of all runs (mean, standard deviation, range)."""
    values = [first.robust_accuracy]
    for r in range(1, spec.repeats):
        if should_stop is not None and should_stop():
            break
        ev = evaluate_part(spec, model, x, y, eps, spec.seed + r)
        values.append(ev.robust_accuracy)
        log(f"  repeat {r + 1}/{spec.repeats}: robust {ev.robust_accuracy * 100:.2f}%")
    t = torch.tensor(values, dtype=torch.float64)
    sd = float(t.std()) if len(values) > 1 else 0.0
    return {"runs": values, "mean": float(t.mean()), "sd": sd, "min": min(values), "max": max(values)}


def gallery_stem(folder: Path, part: int) -> Path:
    return folder / "parts" / f"gallery-{part}"


class _Saver:
    """Save a running part at most every SAVE_EVERY_S seconds (and when forced)."""

    def __init__(self, stem: Path | None):
        self.stem = stem
        self.last = time.monotonic()

    def __call__(self, ev: Evaluation, force: bool = False) -> None:
        if self.stem is None or not (force or time.monotonic() - self.last >= SAVE_EVERY_S):
            return
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        persist.save(ev, self.stem)
        self.last = time.monotonic()


# ------------------------------------------------------------------------------ the worker
def execute(run_id: str, store: RunStore | None = None, echo: bool = True) -> RunRecord:
    """The worker of an evaluation: the one worker loop (:func:`advlens.jobs.api.execute`)."""
    return api.execute(run_id, store, echo=echo, kind=EvaluationJob())


def summary(report: dict) -> dict:
    """The run row's metrics: robust accuracy per model and budget."""
    return {
        f"{r['model']}@{r['eps_shown']}": {
            "robust_accuracy": r["robust_accuracy"],
            "clean_accuracy": r["clean_accuracy"],
            "interval": r["robust_interval_95"],
        }
        for r in report["results"]
    }


def load_report(run_id: str) -> dict | None:
    """A finished evaluation's report (None when it has none yet)."""
    path = run_dir(run_id) / "report.json"
    if not path.is_file():
        return None
    return loads_limited(path.read_text(), "report.json", 256 * 1024**2)


def load_gallery(run_id: str, part: int) -> dict[int, torch.Tensor]:
    """Part ``part``'s kept adversarial points, by image index."""
    stem = gallery_stem(run_dir(run_id), part)
    if not stem.with_suffix(".safetensors").is_file():
        return {}
    return persist.load(stem).x_adv
