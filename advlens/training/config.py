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
        if not isinstance(d, dict):
            raise ConfigError("a training configuration must be a JSON object.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown configuration key(s): {', '.join(unknown)}. Known keys: {', '.join(sorted(known))}."
            )
        kwargs = dict(d)
        if "step_milestones" in kwargs:
            kwargs["step_milestones"] = tuple(float(v) for v in kwargs["step_milestones"])
        try:
            cfg = cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"bad configuration: {exc}") from None
        cfg._coerce()
        return cfg

    @classmethod
    def from_json_file(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror or exc}.") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
        return cls.from_dict(data)

    def _coerce(self) -> None:
        """Turn JSON numbers/strings into the declared types, with a clear error when impossible."""
        for f in fields(self):
            value = getattr(self, f.name)
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            try:
                if kind == "int":
                    if isinstance(value, float) and not value.is_integer():
                        raise ValueError
                    setattr(self, f.name, int(value))
                elif kind == "float":
                    setattr(self, f.name, float(value))
                elif kind == "bool":
                    if not isinstance(value, bool):
                        raise ValueError
                elif kind == "str":
                    setattr(self, f.name, str(value))
            except (TypeError, ValueError):
                raise ConfigError(f"{f.name} must be of type {kind}, not {value!r}.") from None
        if self.data_root is not None:
            self.data_root = str(self.data_root).strip() or None
        if not isinstance(self.objective_params, dict):
            raise ConfigError("objective_params must be a JSON object of hyperparameters.")

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
        trainable = ", ".join(n for n in DATASETS if n != "imagenet_samples")
        raise ConfigError(f"unknown dataset {name!r}; trainable datasets: {trainable}.")
    if name == "imagenet_samples":
        raise ConfigError(
            "imagenet_samples is a handful of photos without a training split; "
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
        errors.append("efficientnet_lite0 is the pretrained ImageNet model; train small_cnn or preact_resnet18.")
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
