"""Training data: the splits a run uses, and the fixed batches it evaluates on.

- ``train``: the dataset's training split (or a seeded random subset of ``limit_train`` images),
  minus the validation images;
- ``val``: ``val_size`` images drawn (with the run's seed) from the training split and never
  trained on; when ``val_size`` is 0 there is none and held-out evaluation uses the test split;
- ``heldout``: a fixed batch of ``eval_size`` validation (or test) images, the same at every
  evaluation, for the clean and robust accuracy curves;
- ``guard``: a fixed batch of ``eval_size`` *training* images, for checks of the training fit
  such as Fast-AT's catastrophic-overfitting guard;
- ``test``: the test split, for the final clean accuracy.

Image folders without a ``test`` subfolder have no test split: the validation split stands in.
Images stay uint8 on the training device and become float per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import DataError, ImageDataset, load_dataset
from .config import ConfigError, TrainConfig


@dataclass
class TrainingData:
    train: ImageDataset
    val: ImageDataset | None
    test: ImageDataset | None
    heldout: tuple[torch.Tensor, torch.Tensor]
    guard: tuple[torch.Tensor, torch.Tensor]
    heldout_source: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.train.shape

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names


def _load(cfg: TrainConfig, split: str) -> ImageDataset | None:
    root = cfg.data_root
    if cfg.dataset == "folder":
        base = Path(root).expanduser()
        has_splits = (base / "train").is_dir() or (base / "test").is_dir()
        if not has_splits:
            return load_dataset("folder", split=None, root=base) if split == "train" else None
        if not (base / split).is_dir():
            return None
    return load_dataset(cfg.dataset, split=split, root=root, download=cfg.download)


def _fixed_batch(ds: ImageDataset, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[: min(size, len(ds))].sort().values
    return ds.pixels[idx], ds.labels[idx]


def prepare_data(cfg: TrainConfig) -> TrainingData:
    """Load and split the data of ``cfg``. Raises :class:`ConfigError` for unusable data."""
    try:
        full = _load(cfg, "train")
        test = _load(cfg, "test")
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    if full is None or len(full) == 0:
        raise ConfigError(f"{cfg.dataset}: the training split is empty.")
    if cfg.limit_train and cfg.limit_train < len(full):
        # a seeded random subset: image folders are sorted by class, so the first N would miss classes
        g = torch.Generator().manual_seed(cfg.seed + 3)
        full = full.subset(torch.randperm(len(full), generator=g)[: cfg.limit_train].sort().values)
    if test is not None and tuple(test.class_names) != tuple(full.class_names):
        raise ConfigError(f"{cfg.dataset}: the train and test splits have different classes.")
    val = None
    train = full
    if cfg.val_size:
        if cfg.val_size >= len(full):
            raise ConfigError(f"val_size {cfg.val_size} leaves no training images ({len(full)} in all).")
        g = torch.Generator().manual_seed(cfg.seed)
        perm = torch.randperm(len(full), generator=g)
        val = full.subset(perm[: cfg.val_size].sort().values)
        val.split = "val"
        train = full.subset(perm[cfg.val_size :].sort().values)
    held_from = val if val is not None else test
    source = "validation split" if val is not None else "test split"
    if held_from is None:
        held_from, source = train, "training split (no test or validation images)"
    return TrainingData(
        train=train,
        val=val,
        test=test if test is not None else val,
        heldout=_fixed_batch(held_from, cfg.eval_size or 1, cfg.seed + 1),
        guard=_fixed_batch(train, cfg.eval_size or 1, cfg.seed + 2),
        heldout_source=source,
    )
