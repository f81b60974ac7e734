"""The training configuration: one JSON-serialisable dataclass shared by the UI, the CLI and the worker.

``TrainConfig.from_dict`` accepts what ``to_dict`` produced (the run folder's ``config.json``), and
:func:`validate` checks everything that can be checked before any work starts: the objective and
its hyperparameters, eps >= 0, the architecture, the optimiser and schedule, and whether the
dataset can be found. Every problem becomes a :class:`ConfigError` whose message tells a person
what to change.

Units: images are in [0, 1], so ``eps`` is in pixel units over 1 (0.3 for MNIST, 8/255 for
CIFAR-10). The page shows eps in /255 units for colour data.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..safe_json import JSONLimitError, loads_limited
from .errors import ConfigError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "cyclic")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Everything a training run needs. Defaults: a quick standard run of small_cnn on digits."""

    objective: str = "standard"
    objective_params: dict = field(default_factory=dict)
    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    arch: str = "small_cnn"
    arch_kwargs: dict = field(default_factory=dict)  # the architecture's options, e.g. {"hidden": 512} for small_cnn
    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    step_milestones: tuple[float, ...] = (0.5, 0.75)  # "step": fractions of training where lr *= gamma
    step_gamma: float = 0.1
    eps: float = 0.3
    eps_warmup: float = 0.0  # ramp the training eps linearly from 0 over this fraction of the steps
    crop_padding: int = 2  # random crop with this much zero padding (a random shift <= crop_padding px)
    flip: bool = False  # random horizontal flips (off for digits and MNIST, on for CIFAR-10)
    val_size: int = 256  # images held out of the training split; 0 = none (evaluate on the test split)
    eval_size: int = 256  # the fixed held-out batch for clean/robust accuracy during training
    eval_steps: int = 10  # PGD steps for the robust accuracy on that batch
    eval_every: int = 0  # also evaluate every N steps (0: once per epoch)
    test_eval: bool = True  # clean accuracy on the whole test split at the end
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision on CUDA (a no-op on the CPU)
    channels_last: bool = True  # channels-last memory format on CUDA (a no-op on the CPU)
    max_steps: int = 0  # stop after this many optimiser steps in all (0: run every epoch)
    checkpoint_every: int = 0  # also checkpoint every N steps (0: at the end of each epoch only)
    log_every: int = 10  # write training scalars to the run store every N steps
    limit_train: int = 0  # use a seeded random subset of N training images (0: all); for quick tries and tests
    init_from: str = ""  # start from these weights (a zoo name or a checkpoint path; "": a fresh initialisation)
    name: str = ""

    # ----------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict:
        d = asdict(self)
        d["step_milestones"] = list(self.step_milestones)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A config from JSON-like data; every field's type is checked and every problem reported at once."""
        if not isinstance(d, dict):
            raise ConfigError("a training configuration must be a JSON object.")
        known = {f.name: f for f in fields(cls)}
        problems = []
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            problems.append(
                f"unknown configuration key(s): {', '.join(unknown)}. Known keys: {', '.join(sorted(known))}."
            )
        kwargs = {}
        for key, value in d.items():
            if key in known:
                try:
                    kwargs[key] = _field_value(key, _kind(known[key]), value)
                except ConfigError as exc:
                    problems.append(str(exc))
        if problems:
            raise ConfigError(problems[0] if len(problems) == 1 else "\n".join(f"- {p}" for p in problems))
        cfg = cls(**kwargs)
        if cfg.data_root is not None:
            cfg.data_root = cfg.data_root.strip() or None
        return cfg

    @classmethod
    def from_json_file(cls, path: str | Path) -> TrainConfig:
        from ..safe_files import UnsafeFileError, read_small_file

        path = Path(path)
        try:  # a regular file of at most MAX_CONFIG_BYTES: never /dev/zero, a pipe or a huge file
            text = read_small_file(path, MAX_CONFIG_BYTES, f"the configuration file {path}")
        except UnsafeFileError as exc:
            raise ConfigError(str(exc)) from None
        try:
            data = loads_limited(text, str(path), MAX_CONFIG_BYTES)
        except JSONLimitError as exc:
            raise ConfigError(str(exc)) from None
        return cls.from_dict(data)

    # ----------------------------------------------------------------------------------- derived
    def resolved_device(self) -> str:
        """'cpu' or 'cuda:N': the device key the scheduler queues on."""
        import torch

        from ..device import get_device

        want = self.device.strip().lower()
        if want == "auto":
            dev = get_device()
            return "cpu" if dev.type == "cpu" else f"cuda:{dev.index or 0}"
        if want == "cpu":
            return "cpu"
        if not torch.cuda.is_available():
            raise ConfigError(f"device {self.device!r} was asked for, but CUDA is not available here.")
        index = int(want.split(":", 1)[1]) if ":" in want else 0
        return f"cuda:{index}"


