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
from dataclasses import asdict
from pathlib import Path

from ..params import PIXEL, Param, ParamError, check_all, declared, json_value
from ..safe_json import JSONLimitError, loads_limited
from .errors import ConfigError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "cyclic")
DEVICES = ("auto", "cpu", "cuda")


BIG = 10**9  # "every N steps" and step limits: any count a run can reach

# The one declaration of a training run: the dataclass fields, validate(), the CLI flags of
# `python -m advlens train` (advlens.cli.train), the Training page's form (dashboard.training) and
# the recipe saved with the model (advlens.training.loop) all come from it. Groups name the form's
# sections; "recipe" marks what the checkpoint's recipe records.
# fmt: off
FIELDS: tuple[Param, ...] = (
    Param("objective", str, "standard", help="training objective (see `python -m advlens objectives`)",
          label="Objective", group="top", tags=("recipe",)),
    Param("objective_params", dict, {}, help="the objective's hyperparameters, e.g. beta=6 for TRADES",
          label="Hyperparameters", group="objective", key="hp", flags=("--param",)),
    Param("dataset", str, "digits", help="digits, mnist, fashion_mnist, cifar10 or folder",
          label="Dataset", group="top", tags=("recipe",)),
    Param("data_root", str, None, optional=True, label="Local folder with the dataset", group="data", key="root",
          help="MNIST/Fashion-MNIST: the *-ubyte.gz files; CIFAR-10: cifar-10-python.tar.gz; folder: "
          "root/<class>/<images> or root/{train,test}/<class>/<images>. Blank: the download cache.",
          tags=("recipe",)),
    Param("download", bool, False, help="download the dataset when it is not cached",
          label="Download when not cached", group="data"),
    Param("arch", str, "small_cnn", help="small_cnn, resnet20 or preact_resnet18", label="Model", group="model"),
    Param("arch_kwargs", dict, {}, label="Model options", group="init", flags=("--arch-option",),
          help="the architecture's options, e.g. hidden=512 for small_cnn"),
    Param("epochs", int, 5, 1, 1000, help="epochs", label="Epochs", group="model", tags=("recipe",)),
    Param("batch_size", int, 64, 1, 4096, help="global batch size (all processes together)", label="Batch size",
          group="model", key="batch", tags=("recipe",)),
    Param("optimizer", str, "adam", choices=OPTIMIZERS, help="sgd or adam", label="Optimiser", group="optimiser",
          key="opt", tags=("recipe",)),
    Param("lr", float, 1e-3, 0.0, min_open=True, help="(peak) learning rate", label="Learning rate (peak)",
          group="optimiser", tags=("recipe",)),
    Param("momentum", float, 0.9, 0.0, 1.0, help="SGD momentum (one-cycle: the peak momentum, Adam's beta1)",
          label="Momentum", group="more", tags=("recipe",)),
    Param("weight_decay", float, 0.0, 0.0, help="weight decay", label="Weight decay", group="optimiser", key="wd",
          tags=("recipe",)),
    Param("schedule", str, "onecycle", choices=SCHEDULES, help="constant, step, cosine, onecycle or cyclic",
          label="Schedule", group="optimiser", key="sched", tags=("recipe",)),
    Param("step_milestones", tuple, (0.5, 0.75), help='the "step" schedule: fractions of training where '
          "lr *= step_gamma, e.g. 0.5,0.75", label="Step milestones", group="more"),
    Param("step_gamma", float, 0.1, 0.0, 1.0, min_open=True, help='the "step" schedule\'s decay factor',
          label="Step decay factor", group="more"),
    Param("eps", float, 0.3, 0.0, 1.0, PIXEL, "L-inf budget of the training adversary and of the "
          "robust-accuracy curve: 8/255 or 0.0314 (0.3 for MNIST)", group="adversary", tags=("recipe",)),
    Param("eps_warmup", float, 0.0, 0.0, 0.99, help="ramp the training eps linearly from 0 over this part",
          label="eps warm-up (fraction of training)", group="adversary", key="warm", tags=("recipe",)),
    Param("crop_padding", int, 2, 0, 16, help="random crop with this much zero padding, in pixels (0: none)",
          label="Random crop padding (px)", group="adversary", key="crop"),
    Param("flip", bool, False, help="random horizontal flips (off for digits and MNIST, on for CIFAR-10)",
          label="Random horizontal flips", group="adversary"),
    Param("val_size", int, 256, 0, 100_000, help="images held out of the training split (0: evaluate on the "
          "test split)", label="Validation images", group="evaluation", key="val", tags=("recipe",)),
    Param("eval_size", int, 256, 0, 10_000, help="size of the fixed held-out batch for clean and robust "
          "accuracy during training", label="Held-out batch", group="evaluation"),
    Param("eval_steps", int, 10, 0, 1000, help="PGD steps for the robust accuracy during training (0: none)",
          label="PGD steps (robust curve)", group="evaluation"),
    Param("eval_every", int, 0, 0, BIG, help="also evaluate every N steps (0: once per epoch)",
          label="Evaluate every N steps (0: per epoch)", group="more"),
    Param("test_eval", bool, True, help="clean accuracy on the whole test split at the end",
          label="Test accuracy at the end", group="more"),
    Param("seed", int, 0, 0, 2**31 - 1, help="random seed", label="Seed", group="model", tags=("recipe",)),
    Param("device", str, "auto", help="auto, cpu, cuda or cuda:N", label="Device", group="run"),
    Param("amp", bool, True, help="mixed precision on CUDA (a no-op on the CPU)", label="Mixed precision (CUDA)",
          group="more"),
    Param("channels_last", bool, True, help="channels-last memory format on CUDA (a no-op on the CPU)",
          label="Channels-last (CUDA)", group="more"),
    Param("max_steps", int, 0, 0, BIG, help="stop after N optimiser steps in all (0: run every epoch)",
          label="Max steps (0: all)", group="evaluation"),
    Param("checkpoint_every", int, 0, 0, BIG, help="also checkpoint every N steps (0: at the end of each epoch)",
          label="Checkpoint every N steps (0: per epoch)", group="more"),
    Param("log_every", int, 10, 1, BIG, help="log training scalars every N steps", label="Log every N steps",
          group="more"),
    Param("limit_train", int, 0, 0, 10**8, help="use a seeded random subset of N training images (0: all); for "
          "quick tries and tests", label="Train images (0: all)", group="evaluation", key="limit"),
    Param("init_from", str, "", help="start from these weights: a zoo model name or a checkpoint path "
          "(blank: a fresh initialisation)", label="Start from", group="init", key="init", tags=("recipe",)),
    Param("name", str, "", help="a name for the run", label="Run name (optional)", group="run"),
)
# fmt: on
FIELD = {prm.name: prm for prm in FIELDS}


