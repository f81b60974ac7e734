"""Universal perturbations and patches as background jobs: a run kind (``perturbation``) of the run store.

A :class:`PerturbationSpec` (the method, its model, the training images, the held-out images, the target,
the method's parameters and the name to save it under) is checked before anything is queued; the job is
the ``perturbation`` kind of :mod:`advlens.jobs` (:class:`PerturbationJob`), so it shares the queue per
device, the cancel flag, dead-worker reaping and the one worker loop with every other job; its worker is
``python -m advlens.jobs ID`` (or ``python -m advlens universal|patch --run-id ID``).
The job trains the perturbation on the training images (:mod:`advlens.attacks.universal`,
:mod:`advlens.attacks.patch`), measures its fooling rate on the held-out images
(:mod:`advlens.perturbations.measure`) and saves it (:mod:`advlens.perturbations.saved`). Both sets of
images follow the one subset rule (:mod:`advlens.data.subset`); by default the held-out images are the
next window of the same split's order, or another split/dataset when given. The training loop saves its
state every few seconds in the job's folder (:mod:`advlens.perturbations.state`), so a cancelled, failed
or killed job continues from its last saved step when resumed, with the result the uninterrupted run gives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..data.subset import SUBSET_SEED, load_subset
from ..jobs import api
from ..jobs.kinds import JobKind, register_kind
from ..jobs.spec import JobSpec
from ..jobs.store import RunRecord, RunStore, run_dir
from ..jobs.worker import spawn_worker
from . import saved
from .state import clear_state, read_state, write_state

KIND = "perturbation"
MAX_IMAGES = 60_000


class PerturbationConfigError(ValueError):
    """A bad setting of a perturbation job; the message says what to change."""


def method_class(method: str):
    from ..attacks.patch import AdversarialPatch
    from ..attacks.universal import UniversalPerturbation

    classes = {"universal": UniversalPerturbation, "patch": AdversarialPatch}
    if method not in classes:
        raise PerturbationConfigError(f"unknown method {method!r}; one of {', '.join(classes)}")
    return classes[method]


@dataclass
class PerturbationSpec(JobSpec):
    what = "perturbation job"
    error = PerturbationConfigError
    lenient = True  # a version-1 row's objective/arch copies

    method: str  # "universal" or "patch"
    model: str
    dataset: str
    name: str  # saved under this name
    split: str = "train"
    root: str | None = None
    n: int = 1000  # training images, by the subset rule (0: all from offset on)
    offset: int = 0
    subset_seed: int = SUBSET_SEED
    heldout_dataset: str | None = None  # None: the same dataset
    heldout_split: str | None = None  # None: the same split (then the next window: offset + n)
    heldout_root: str | None = None
    heldout_n: int = 500  # 0: all from the held-out offset on
    heldout_offset: int | None = None  # None: right after the training window when the split is the same
    target: int | None = None
    params: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    replace: bool = False

    def heldout(self) -> tuple[str, str, str | None, int]:
        """(dataset, split, root, offset) of the held-out images."""
        dataset = self.heldout_dataset or self.dataset
        split = self.heldout_split or self.split
        root = self.heldout_root if self.heldout_dataset else self.root
        same = dataset == self.dataset and split == self.split
        offset = self.heldout_offset if self.heldout_offset is not None else (self.offset + self.n if same else 0)
        return dataset, split, root, offset

    def row(self) -> dict:
        """The spec stored in the job's row."""
        return self.to_dict()


