"""Evaluations as jobs: queued, run, cancelled and resumed like training runs, batch by batch.

Design
------
An evaluation is a run of kind ``evaluate`` in the run store (:mod:`advlens.training.store`); its
config is an :class:`~advlens.evaluation.spec.EvalSpec`, checked before the row is created. It
shares the training runs' queue (one run per device at a time, first come first served), their
cancel flag and their dead-worker reaping (:mod:`advlens.workers`). :func:`submit` creates the row
and launches the detached worker ``python -m advlens evaluate --run-id ID``.

The worker (:func:`execute`) waits for its turn, then evaluates each (model, budget) *part* in
order with :func:`run_spec`. Inside the run folder:

- ``parts/<k>.json``: part k once finished: the evaluation's summary and per-image records and
  the checklist; ``parts/gallery-<k>.*`` the adversarial points of its first broken images;
- ``state/<k>.*``: part k while it runs, saved after a batch at most every ``SAVE_EVERY_S``
  seconds and whenever it stops, so a cancelled, killed or failed evaluation resumes from the last
  saved batch (finished parts are never redone);
- ``report.json``: every part with the protocol and the versions, written when all are done.

Progress (parts done plus the running part's share of its image-attacks) and an ETA from the
elapsed time go to the run's row, so the Evaluate page and ``python -m advlens runs`` show them.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from ..data import DataError, load_dataset
from ..data.subset import Subset, choose_images
from ..models.checkpoint import atomic_write_bytes
from ..models.defended import is_random
from ..safe_json import loads_limited
from ..training.store import RunRecord, RunStore, run_dir
from ..workers import install_sigterm, spawn_worker, wait_for_turn
from . import persist
from .cascade import Evaluation, Shard, evaluate
from .checklist import run_checklist
from .spec import EvalConfigError, EvalSpec

SAVE_EVERY_S = 5.0
GALLERY = 48  # broken images kept per part, for the page's gallery
PROGRESS_SCALE = 1000  # the run row's step/total_steps for an evaluation: thousandths done


def resolved_device(spec: EvalSpec) -> str:
    from ..device import get_device

    want = spec.device.strip().lower()
    if want in ("auto", ""):
        dev = get_device()
        return "cpu" if dev.type == "cpu" else f"cuda:{dev.index or 0}"
    if want == "cpu" or not torch.cuda.is_available():
        return "cpu"
    return want


def check_spec(spec: EvalSpec) -> EvalSpec:
    """Everything that can be checked without running: the settings, the models, the dataset."""
    from ..data.catalog import DATASETS
    from ..zoo import get_entry, is_checkpoint_path

    spec.validated()
    if spec.dataset not in DATASETS:
        raise EvalConfigError(f"unknown dataset {spec.dataset!r}; available: {', '.join(DATASETS)}")
    shape = DATASETS[spec.dataset].input_size
    for name in spec.models + ([spec.surrogate] if spec.surrogate else []):
        if is_checkpoint_path(name):
            if not Path(name).is_file():
                raise EvalConfigError(f"no checkpoint file {name}")
            continue
        try:
            entry = get_entry(name)
        except KeyError as exc:
            raise EvalConfigError(exc.args[0]) from None
        if entry.input_size is not None and spec.dataset != "folder" and tuple(entry.input_size) != tuple(shape):
            raise EvalConfigError(f"{name} expects {tuple(entry.input_size)} images; {spec.dataset} has {shape}")
    return spec


def submit(spec: EvalSpec, store: RunStore | None = None) -> RunRecord:
    """Check ``spec``, queue it and launch its worker. Returns the run's record."""
    store = store or RunStore()
    check_spec(spec)
    spec.device = resolved_device(spec)
    rec = store.create_run(spec.to_dict(), spec.device, kind="evaluate")
    spawn_worker(rec.id, worker_command(rec.id), store)
    return store.require(rec.id)


