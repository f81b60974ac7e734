"""The attention-shift study as a job: the ``attention`` kind of :mod:`advlens.jobs`.

The study of Wu et al. (ACM TOMM 2023, arXiv 1811.09831; :mod:`advlens.attribution.analysis`) attacks
N images with PGD L-inf, computes the clean and adversarial attention maps and compares the images the
attack broke with those it did not. On hundreds of images that is minutes, so it runs in the
background: the images (the one subset rule, :mod:`advlens.data.subset`) go in chunks of
:data:`CHUNK`; each chunk is attacked with its own seed (``seed + first position``), analysed, and
saved as ``chunks/<first>.json`` in the job's folder. A stopped job resumes with the chunks not saved
yet, and gives what an uninterrupted one would. When all are done, ``result.json`` holds the merged
per-image metrics, which :func:`load_result` turns back into a
:class:`~advlens.attribution.analysis.ShiftAnalysis` for the page's table, verdict and figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from .attribution.analysis import ShiftAnalysis, analyze_attention_shift
from .data.catalog import DATASETS
from .data.subset import SUBSET_SEED, load_subset
from .jobs import api
from .jobs.kinds import JobKind, register_kind
from .jobs.spec import JobSpec
from .jobs.store import RunRecord, RunStore, run_dir
from .jobs.worker import spawn_worker
from .models.checkpoint import atomic_write_bytes
from .safe_json import loads_limited

KIND = "attention"
CHUNK = 20  # images attacked and analysed between saves
MAX_IMAGES = 20_000


class StudyConfigError(ValueError):
    """A bad setting of the attention-shift study; the message says what to change."""


@dataclass
class StudySpec(JobSpec):
    what = "attention-study"
    error = StudyConfigError

    model: str
    dataset: str
    n: int = 100
    eps: float = 20 / 255
    steps: int = 10
    method: str = "gradcam"
    layer: str | None = None
    target: str | int = "true"
    k_percent: float = 20.0
    threshold: float = 0.5
    split: str = "test"
    root: str | None = None
    offset: int = 0
    subset_seed: int = SUBSET_SEED
    seed: int = 0
    device: str = "auto"
    name: str = ""


def check_spec(spec: StudySpec) -> StudySpec:
    """What can be checked before running: the numbers, the attribution method, the model and dataset."""
    from .attribution import METHODS
    from .zoo import get_entry

    if isinstance(spec.n, bool) or not isinstance(spec.n, int) or not 4 <= spec.n <= MAX_IMAGES:
        raise StudyConfigError(f"n must be a whole number from 4 to {MAX_IMAGES:,}, not {spec.n!r}")
    if isinstance(spec.steps, bool) or not isinstance(spec.steps, int) or not 1 <= spec.steps <= 1000:
        raise StudyConfigError(f"steps must be a whole number from 1 to 1000, not {spec.steps!r}")
    if not isinstance(spec.eps, (int, float)) or isinstance(spec.eps, bool) or not 0 < spec.eps <= 1:
        raise StudyConfigError(f"eps must lie in (0, 1] (pixels in [0, 1]), not {spec.eps!r}")
    from .attribution.targets import TARGET_LABELS

    if not (spec.target in TARGET_LABELS or (isinstance(spec.target, int) and not isinstance(spec.target, bool))):
        raise StudyConfigError(f"the target is one of {', '.join(TARGET_LABELS)} or a class index, not {spec.target!r}")
    if spec.method not in METHODS:
        raise StudyConfigError(f"unknown attribution method {spec.method!r}; use one of: {', '.join(METHODS)}")
    if spec.dataset not in DATASETS:
        raise StudyConfigError(f"unknown dataset {spec.dataset!r}; available: {', '.join(DATASETS)}")
    try:
        entry = get_entry(spec.model)
    except KeyError as exc:
        raise StudyConfigError(exc.args[0]) from None
    if problem := entry.size_problem(spec.dataset):
        raise StudyConfigError(problem)
    return spec


def images(spec: StudySpec):
    return load_subset(
        spec.dataset, spec.split, spec.root, spec.n, spec.offset, None, spec.subset_seed, error=StudyConfigError
    )


# ------------------------------------------------------------------------------------------- chunks
def study_chunk(spec: StudySpec, model, x, y, start: int, progress=None) -> dict:
    """Attack images ``start..start+len(x)`` and analyse them: their metrics, as JSON-able lists.
    ``progress(done, total)`` in 100 steps: the attack is the first half, the maps the second."""
    from .attacks import attack_in_batches

    def half(first: bool):
        return None if progress is None else (lambda d, t: progress(round((0 if first else 50) + 50 * d / t), 100))

    torch.manual_seed(spec.seed + start)  # each chunk its own seed: a resumed study equals an uninterrupted one
    x_adv = attack_in_batches(model, x, y, "pgd", eps=spec.eps, steps=spec.steps, progress=half(True))
    a = analyze_attention_shift(
        model,
        x,
        y,
        x_adv,
        method=spec.method,
        layer=spec.layer,
        target=spec.target,
        k_percent=spec.k_percent,
        threshold=spec.threshold,
        progress=half(False),
    )
    return {
        "start": start,
        "metrics": {k: v.astype(float).tolist() for k, v in a.metrics.items()},
        "success": a.success.astype(bool).tolist(),
        "indices": [int(i) + start for i in a.indices],
        "n_total": a.n_total,
        "n_clean_wrong": a.n_clean_wrong,
        "settings": a.settings,
    }


def run_chunks(spec: StudySpec, model, x, y, folder=None, progress=None, should_stop=None, log=print):
    """Every chunk, skipping those saved in ``folder``; the chunks in order, or None when stopped."""
    chunks = []
    for start in range(0, len(x), CHUNK):
        path = folder / "chunks" / f"{start}.json" if folder is not None else None
        if path is not None and path.is_file():
            chunks.append(loads_limited(path.read_text(), path.name, 64 * 1024**2))
            continue
        if should_stop is not None and should_stop():
            return None
        chunk = study_chunk(spec, model, x[start : start + CHUNK], y[start : start + CHUNK], start)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(chunk).encode())
        chunks.append(chunk)
        log(f"images {start + 1}-{min(start + CHUNK, len(x))} of {len(x)}: {sum(chunk['success'])} broken")
        if progress is not None:
            progress(min(start + CHUNK, len(x)) / len(x))
    return chunks


def merge(chunks: list[dict]) -> dict:
    """One result from the chunks: the per-image metrics of every analysed image, in order."""
    keys = chunks[0]["metrics"].keys() if chunks else ()
    return {
        "metrics": {k: [v for c in chunks for v in c["metrics"][k]] for k in keys},
        "success": [s for c in chunks for s in c["success"]],
        "indices": [i for c in chunks for i in c["indices"]],
        "n_total": sum(c["n_total"] for c in chunks),
        "n_clean_wrong": sum(c["n_clean_wrong"] for c in chunks),
        "settings": chunks[0]["settings"] if chunks else {},
    }


def as_analysis(result: dict) -> ShiftAnalysis:
    return ShiftAnalysis(
        {k: np.asarray(v, dtype=np.float64) for k, v in result["metrics"].items()},
        np.asarray(result["success"], dtype=bool),
        np.asarray(result["indices"], dtype=np.int64),
        int(result["n_total"]),
        int(result["n_clean_wrong"]),
        dict(result["settings"]),
    )


def load_result(job_id: str) -> tuple[dict, ShiftAnalysis] | None:
    """A finished study's spec and analysis (None when it has none yet)."""
    path = run_dir(job_id) / "result.json"
    if not path.is_file():
        return None
    result = loads_limited(path.read_text(), "result.json", 256 * 1024**2)
    return result["spec"], as_analysis(result)


