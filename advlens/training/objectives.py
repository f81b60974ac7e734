"""Training objectives: the base class, the hooks the trainer calls, and the registry.

An objective is one small class (one module in ``defenses/objectives/``) that says *what* to
minimise; the trainer (:mod:`advlens.training.loop`) does everything else. The class declares:

- ``name`` (the registry key, used in configs and the CLI), ``title``, ``formula`` (LaTeX for
  ``st.latex``) and ``source`` (paper and arXiv id);
- ``hyperparams``: :class:`advlens.params.Param` descriptors with defaults and help, and
  ``presets`` per data family ("mnist": 1-channel digits, "cifar": colour images) or per dataset
  name ("digits" overrides "mnist") for values
  the papers set per dataset (e.g. PGD steps and step size);
- ``loss(model, x, y, ctx) -> (loss, {name: float})``: the training loss of one batch and the
  scalars to log.

Extension points, for defenses that need more than a loss:

- :meth:`Objective.prepare_model` transforms the model before training (e.g. insert feature
  denoising blocks). A transform that changes the state-dict keys must also register an
  architecture that rebuilds the same module from the checkpoint metadata (``arch_kwargs``), so the
  trained checkpoint loads everywhere.
- :meth:`Objective.on_epoch_end` runs after every epoch with an :class:`EpochContext` and may
  stop training and restore the previous epoch's weights (Fast-AT's catastrophic-overfitting guard).
- ``extra_plots`` (plot title -> logged scalar keys) adds curves to the training page;
  :meth:`Objective.notes` adds text under the formula.

The registry is filled lazily: :func:`get_objective` and :func:`list_objectives` call
:func:`advlens.plugins.load_plugins` once, which loads the ``defenses`` plugin, whose modules call
:func:`register`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..budget import format_linf
from ..data.catalog import DATASETS
from ..params import PIXEL, Param, format_params
from ..plugins import load_plugins
from ..registry import Registry


class RunSettings(Protocol):
    """What an objective reads of the run's :class:`~advlens.training.config.TrainConfig`."""

    objective: str
    dataset: str
    eps: float


@dataclass
class StepContext:
    """What an objective may use in :meth:`Objective.loss`, besides the model and the batch.

    ``attack_model`` is the bare module (never the DistributedDataParallel wrapper): generate
    adversarial examples with it, and compute the training loss with the ``model`` argument, so
    that exactly one backward pass follows the DDP forward passes. ``eps`` is the training budget
    of this step: the configured eps, ramped up from 0 during ``eps_warmup``.
    """

    step: int
    epoch: int
    total_steps: int
    eps: float
    num_classes: int
    attack_model: nn.Module
    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext

    @property
    def progress(self) -> float:
        return self.step / max(1, self.total_steps)


@dataclass
class EpochContext:
    """What :meth:`Objective.on_epoch_end` gets: the bare model after the epoch, and helpers."""

    epoch: int
    model: nn.Module
    eps: float
    device: torch.device
    guard_batch: tuple[torch.Tensor, torch.Tensor]  # a fixed batch of *training* images
    robust_accuracy: Callable[[nn.Module, torch.Tensor, torch.Tensor, float, int], float]
    history: dict[str, list[float]] = field(default_factory=dict)  # values the objective kept per epoch
    log: Callable[[str], None] = print
    folder: Path | None = None  # the run's folder, for objectives that write extra files


@dataclass
class EpochVerdict:
    """Returned by :meth:`Objective.on_epoch_end`: scalars to log, and whether to stop."""

    metrics: dict[str, float] = field(default_factory=dict)
    stop: bool = False
    restore_previous: bool = False  # put back the weights from before this epoch
    message: str = ""


