"""Certification of many images as a job: the ``certify`` kind of :mod:`advlens.jobs`.

Randomized smoothing (Cohen, Rosenfeld and Kolter 2019, arXiv 1902.02918; :mod:`advlens.smoothing`)
costs ``n0 + n`` forward passes per image, so certifying more than a few images
(:data:`INLINE_MAX`) runs in the background: a :class:`CertifySpec` is checked before anything is
queued, the worker certifies image after image and appends each certificate to
``certificates.jsonl`` in the job's folder as it comes. A cancelled, killed or failed job resumes
with the images it has not finished (a finished one is never redone). Each image draws its noise
from its own seed (``seed + position``), so a resumed job gives the certificates an uninterrupted
one would. When every image is certified, ``report.json`` holds the certificates and the certified
accuracy at each radius with its 95% Clopper-Pearson interval, the images (the one subset rule,
:mod:`advlens.data.subset`) and n.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

import torch

from .data import to_float
from .data.catalog import DATASETS
from .data.subset import SUBSET_SEED, load_subset
from .intervals import clopper_pearson
from .jobs import api
from .jobs.kinds import JobKind, register_kind
from .jobs.spec import JobSpec
from .jobs.store import RunRecord, RunStore, run_dir
from .jobs.worker import spawn_worker
from .models.checkpoint import atomic_write_bytes
from .params import MAX_ITEMS
from .safe_json import loads_limited
from .smoothing import ABSTAIN, Certificate, Stopped, certified_accuracy, certify, check_settings

KIND = "certify"
INLINE_MAX = 8  # more images than this are certified as a job (progress, stop, resume)
MAX_IMAGES = 100_000
RESULTS = "certificates.jsonl"
DEFAULT_RADII = [0.0, 0.25, 0.5, 0.75, 1.0]


class CertifyConfigError(ValueError):
    """A bad setting of a certification; the message says what to change."""


@dataclass
class CertifySpec(JobSpec):
    what = "certification"
    error = CertifyConfigError

    model: str
    dataset: str
    sigma: float = 0.25
    images: int = 100  # by the subset rule (0: all from offset on)
    offset: int = 0
    indices: list[int] | None = None
    subset_seed: int = SUBSET_SEED
    split: str = "test"
    root: str | None = None
    n: int = 10_000
    n0: int = 100
    alpha: float = 0.001
    radii: list[float] = field(default_factory=lambda: list(DEFAULT_RADII))
    seed: int = 0
    device: str = "auto"
    name: str = ""


def check_spec(spec: CertifySpec) -> CertifySpec:
    """Everything that can be checked before running: smoothing settings, radii, images, model, dataset."""
    from .zoo import get_entry, is_checkpoint_path

    try:
        check_settings(spec.sigma, spec.n, spec.n0, spec.alpha)
    except ValueError as exc:
        raise CertifyConfigError(str(exc)) from None
    radii = spec.radii
    if not isinstance(radii, list) or not radii or not all(_number(r) and 0 <= r <= 100 for r in radii):
        raise CertifyConfigError("radii must be a list of non-negative numbers")
    if len(radii) > MAX_ITEMS:
        raise CertifyConfigError(f"at most {MAX_ITEMS} radii, not {len(radii):,}")
    for what, v, hi in (
        ("images", spec.images, MAX_IMAGES),
        ("offset", spec.offset, 10**9),
        ("seed", spec.seed, 2**31 - 1),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
            raise CertifyConfigError(f"{what} must be a whole number from 0 to {hi:,}, not {v!r}")
    if spec.dataset not in DATASETS:
        raise CertifyConfigError(f"unknown dataset {spec.dataset!r}; available: {', '.join(DATASETS)}")
    if is_checkpoint_path(spec.model):
        return spec
    try:
        entry = get_entry(spec.model)
    except KeyError as exc:
        raise CertifyConfigError(exc.args[0]) from None
    if problem := entry.size_problem(spec.dataset):
        raise CertifyConfigError(problem)
    return spec


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def images(spec: CertifySpec):
    """The images ``spec`` certifies (the one subset rule) as floats in [0, 1], their labels and the subset."""
    x, y, subset = load_subset(
        spec.dataset, spec.split, spec.root, spec.images, spec.offset, spec.indices, spec.subset_seed,
        error=CertifyConfigError,
    )  # fmt: skip
    return to_float(x), y, subset


# ------------------------------------------------------------------------------------- the results
def load_certificates(folder) -> dict[int, dict]:
    """The certificates a job has saved, by position among its images (a torn last line is skipped)."""
    path = folder / RESULTS
    out: dict[int, dict] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and isinstance(item.get("position"), int):
            out[item["position"]] = item
    return out


def _append(folder, item: dict) -> None:
    with open(folder / RESULTS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(item) + "\n")
        fh.flush()


def certify_images(spec: CertifySpec, model, x, y, subset, folder=None, progress=None, should_stop=None, log=print):
    """Certify every image not yet in ``folder``; the certificates by position, or None when stopped."""
    done = load_certificates(folder) if folder is not None else {}
    if done:
        log(f"resuming: {len(done)} of {len(x)} image(s) already certified")
    for i in range(len(x)):
        if i in done:
            continue
        if should_stop is not None and should_stop():
            return None
        torch.manual_seed(spec.seed + i)  # each image its own noise: a resumed job equals an uninterrupted one
        step = None if progress is None else (lambda d, t, i=i: progress((i + d / t) / len(x)))
        try:
            cert = certify(model, x[i], spec.sigma, spec.n0, spec.n, spec.alpha, progress=step, should_stop=should_stop)
        except Stopped:
            return None
        item = {"position": i, "index": int(subset.indices[i]), **subset.image_name(i), "label": int(y[i])}
        item.update(cert.to_dict())
        done[i] = item
        if folder is not None:
            _append(folder, item)
        log(f"image {item['index']}: {_verdict(cert, int(y[i]))} (p_A >= {cert.p_lower:.4f}, {cert.seconds:.1f} s)")
    return done


def _verdict(cert: Certificate, label: int) -> str:
    if cert.prediction == ABSTAIN:
        return "abstain"
    return f"class {cert.prediction}, radius {cert.radius:.3f}, {'correct' if cert.prediction == label else 'wrong'}"


def certificates_of(items: list[dict]) -> list[Certificate]:
    keys = {f.name for f in fields(Certificate)}
    return [Certificate(**{k: v for k, v in item.items() if k in keys}) for item in items]


def build_report(spec: CertifySpec, model_name: str, items: list[dict], subset) -> dict:
    """The certificates and the certified accuracy at each radius, with its 95% Clopper-Pearson interval."""
    certs = certificates_of(items)
    labels = [item["label"] for item in items]
    n = len(items)
    accuracy = []
    for r, a in zip(spec.radii, certified_accuracy(certs, labels, spec.radii)):
        k = round(a * n)
        accuracy.append({"radius": r, "accuracy": a, "certified": k, "interval_95": list(clopper_pearson(k, n))})
    return {
        "model": model_name,
        **{k: getattr(spec, k) for k in ("dataset", "split", "sigma", "n0", "n", "alpha", "seed")},
        "images_n": n,
        "subset": {k: v for k, v in subset.to_dict().items() if k != "files"},
        "protocol": f"randomized smoothing (Cohen et al. 2019), sigma {spec.sigma}, n0 {spec.n0}, n {spec.n}, "
        f"alpha {spec.alpha}; {subset.describe()}",
        "images": items,
        "certified_accuracy": accuracy,
        "abstained": sum(c.prediction == ABSTAIN for c in certs),
        "seconds": round(sum(c.seconds for c in certs), 1),
    }


def load_report(job_id: str) -> dict | None:
    """A finished certification's report (None when it has none yet)."""
    path = run_dir(job_id) / "report.json"
    if not path.is_file():
        return None
    return loads_limited(path.read_text(), "report.json", 256 * 1024**2)


