"""The shared base of every attack: parameter descriptors, validation, eval mode, progress.

An attack is a small class in the style of torchattacks::

    attack = PGD(model, eps=8 / 255, steps=10)
    x_adv = attack(x, y)                 # untargeted: push x away from its class y
    x_adv = attack(x, y, target=t)       # targeted: pull x toward class t

``x`` is an NCHW float batch in [0, 1] (normalisation lives inside the model), ``y`` the true
labels. The result is a detached batch in [0, 1] on the device of ``x``. Attacks run the model
in eval mode (the previous mode of every submodule is restored afterwards) and take gradients
with ``torch.autograd.grad`` with respect to the input only, so nothing ever accumulates in the
model's parameters' ``.grad``.

Each class lists its parameters as :class:`advlens.params.Param` descriptors (``Attack.params()``),
so the dashboard and the CLI build their controls without knowing the attack. L-inf budgets are
floats in [0, 1] here; a param whose ``unit`` is :data:`PIXEL` is shown as ``8/255 (0.0314)``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from ..models.modes import eval_mode, model_device
from ..params import PIXEL, Param, ParamError
from .losses import is_success
from .trajectory import Rows, Trajectory

ProgressFn = Callable[[int, int], Any]
StopFn = Callable[[], bool]


class AttackConfigError(ValueError):
    """A bad attack parameter or input; the message says what to change."""


def check_images(model: nn.Module, x, device: torch.device) -> torch.Tensor:
    """``x`` as a float32 batch on ``device``, checked: 4-D, not empty, in [0, 1], the model's shape."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise AttackConfigError("the images must be a 4-D tensor (N, C, H, W)")
    if x.numel() == 0:
        raise AttackConfigError("the batch is empty")
    x = x.detach().to(device=device, dtype=torch.float32)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise AttackConfigError(f"pixel values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]")
    expected = getattr(model, "input_size", None)
    if expected is not None and tuple(x.shape[1:]) != tuple(expected):
        raise AttackConfigError(f"the model expects images of shape {tuple(expected)}, got {tuple(x.shape[1:])}")
    return x


class Attack:
    """Base class. Subclasses set the class attributes and implement :meth:`_perturb`.

    Keyword arguments besides the attack's own params:

    * ``record``: keep a :class:`Trajectory` (iterative attacks) in ``self.trajectory``;
    * ``record_images``: also keep the image at (up to ``max_frames``) steps;
    * ``progress(step, total)``: called once per iteration;
    * ``should_stop()``: polled once per iteration; when it returns true the attack stops early,
      returns its best result so far and sets ``self.stopped``.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    norm: ClassVar[str | None] = "Linf"  # the norm of the budget; None for minimal-norm attacks
    iterative: ClassVar[bool] = False
    uses_gradients: ClassVar[bool] = True
    PARAMS: ClassVar[tuple[Param, ...]] = ()
    # Settings that finish in seconds on a 2-core CPU for the slow attacks and still flip the
    # sample photos on EfficientNet-Lite0 (measured; see bench/RESULTS.md). Empty: no preset needed.
    CPU_PRESET: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        model: nn.Module,
        *,
        record: bool = False,
        record_images: bool = False,
        max_frames: int = 200,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        **params,
    ):
        self.model = model
        self.config = self.validate_params(params)
        for key, value in self.config.items():
            setattr(self, key, value)
        self.check_config()
        self.record = bool(record or record_images)
        self.record_images = bool(record_images)
        self.max_frames = int(max_frames)
        self.progress = progress
        self.should_stop = should_stop
        self.trajectory: Trajectory | None = None
        self.stopped = False

    # ----- parameter description and validation -------------------------------------------
    @classmethod
    def params(cls) -> tuple[Param, ...]:
        return cls.PARAMS

    @classmethod
    def param(cls, name: str) -> Param:
        for p in cls.PARAMS:
            if p.name == name:
                return p
        raise AttackConfigError(
            f"{cls.name} has no parameter {name!r}; it takes: {', '.join(p.name for p in cls.PARAMS) or 'none'}"
        )

    @classmethod
    def defaults(cls) -> dict:
        return {p.name: p.default for p in cls.PARAMS}

    @classmethod
    def validate_params(cls, params: dict) -> dict:
        """Defaults overlaid with ``params``, each validated; unknown names are an error."""
        for key in params:
            cls.param(key)
        try:
            return {p.name: p.validate(params.get(p.name, p.default)) for p in cls.PARAMS}
        except ParamError as exc:
            raise AttackConfigError(str(exc)) from None

    def check_config(self) -> None:
        """Checks that involve several params or the model; subclasses extend it."""

    # ----- running ---------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, y: torch.Tensor, target=None) -> torch.Tensor:
        device = model_device(self.model)
        x, y, target = self.check_inputs(x, y, target, device)
        self.stopped = False
        self.trajectory = (
            Trajectory(targeted=target is not None, keep_images=self.record_images)
            if self.record and self.iterative
            else None
        )
        if self.norm is not None and getattr(self, "eps", None) == 0:
            return x.clone()  # a zero budget allows no change: nothing to compute
        grad_mode = torch.enable_grad() if self.uses_gradients else contextlib.nullcontext()
        with eval_mode(self.model), grad_mode:
            x_adv = self._perturb(x, y, target)
        return x_adv.detach().clamp_(0.0, 1.0)

    def check_inputs(self, x, y, target, device: torch.device):
        x = check_images(self.model, x, device)
        k = self.num_classes
        y = self._labels(y, len(x), device, "label")
        if int(y.min()) < 0 or int(y.max()) >= k:
            raise AttackConfigError(f"labels must be class indices in [0, {k - 1}]")
        if target is not None:
            target = self._labels(target, len(x), device, "target")
            if int(target.min()) < 0 or int(target.max()) >= k:
                bad = int(target.min()) if int(target.min()) < 0 else int(target.max())
                raise AttackConfigError(f"target class {bad} is out of range: the model has {k} classes (0 to {k - 1})")
            if bool((target == y).any()):
                raise AttackConfigError("the target class must differ from the true class")
        return x, y, target

    @staticmethod
    def _labels(v, n: int, device, what: str) -> torch.Tensor:
        t = torch.as_tensor(v, device=device)
        if t.is_floating_point():
            raise AttackConfigError(f"the {what} must be a class index, not {v!r}")
        t = t.long().reshape(-1)
        if t.numel() == 1 and n > 1:
            t = t.expand(n)
        if t.numel() != n:
            raise AttackConfigError(f"got {t.numel()} {what}s for {n} images")
        return t

    @property
    def num_classes(self) -> int:
        k = getattr(self.model, "num_classes", None)
        if k is None:
            raise AttackConfigError("the model must expose num_classes")
        return int(k)

    def _perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def loss_gradient(self, x_adv: torch.Tensor, objective) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input gradient, logits, per-sample objective) at ``x_adv``: through the BPDA view of a
        defended model when ``bpda`` is on, averaged over ``eot`` draws (see :mod:`.adaptive`)."""
        from .adaptive import gradient_model, loss_gradient

        model = gradient_model(self.model, bool(getattr(self, "bpda", False)))
        return loss_gradient(model, x_adv, objective, int(getattr(self, "eot", 1)))

    def tick(self, step: int, total: int) -> bool:
        """Report progress; return True when the caller asked to stop (and remember it)."""
        if self.progress is not None:
            self.progress(step, total)
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
            return True
        return False

    def record_step(
        self, rows: Rows, step: int, x_adv: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor, last: bool = False
    ) -> None:
        """Add a trajectory entry when recording (a no-op otherwise).

        ``rows.entries`` is how many entries the whole run records at most; images are kept every
        ``ceil(entries / max_frames)`` entries, and at the ``last`` entry of a run.
        """
        if self.trajectory is None:
            return
        image = self.record_images and (last or len(self.trajectory) % self.image_every(rows.entries) == 0)
        success = is_success(logits.detach(), rows.y, rows.target)
        self.trajectory.record(rows, step, x_adv, logits, loss, success, image)

    def image_every(self, entries: int) -> int:
        """Keep one image every this many entries, so about ``max_frames`` images are kept."""
        return max(1, math.ceil(entries / max(1, self.max_frames)))