class Objective:
    """Base class of training objectives. Subclasses set the class attributes and ``loss``."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    source: ClassVar[str] = ""
    arxiv: ClassVar[str] = ""  # read from the end of ``source`` ("... arXiv 1706.06083") when not set
    uses_eps: ClassVar[bool] = True
    fine_tunes: ClassVar[bool] = False  # the method starts from a trained clean model (TrainConfig.init_from)
    hyperparams: ClassVar[tuple[Param, ...]] = ()
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    extra_plots: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("arxiv"):
            found = re.search(r"arXiv (\d{4}\.\d{4,5})\s*$", cls.source or "")
            cls.arxiv = found.group(1) if found else ""

    def __init__(self, params: dict | None, cfg: RunSettings):
        self.cfg = cfg
        self.params = self.resolve_params(params or {}, self.cfg)
        self.eps = float(self.cfg.eps)
        for key, value in self.params.items():
            setattr(self, key, value)

    # ---------------------------------------------------------------------- hyperparameters
    @classmethod
    def family(cls, dataset: str) -> str:
        info = DATASETS.get(dataset)
        return "mnist" if info is not None and info.input_size[0] == 1 else "cifar"

    @classmethod
    def defaults(cls, dataset: str = "digits") -> dict[str, Any]:
        """Each hyperparameter's default, with the dataset family's preset applied."""
        d = {h.name: h.default for h in cls.hyperparams}
        d.update(cls.presets.get(cls.family(dataset), {}))
        d.update(cls.presets.get(dataset, {}))  # a preset for one dataset overrides its family's
        return d

    @classmethod
    def resolve_params(cls, params: dict, cfg: RunSettings | None) -> dict[str, Any]:
        """Defaults overlaid with ``params``, validated. Unknown names raise ValueError."""
        known = {h.name: h for h in cls.hyperparams}
        unknown = sorted(set(params) - set(known))
        if unknown:
            takes = ", ".join(known) or "no hyperparameters"
            raise ValueError(f"{cls.name}: unknown hyperparameter(s) {', '.join(unknown)}; it takes {takes}.")
        merged = cls.defaults(cfg.dataset if cfg is not None else "digits")
        merged.update(params)
        return {k: known[k].parse(v, cls.name) for k, v in merged.items()}

    def describe(self) -> str:
        shown = format_params(self.hyperparams, self.params)
        eps = f"eps={format_linf(self.eps)}" if self.uses_eps else ""
        return f"{self.title} ({', '.join(s for s in (eps, shown) if s)})"

    def budget_record(self) -> dict | None:
        """What the checkpoint's recipe says of the training attack: ``{"norm": "Linf", "eps": ...}``
        for adversarial training, None for objectives without a budget. The zoo reads it from there."""
        if not self.uses_eps or not self.eps > 0:
            return None
        return {"norm": "Linf", "eps": float(self.eps)}

    notes: ClassVar[str] = ""  # Markdown shown under the formula on the training page

    # ---------------------------------------------------------------------------------- hooks
    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Transform the model before training (default: unchanged)."""
        return model

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        raise NotImplementedError

    def on_epoch_end(self, ctx: EpochContext) -> EpochVerdict | None:
        """Called after each epoch; default: nothing to add."""
        return None


# ------------------------------------------------------------- shared PGD hyperparameters
def pgd_params(steps: str = "steps", alpha: str = "alpha", what: str = "PGD") -> tuple[Param, Param]:
    """The inner PGD of adversarial training: its steps and step size (Madry et al.'s CIFAR defaults)."""
    return (
        Param(steps, int, 7, 1, 1000, help=f"{what} steps"),
        Param(alpha, float, 2 / 255, 0.0, 1.0, PIXEL, help=f"{what} step size"),
    )


def pgd_presets(steps: str = "steps", alpha: str = "alpha", cifar: tuple[int, float] = (7, 2 / 255)) -> dict:
    """The inner PGD per data family: PGD-10 at the digits eps 0.15 (step 2.5 * eps / steps, see
    ``recommended_for_dataset``), Madry's PGD-40 step 0.01 on MNIST, and ``cifar`` on colour images."""
    table = {"digits": (10, 0.0375), "mnist": (40, 0.01), "cifar": cifar}
    return {family: {steps: n, alpha: a} for family, (n, a) in table.items()}


# -------------------------------------------------------------------------------- helpers
def accuracy_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The fraction of correct predictions, as a 0-d tensor (no device sync)."""
    return (logits.detach().argmax(1) == y).float().mean()


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), y)


# ------------------------------------------------------------------------------- registry
_REGISTRY: Registry[type[Objective]] = Registry("objective")


def register(cls: type[Objective]) -> type[Objective]:
    """Class decorator: add an objective to the registry under ``cls.name``."""
    return _REGISTRY.add(cls)


def list_objectives() -> list[type[Objective]]:
    load_plugins()
    return list(_REGISTRY.values())


def get_objective(name: str) -> type[Objective]:
    load_plugins()
    return _REGISTRY.lookup(name)


@contextlib.contextmanager
def no_param_grads(model: nn.Module) -> Iterator[None]:
    """Temporarily stop tracking parameter gradients (cheaper input-gradient attacks)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