# ------------------------------------------------------------------------------------------ the kind
@register_kind
class CertifyJob(JobKind):
    """Certified L2 radii of many images: its spec is a :class:`CertifySpec` as a dict."""

    name = KIND
    label = "certification"
    stopped = "cancelled; resume certifies the images not finished yet"
    config_error = CertifyConfigError

    def validate(self, spec: dict) -> dict:
        return check_spec(CertifySpec.from_dict(spec)).to_dict()

    def describe(self, spec: dict) -> dict:
        title = f"certify {spec['model']}: sigma {spec['sigma']}, {spec['images'] or 'all'} image(s), n {spec['n']:,}"
        return {"title": title, "model": spec["model"], "sigma": spec["sigma"]}

    def execute(self, job: RunRecord, progress, should_stop, log):
        from .zoo import load_model

        spec = CertifySpec.from_dict(job.config)
        model = load_model(spec.model, job.device)
        x, y, subset = images(spec)
        if tuple(x.shape[1:]) != tuple(model.input_size):
            raise CertifyConfigError(
                f"{spec.dataset} images are {tuple(x.shape[1:])}; the model expects {model.input_size}"
            )
        log(f"certifying {subset.describe()} at sigma {spec.sigma} (n0 {spec.n0}, n {spec.n}, alpha {spec.alpha})")
        folder = run_dir(job.id)
        done = certify_images(spec, model, x, y, subset, folder, progress, should_stop, log)
        if done is None:
            return None
        report = build_report(spec, getattr(model, "zoo_name", spec.model), [done[i] for i in range(len(x))], subset)
        atomic_write_bytes(folder / "report.json", json.dumps(report, indent=1).encode())
        metrics = {f"certified@{a['radius']:g}": a["accuracy"] for a in report["certified_accuracy"]}
        return {"metrics": {**metrics, "images": len(x), "abstained": report["abstained"]}}


def submit(spec: CertifySpec, store: RunStore | None = None) -> RunRecord:
    """Check ``spec``, queue it and launch its worker (``python -m advlens.jobs ID``)."""
    return api.submit(CertifyJob(), spec.to_dict(), store, spawn=spawn_worker)


def resume(job_id: str, store: RunStore | None = None) -> RunRecord:
    """Queue a cancelled or failed certification again; it certifies the images not finished yet."""
    return api.resume(job_id, store, spawn=spawn_worker)


def execute(job_id: str, store: RunStore | None = None, echo: bool = True) -> RunRecord:
    """Be the worker of a certification: the one worker loop (:func:`advlens.jobs.api.execute`)."""
    return api.execute(job_id, store, echo=echo, kind=CertifyJob())