# ----- parameter descriptors shared by several attacks ---------------------------------------
def linf_eps(default: float = 8 / 255) -> Param:
    return Param("eps", float, default, 0.0, 1.0, PIXEL, "L-inf budget: the largest change of any pixel")


def l2_eps(default: float = 0.5) -> Param:
    return Param(
        "eps",
        float,
        default,
        0.0,
        1000.0,
        "L2",
        "L2 budget: the Euclidean norm of the whole perturbation (pixels in [0,1])",
    )


def linf_step_size(default: float | None = None, auto: str = "2.5 * eps / steps") -> Param:
    return Param(
        "step_size",
        float,
        default,
        0.0,
        1.0,
        PIXEL,
        f"L-inf step per iteration (blank: {auto})",
        optional=default is None,
    )


def steps(default: int, maximum: int = 10_000, what: str = "iterations") -> Param:
    return Param("steps", int, default, 1, maximum, "", f"number of {what}")


def restarts(default: int = 1) -> Param:
    return Param(
        "restarts", int, default, 1, 100, "", "random restarts; later ones attack only the images not broken yet"
    )


def worst_case_over_restarts(
    attack: Attack, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, run_one: Callable
) -> torch.Tensor:
    """Run ``attack.restarts`` restarts and keep the worst case per sample.

    ``run_one(x, y, target, restart, index)`` attacks the rows ``index`` of the batch (all rows
    when None) and returns ``(x_adv, loss, success)`` for them, the loss being the objective the
    attack increases. Restart 1 attacks every sample; later ones only the samples not broken
    yet. A sample keeps an adversarial point when one was found, else its highest-loss point.
    """
    best_x = best_loss = best_succ = None
    for r in range(attack.restarts):
        if r == 0:
            index, xs, ys, ts = None, x, y, target
        else:
            index = (~best_succ).nonzero()[:, 0]
            if index.numel() == 0:
                break
            xs, ys = x[index], y[index]
            ts = target[index] if target is not None else None
        x_adv, loss, succ = run_one(xs, ys, ts, r, index)
        if r == 0:
            best_x, best_loss, best_succ = x_adv, loss, succ
            if loss is None:  # a single restart that was not evaluated
                break
        else:
            better = succ | (loss > best_loss[index])
            rows = index[better]
            best_x[rows] = x_adv[better]
            best_loss[rows] = loss[better]
            best_succ[rows] = succ[better]
        if attack.stopped:
            break
    return best_x