# ------------------------------------------------------------------------------------------ the kind
@register_kind
class AttentionStudyJob(JobKind):
    """The attention-shift study: its spec is a :class:`StudySpec` as a dict."""

    name = KIND
    label = "attention study"
    stopped = "cancelled; resume goes on with the images not analysed yet"
    config_error = StudyConfigError

    def validate(self, spec: dict) -> dict:
        return check_spec(StudySpec.from_dict(spec)).to_dict()

    def describe(self, spec: dict) -> dict:
        return {"title": f"attention shift: {spec['model']}, {spec['n']} images", "model": spec["model"]}

    def execute(self, job: RunRecord, progress, should_stop, log):
        from .zoo import load_model

        spec = StudySpec.from_dict(job.config)
        model = load_model(spec.model, job.device)
        x, y, subset = images(spec)
        log(f"attention shift of {spec.model}: PGD L-inf eps {spec.eps:.4g}, {spec.steps} steps; {subset.describe()}")
        folder = run_dir(job.id)
        chunks = run_chunks(spec, model, x, y, folder, progress, should_stop, log)
        if chunks is None:
            return None
        result = {**merge(chunks), "spec": spec.to_dict(), "subset": subset.describe()}
        atomic_write_bytes(folder / "result.json", json.dumps(result).encode())
        a = as_analysis(result)
        return {"metrics": {"analysed": len(a.success), "broken": a.n_success, "clean_wrong": a.n_clean_wrong}}


def submit(spec: StudySpec, store: RunStore | None = None) -> RunRecord:
    """Check ``spec``, queue the study and launch its worker (``python -m advlens.jobs ID``)."""
    return api.submit(AttentionStudyJob(), spec.to_dict(), store, spawn=spawn_worker)


def resume(job_id: str, store: RunStore | None = None) -> RunRecord:
    return api.resume(job_id, store, spawn=spawn_worker)


def execute(job_id: str, store: RunStore | None = None, echo: bool = True) -> RunRecord:
    """Be the worker of a study: the one worker loop (:func:`advlens.jobs.api.execute`)."""
    return api.execute(job_id, store, echo=echo, kind=AttentionStudyJob())