MAX_CONFIG_BYTES = 1_000_000
# Training-split sizes of the datasets whose size is fixed (an image folder's is known only when read).
TRAIN_SPLIT_SIZES = {"digits": 1437, "mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000}


def _kind(f) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _field_value(name: str, kind: str, value):
    """``value`` as field ``name`` of declared type ``kind`` holds it; :class:`ConfigError` otherwise.
    JSON booleans are not numbers here, and numbers are not text: ``"epochs": true`` is refused."""
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int" and is_num and float(value).is_integer():
        return int(value)
    if kind == "float" and is_num and math.isfinite(value):
        return float(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "str" and isinstance(value, str) and len(value) <= 10_000:
        return value
    if kind == "str | None" and (value is None or (isinstance(value, str) and len(value) <= 10_000)):
        return value
    if kind == "dict" and isinstance(value, dict):
        bad = [k for k, v in value.items() if not isinstance(k, str) or not _scalar(v)]
        if bad:
            raise ConfigError(f"{name} must map names to numbers, text or booleans; {bad[0]!r} does not.")
        return dict(value)
    if kind.startswith("tuple") and isinstance(value, (list, tuple)) and len(value) <= 100:
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            return tuple(float(v) for v in value)
        raise ConfigError(f"{name} must be a list of numbers, not {_shown(value)}.")
    what = {
        "int": "a whole number",
        "float": "a finite number",
        "bool": "true or false",
        "str": "text",
        "str | None": "text or null",
        "dict": "a JSON object",
    }.get(kind, "a list of numbers")
    if kind.startswith("tuple"):
        raise ConfigError(f"{name} must be a list of numbers, not {_shown(value)}.")
    raise ConfigError(f"{name} must be of type {kind} ({what}), not {_shown(value)}.")


def _scalar(v) -> bool:
    return v is None or isinstance(v, (str, bool)) or (isinstance(v, (int, float)) and math.isfinite(v))


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_number(
    errors: list[str], name: str, value: float, lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        errors.append(f"{name} must be a finite number, not {value!r}.")
        return
    if lo is not None and (value < lo or (lo_open and value == lo)):
        errors.append(f"{name} must be {'>' if lo_open else '>='} {lo}, not {value}.")
    if hi is not None and value > hi:
        errors.append(f"{name} must be <= {hi}, not {value}.")


def check_dataset_available(name: str, root: str | None, download: bool) -> None:
    """Raise :class:`ConfigError` when ``name`` cannot be loaded, without loading it."""
    from ..data import DATASETS
    from ..data.download import ensure_downloaded
    from ..data.folder import IMAGE_SUFFIXES
    from ..data.idx import FILES, find_idx_file

    if name not in DATASETS:
        trainable = ", ".join(n for n, d in DATASETS.items() if d.trainable)
        raise ConfigError(f"unknown dataset {name!r}; trainable datasets: {trainable}.")
    if not DATASETS[name].trainable:
        raise ConfigError(
            f"{name} is a handful of test images without a training split; "
            "pick digits, mnist, fashion_mnist, cifar10 or an image folder."
        )
    if name == "digits":
        return
    if name == "folder":
        if not root:
            raise ConfigError(
                "the 'folder' dataset needs a folder: root/<class>/<images> "
                "(or root/train/<class>/... and root/test/<class>/...)."
            )
        base = Path(root).expanduser()
        if not base.is_dir():
            raise ConfigError(f"the image folder {base} does not exist.")
        train = base / "train" if (base / "train").is_dir() else base
        classes = [p for p in train.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if not classes:
            raise ConfigError(f"{train} has no class subfolders; expected {train}/<class>/<image files>.")
        if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in classes[0].iterdir()):
            raise ConfigError(f"{classes[0]} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        return
    if root:
        base = Path(root).expanduser()
        if not base.exists():
            raise ConfigError(f"{name}: the folder {base} does not exist.")
        if name in ("mnist", "fashion_mnist"):
            missing = [s + ".gz" for pair in FILES.values() for s in pair if find_idx_file(base, s) is None]
            if missing:
                raise ConfigError(f"{name}: {', '.join(missing)} not found in {base}.")
        else:
            from ..data.cifar import ARCHIVE, FOLDER

            if not (
                (base / FOLDER).is_dir()
                or (base / ARCHIVE).is_file()
                or base.is_file()
                or (base / "data_batch_1").is_file()
            ):
                raise ConfigError(f"cifar10: neither {ARCHIVE} nor {FOLDER}/ found in {base}.")
        return
    if download:
        return
    from ..data import DataError

    try:
        ensure_downloaded(name, download=False)
    except DataError as exc:
        raise ConfigError(str(exc)) from None


def validate(cfg: TrainConfig, check_data: bool = True) -> None:
    """Check ``cfg`` before any work starts. Raises :class:`ConfigError` listing every problem."""
    from ..models import ARCHITECTURES
    from ..models.registry import arch_options_problem
    from .objectives import get_objective

    errors: list[str] = []
    try:
        objective_cls = get_objective(cfg.objective)
    except KeyError as exc:
        errors.append(str(exc.args[0]))
        objective_cls = None
    if objective_cls is not None:
        try:
            objective_cls.resolve_params(cfg.objective_params, cfg)
        except ValueError as exc:
            errors.append(str(exc))
    if cfg.arch not in ARCHITECTURES:
        errors.append(f"unknown architecture {cfg.arch!r}; known: {', '.join(ARCHITECTURES)}.")
    elif cfg.arch == "efficientnet_lite0":
        errors.append(
            "efficientnet_lite0 is the pretrained ImageNet model; train small_cnn, resnet20 or preact_resnet18."
        )
    elif cfg.arch_kwargs:
        problem = arch_options_problem(cfg.arch, cfg.arch_kwargs)
        if problem:
            errors.append(f"arch_kwargs: {problem}.")
    _check_number(errors, "eps", cfg.eps, 0.0, 1.0)
    _check_number(errors, "eps_warmup", cfg.eps_warmup, 0.0, 0.99)
    _check_number(errors, "lr", cfg.lr, 0.0, lo_open=True)
    _check_number(errors, "momentum", cfg.momentum, 0.0, 1.0)
    _check_number(errors, "weight_decay", cfg.weight_decay, 0.0)
    _check_number(errors, "step_gamma", cfg.step_gamma, 0.0, 1.0, lo_open=True)
    for name in ("epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            errors.append(f"{name} must be at least 1, not {getattr(cfg, name)}.")
    for name in (
        "crop_padding",
        "val_size",
        "eval_size",
        "eval_steps",
        "eval_every",
        "max_steps",
        "checkpoint_every",
        "limit_train",
    ):
        if getattr(cfg, name) < 0:
            errors.append(f"{name} must be >= 0, not {getattr(cfg, name)}.")
    if cfg.log_every < 1:
        errors.append(f"log_every must be at least 1, not {cfg.log_every}.")
    if cfg.optimizer not in OPTIMIZERS:
        errors.append(f"unknown optimizer {cfg.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}.")
    if cfg.schedule not in SCHEDULES:
        errors.append(f"unknown schedule {cfg.schedule!r}; choose one of: {', '.join(SCHEDULES)}.")
    if any(not 0.0 < m < 1.0 for m in cfg.step_milestones):
        errors.append("step_milestones must be fractions of training strictly between 0 and 1.")
    dev = cfg.device.strip().lower()
    if not (dev in DEVICES or (dev.startswith("cuda:") and dev[5:].isdigit())):
        errors.append(f"device must be auto, cpu, cuda or cuda:N, not {cfg.device!r}.")
    else:
        try:
            cfg.resolved_device()
        except ConfigError as exc:
            errors.append(str(exc))
    if check_data and not errors:
        try:
            check_dataset_available(cfg.dataset, cfg.data_root, cfg.download)
        except ConfigError as exc:
            errors.append(str(exc))
    elif check_data:
        from ..data import DATASETS

        if cfg.dataset not in DATASETS:
            errors.append(f"unknown dataset {cfg.dataset!r}; available: {', '.join(DATASETS)}.")
    size = TRAIN_SPLIT_SIZES.get(cfg.dataset)
    if size is not None and isinstance(cfg.val_size, int) and isinstance(cfg.limit_train, int):
        available = min(cfg.limit_train, size) if cfg.limit_train > 0 else size
        if cfg.val_size >= available:
            errors.append(
                f"val_size {cfg.val_size} leaves no training images: {cfg.dataset}'s training split has {size:,} "
                f"images{f' (limit_train {cfg.limit_train})' if cfg.limit_train > 0 else ''}."
            )
    if check_data and cfg.init_from:
        errors.extend(_init_from_errors(cfg))
    if errors:
        raise ConfigError(" ".join(errors) if len(errors) == 1 else "\n".join(f"- {e}" for e in errors))


def _init_from_errors(cfg: TrainConfig) -> list[str]:
    """``init_from`` must name a readable checkpoint of the run's architecture."""
    from .init_from import load_init

    try:
        init = load_init(cfg.init_from)
    except ConfigError as exc:
        return [str(exc)]
    if init.spec.arch != cfg.arch:
        return [f"init_from: {cfg.init_from} is a {init.spec.arch}; the run trains a {cfg.arch}."]
    return []


def recommended_for_dataset(dataset: str) -> dict:
    """Dataset-dependent defaults: eps, epochs, augmentation and optimiser (Madry 2018; Wong et al. 2020).

    Digits are 8x8 scans upsampled to 28x28: blurry, mostly mid-grey strokes, 1,181 training images
    after the validation split. At MNIST's eps 0.3 an adversary can erase most strokes, and PGD-AT
    stays at chance (measured: 20% clean after 3 epochs, 64% clean / 7% robust after 20 epochs of PGD-10
    with an eps warm-up). At eps 0.15 (PGD-10 step 0.0375, 15 epochs) it reaches 96.7% clean and
    52.2% PGD-40 accuracy on the 360 test digits, where the standard model has 0%: bench/RESULTS.md.
    """
    grey = {"crop_padding": 2, "flip": False, "arch": "small_cnn", "optimizer": "adam", "lr": 1e-3}
    if dataset == "digits":
        return {**grey, "eps": 0.15, "epochs": 15, "schedule": "onecycle"}
    if dataset in ("mnist", "fashion_mnist"):
        return {**grey, "eps": 0.3 if dataset == "mnist" else 0.1, "epochs": 3, "schedule": "onecycle"}
    return {
        "eps": 8 / 255,
        "epochs": 15,
        "crop_padding": 4,
        "flip": True,
        "arch": "preact_resnet18",
        "optimizer": "sgd",
        "lr": 0.2,
        "schedule": "cyclic",
        "weight_decay": 5e-4,
    }