@declared(FIELDS)
class TrainConfig:
    """Everything a training run needs (the fields are :data:`FIELDS`). Defaults: a quick standard run
    of small_cnn on digits."""

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
        known = FIELD
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
                    kwargs[key] = json_value(known[key], value)
                except ParamError as exc:
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
        """'cpu' or 'cuda:N': the device key the scheduler queues on (advlens.device.queue_device)."""
        from ..device import queue_device

        try:
            return queue_device(self.device)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


MAX_CONFIG_BYTES = 1_000_000
# Training-split sizes of the datasets whose size is fixed (an image folder's is known only when read).
TRAIN_SPLIT_SIZES = {"digits": 1437, "mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000}


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


def field_problems(cfg: TrainConfig) -> list[str]:
    """What :data:`FIELDS` refuses in ``cfg``: ``eps must be >= 0.0, not -0.1.`` for a number out of
    its range, the descriptor's message otherwise (a wrong kind, a value not among the choices)."""
    problems = []
    for prm, message in zip(FIELDS, check_all(FIELDS, cfg, each=True)):
        if message:
            problems.append(_out_of_range(prm, getattr(cfg, prm.name)) or message)
    return problems


def _out_of_range(prm: Param, value) -> str:
    if not prm.is_number or isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    if prm.min is not None and (value < prm.min or (prm.min_open and value == prm.min)):
        return f"{prm.name} must be {'>' if prm.min_open else '>='} {prm.min}, not {value}."
    if prm.max is not None and value > prm.max:
        return f"{prm.name} must be <= {prm.max}, not {value}."
    return ""


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
    errors.extend(field_problems(cfg))  # every field's kind, range and choices, from the declaration
    if isinstance(cfg.step_milestones, (list, tuple)) and any(
        not isinstance(m, (int, float)) or not 0.0 < m < 1.0 for m in cfg.step_milestones
    ):
        errors.append("step_milestones must be fractions of training strictly between 0 and 1.")
    dev = cfg.device.strip().lower() if isinstance(cfg.device, str) else ""
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