def check_spec(spec: PerturbationSpec, store_check: bool = True) -> PerturbationSpec:
    """Everything that can be checked before running: method, params, model, datasets, target, name."""
    from ..data.catalog import DATASETS
    from ..zoo import get_entry

    cls = method_class(spec.method)
    from ..attacks.base import AttackConfigError

    try:
        spec.params = cls.validate_params(dict(spec.params))
    except AttackConfigError as exc:
        raise PerturbationConfigError(str(exc)) from None
    saved.check_name(spec.name)
    if store_check and not spec.replace:
        try:
            saved.load(spec.name)
            raise PerturbationConfigError(f"a perturbation named {spec.name} exists; choose another name (or replace)")
        except saved.PerturbationError:
            pass
    try:
        entry = get_entry(spec.model)
    except KeyError as exc:
        raise PerturbationConfigError(exc.args[0]) from None
    for name in (spec.dataset, spec.heldout()[0]):
        if name not in DATASETS:
            raise PerturbationConfigError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
        if problem := entry.size_problem(name):
            raise PerturbationConfigError(problem)
    for what, v in (("n", spec.n), ("heldout_n", spec.heldout_n), ("offset", spec.offset)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > MAX_IMAGES:
            raise PerturbationConfigError(f"{what} must be a whole number from 0 to {MAX_IMAGES:,}, not {v!r}")
    if spec.target is not None:
        k = len(entry.class_names) if getattr(entry, "class_names", None) else None
        if isinstance(spec.target, bool) or not isinstance(spec.target, int) or spec.target < 0:
            raise PerturbationConfigError(f"the target must be a class index, not {spec.target!r}")
        if k is not None and spec.target >= k:
            raise PerturbationConfigError(f"target class {spec.target} is out of range: {spec.model} has {k} classes")
    return spec


@register_kind
class PerturbationJob(JobKind):
    """A universal perturbation or a patch: its spec is a :class:`PerturbationSpec` as a dict."""

    name = KIND
    label = "perturbation"
    stopped = "cancelled; resume continues from the last saved step"
    config_error = PerturbationConfigError

    def validate(self, spec: dict) -> dict:
        return check_spec(PerturbationSpec.from_dict(spec)).to_dict()

    def describe(self, spec: dict) -> dict:
        title = f"{spec['method']}: {spec['model']} → {spec['name']}"
        return {"title": title, "method": spec["method"], "model": spec["model"]}

    def execute(self, job: RunRecord, progress, should_stop, log):
        spec = PerturbationSpec.from_dict(job.config)
        log(f"{spec.method} for {spec.model} on {spec.dataset} ({spec.n} images), saved as {spec.name}")
        meta = run_spec(spec, progress, should_stop, log, device=job.device, state_dir=run_dir(job.id))
        if meta is None:
            return None
        held = meta["heldout"]
        metrics = {"heldout_rate": held["rate"], "heldout_n": held["n"], "interval": held["interval_95"]}
        return {"metrics": metrics, "final_path": str(saved.user_dir() / f"{spec.name}.safetensors")}


def submit(spec: PerturbationSpec, store: RunStore | None = None) -> RunRecord:
    """Check ``spec``, queue it and launch its worker. Returns the run's record."""
    rec = api.submit(PerturbationJob(), spec.to_dict(), store, spawn=spawn_worker)
    spec.device = rec.device
    return rec


def resume(run_id: str, store: RunStore | None = None) -> RunRecord:
    """Queue a cancelled or failed job again; it continues from its last saved state."""
    return api.resume(run_id, store, spawn=spawn_worker)


def list_jobs(store: RunStore | None = None, limit: int = 50) -> list[RunRecord]:
    return api.list_jobs(KIND, limit=limit, store=store)


# ------------------------------------------------------------------------------------------ running
def load_images(dataset: str, split: str, root: str | None, n: int, offset: int, seed: int):
    return load_subset(dataset, split, root, n, offset, None, seed, error=PerturbationConfigError)


def run_spec(
    spec: PerturbationSpec, progress=None, should_stop=None, log=print, device=None, state_dir=None
) -> dict | None:
    """Train, measure and save ``spec``'s perturbation. Returns its metadata (None when stopped).
    With ``state_dir``, the training loop's state is saved there and a run continues from it."""
    from ..zoo import load_model
    from .measure import fooling_rate

    check_spec(spec, store_check=False)
    model = load_model(spec.model, device)
    x, y, train = training_images(spec, log)
    xh, yh, held = heldout_images(spec, train, log)
    trained = train_perturbation(spec, model, x, y, progress, should_stop, state_dir, log)
    if trained is None:
        return None
    tensor, attack, seconds = trained
    meta = describe_perturbation(spec, model, attack, train, len(x), seconds)
    if spec.method == "patch":
        side = tensor.shape[-1]
        meta["area_covered"] = side * side / (x.shape[-2] * x.shape[-1])
    result = fooling_rate(model, spec.method, tensor.cpu(), meta, xh, yh)
    meta["heldout"] = heldout_record(result, held)
    log(
        f"held-out: {result['rate'] * 100:.1f}% [{result['interval_95'][0] * 100:.1f}, "
        f"{result['interval_95'][1] * 100:.1f}] of n = {result['n']} ({result['measure']})"
    )
    saved.save(spec.name, spec.method, tensor.cpu(), meta, replace=spec.replace)
    log(f"saved as {spec.name} in {saved.user_dir()}")
    if state_dir is not None:
        clear_state(state_dir)
    return meta


def training_images(spec: PerturbationSpec, log):
    """The images the perturbation is trained on (a targeted one skips the target's own images)."""
    x, y, train = load_images(spec.dataset, spec.split, spec.root, spec.n, spec.offset, spec.subset_seed)
    log(f"training {train.describe()}")
    if spec.target is not None:
        keep = y != spec.target  # a targeted attack has nothing to do on the target's own images
        x, y = x[keep], y[keep]
        if len(x) == 0:
            raise PerturbationConfigError("every training image is of the target class")
    return x, y, train


def heldout_images(spec: PerturbationSpec, train, log):
    """The held-out images its fooling rate is measured on; they must not overlap the training ones."""
    h_ds, h_split, h_root, h_offset = spec.heldout()
    xh, yh, held = load_images(h_ds, h_split, h_root, spec.heldout_n, h_offset, spec.subset_seed)
    log(f"held-out {held.describe()}")
    overlap = (
        h_ds == spec.dataset
        and h_split == spec.split
        and bool(set(held.indices.tolist()) & set(train.indices.tolist()))
    )
    if overlap:
        raise PerturbationConfigError("the held-out images overlap the training images; give another window")
    return xh, yh, held


def train_perturbation(spec: PerturbationSpec, model, x, y, progress, should_stop, state_dir=None, log=print):
    """Run the method; (its tensor, the attack, seconds), or None when stopped. With ``state_dir`` the
    loop continues from the state saved there and saves its own as it goes."""
    cls = method_class(spec.method)
    torch.manual_seed(spec.seed)
    attack = cls(
        model,
        progress=(lambda s, t: progress(0.95 * s / t)) if progress else None,
        should_stop=should_stop,
        **spec.params,
    )
    if state_dir is not None:
        key = {k: v for k, v in spec.to_dict().items() if k not in ("device", "replace")}
        attack.resume_state = read_state(state_dir, key, log)
        attack.save_state = lambda state: write_state(state_dir, key, state)
    t0 = time.time()
    target = None if spec.target is None else torch.full_like(y, spec.target)
    attack(x, y, target)
    if attack.stopped:
        return None
    tensor = attack.delta if spec.method == "universal" else attack.patch
    return tensor, attack, time.time() - t0


def describe_perturbation(spec: PerturbationSpec, model, attack, train, used: int, seconds: float) -> dict:
    """The saved perturbation's metadata: its method, model, classes, images and training history."""
    cls = method_class(spec.method)
    names = model.class_names
    return {
        "model": spec.model,
        "method": cls.title,
        "paper": cls.paper,
        "params": spec.params,
        "target": spec.target,
        "target_name": names[spec.target] if spec.target is not None else None,
        "class_names": list(names),
        "input_size": list(model.input_size),
        "train": {k: v for k, v in train.to_dict().items() if k != "files"},
        "train_images_used": used,
        "history": [round(v, 4) for v in attack.history],
        "seconds": round(seconds, 1),
        "seed": spec.seed,
        "job": spec.to_dict(),
    }


def heldout_record(result: dict, held) -> dict:
    """The fooling rate on the held-out images with its protocol and the indices it fooled."""
    per_image = result.pop("per_image")
    return {
        **result,
        "subset": {k: v for k, v in held.to_dict().items() if k != "files"},
        "protocol": f"{result['measure']}; {held.describe()}",
        "fooled_indices": [int(i) for i, hit in zip(held.indices.tolist(), per_image) if hit],
    }


def execute(run_id: str, store: RunStore | None = None, echo: bool = True) -> RunRecord:
    """The worker of a perturbation job: the one worker loop (:func:`advlens.jobs.api.execute`)."""
    return api.execute(run_id, store, echo=echo, kind=PerturbationJob())