def resume(run_id: str, store: RunStore | None = None) -> RunRecord:
    """Queue a cancelled or failed evaluation again; it continues from its last saved batch."""
    store = store or RunStore()
    store.reap_dead()
    rec = store.require(run_id)
    if rec.status == "done":
        raise ValueError(f"evaluation {run_id} is done")
    store.requeue(run_id, rec.device)
    spawn_worker(run_id, worker_command(run_id), store)
    return store.require(run_id)


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
    ds = load_dataset(spec.dataset, split=spec.split, root=spec.root)
    try:
        subset = choose_images(ds, spec.n, spec.offset, spec.indices, spec.subset_seed, first=spec.legacy_first_n)
    except DataError as exc:
        raise EvalConfigError(str(exc)) from None
    x, y = ds.batch(subset.indices)
    return x, y, subset


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
    parts = spec.parts()
    report = {
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
    models: dict[str, torch.nn.Module] = {}
    surrogate = load_model(spec.surrogate, device) if spec.surrogate else None
    for k, (name, eps) in enumerate(parts):
        done_path = folder / "parts" / f"{k}.json" if folder else None
        if done_path is not None and done_path.is_file():
            report["results"].append(loads_limited(done_path.read_text(), done_path.name, 64 * 1024**2))
            continue
        if name not in models:
            models.clear()  # one model in memory at a time
            models[name] = load_model(name, device)
        model = models[name]
        if tuple(x.shape[1:]) != tuple(model.input_size):
            raise EvalConfigError(f"{spec.dataset} images are {tuple(x.shape[1:])}; {name} expects {model.input_size}")
        stem = folder / "state" / str(k) if folder else None
        resume = None
        if stem is not None and stem.with_suffix(".json").is_file():
            resume = persist.load(stem)
            log(f"part {k + 1}/{len(parts)}: resuming {name} at eps {eps:g} from attack {resume.position + 1}")
        saver = _Saver(stem)

        # with the checklist (rank 0 runs it), the attacks fill the first half of the part's share
        # of the bar, the six checks (the longer APGD-CE run, Square, ...) the second
        with_checklist = spec.checklist and (shard is None or shard.rank == 0)
        attack_share = 0.5 if with_checklist else 1.0

        def part_progress(done: int, total: int, k=k, start=0.0, span=attack_share) -> None:
            if progress is not None:
                progress((k + start + span * done / max(total, 1)) / len(parts))

        ev = evaluate_part(
            spec,
            model,
            x,
            y,
            eps,
            spec.seed,
            progress=part_progress,
            should_stop=should_stop,
            resume=resume,
            after_batch=saver if stem is not None else None,
            shard=shard,
        )
        if ev.stopped:
            saver(ev, force=True)
            report["stopped"] = True
            return report
        checks = []
        if with_checklist:
            checks = run_checklist(
                model,
                x,
                y,
                ev,
                surrogate=surrogate,
                seed=spec.seed,
                progress=partial(part_progress, start=attack_share, span=1.0 - attack_share),
            )
        record = name_images(part_record(getattr(model, "zoo_name", name), ev, checks), subset)
        record["model"] = name
        if is_random(model) and spec.repeats > 1:
            record["spread"] = repeated(model, x, y, eps, spec, ev, should_stop, log)
        report["results"].append(record)
        log(
            f"part {k + 1}/{len(parts)}: {name} at eps {record['eps_shown']}: robust "
            f"{ev.robust_accuracy * 100:.2f}% (clean {ev.clean_accuracy * 100:.2f}%, n = {ev.n})"
        )
        if done_path is not None:
            done_path.parent.mkdir(parents=True, exist_ok=True)
            persist.save(ev, gallery_stem(folder, k), keep=GALLERY)
            atomic_write_bytes(done_path, json.dumps(record).encode())
            for suffix in (".json", ".safetensors"):
                stem.with_suffix(suffix).unlink(missing_ok=True)
    return report


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
    """The worker of an evaluation run: wait for the device, evaluate, record. Never raises for a
    failed evaluation (the run's message says what went wrong)."""
    from ..training.loop import RunLogger, StopRequested, format_exception

    store = store or RunStore()
    folder = run_dir(run_id)
    log = RunLogger(folder / "train.log", echo=echo)
    stop = StopRequested()
    install_sigterm(stop)
    rec = store.require(run_id)
    if rec.pid != os.getpid():
        store.attach_worker(run_id, os.getpid())
    status = wait_for_turn(run_id, store, log, stop)
    if status != "started":
        log(f"not started: the evaluation is {status}")
        return store.require(run_id)
    store.attach_worker(run_id, os.getpid())
    t0 = time.time()

    def progress(fraction: float) -> None:
        elapsed = time.time() - t0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
        store.update(run_id, step=int(fraction * PROGRESS_SCALE), total_steps=PROGRESS_SCALE, eta_s=eta)

    def should_stop() -> bool:
        return bool(stop) or store.cancel_requested(run_id)

    try:
        spec = EvalSpec.from_dict(store.require(run_id).config)
        log(f"evaluation {run_id}: {spec.suite} suite, {spec.norm}, eps {spec.eps}, models {', '.join(spec.models)}")
        device = "cpu" if rec.device == "cpu" else rec.device
        report = run_spec(spec, folder, progress, should_stop, log=log, device=device)
        if report["stopped"]:
            store.finish(run_id, "cancelled", "cancelled; resume continues from the last saved batch")
            log("cancelled")
        else:
            atomic_write_bytes(folder / "report.json", json.dumps(report, indent=1).encode())
            store.finish(run_id, "done", "", metrics=summary(report), step=PROGRESS_SCALE, total_steps=PROGRESS_SCALE)
            log("done")
    except BaseException as exc:
        log("failed:\n" + format_exception(exc))
        message = (
            str(exc) if isinstance(exc, (EvalConfigError, ValueError, KeyError)) else f"{type(exc).__name__}: {exc}"
        )
        try:
            store.finish(run_id, "failed", message)
        except Exception:
            pass
        if isinstance(exc, KeyboardInterrupt):
            raise
    return store.require(run_id)


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
