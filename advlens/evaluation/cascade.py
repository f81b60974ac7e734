"""Run a suite as a cascade over a set of images, and keep what happened to each image.

Design. The images are the first n of a split, in its order, so evaluations are comparable. The
clean predictions come first: a misclassified image is not robust and is not attacked. Then each
attack of the suite runs, batch by batch, on the images still robust; an image whose adversarial
point is misclassified is marked broken by that attack, with its perturbation's L-inf and L2 norms
and the point itself (so a page can open it). Each attack's batches are seeded from the
evaluation's seed and the attack's position, so a run is repeatable. The result holds the
protocol (suite, settings, eps, n, seed, versions), so every figure it produces names its attack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..attacks import ATTACKS
from ..budget import format_linf
from ..data import to_float
from ..models.modes import eval_mode, model_device
from .intervals import clopper_pearson
from .suites import Suite, get_suite

ProgressFn = Callable[[int, int], object]


@dataclass
class Evaluation:
    """One model at one budget under one suite, per image and in summary."""

    suite: Suite
    eps: float
    seed: int
    clean_correct: torch.Tensor  # (n,) bool
    robust: torch.Tensor  # (n,) bool: correct clean and not broken by any attack
    broken_by: list[str]  # per image: the attack that broke it, "" if none (or misclassified clean)
    linf: torch.Tensor  # (n,) the breaking perturbation's L-inf norm (nan when not broken)
    l2: torch.Tensor
    x_adv: dict[int, torch.Tensor] = field(default_factory=dict)  # image index -> its adversarial point
    seconds: dict[str, float] = field(default_factory=dict)  # per attack
    stopped: bool = False

    @property
    def n(self) -> int:
        return len(self.robust)

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.float().mean()) if self.n else 0.0

    @property
    def robust_accuracy(self) -> float:
        return float(self.robust.float().mean()) if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Clopper-Pearson interval of the robust accuracy."""
        return clopper_pearson(int(self.robust.sum()), self.n)

    def broken_counts(self) -> dict[str, int]:
        return {name: self.broken_by.count(name) for name, _ in self.suite.attacks}

    def protocol(self) -> str:
        return (
            f"{self.suite.title}: {self.suite.describe()}, eps {format_linf(self.eps)}, n = {self.n}, seed {self.seed}"
        )

    def to_dict(self) -> dict:
        lo, hi = self.interval
        return {
            "suite": self.suite.name,
            "protocol": self.protocol(),
            "note": self.suite.note,
            "attacks": [{"name": n, "params": p} for n, p in self.suite.attacks],
            "eps": self.eps,
            "eps_shown": format_linf(self.eps),
            "n": self.n,
            "seed": self.seed,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "robust_interval_95": [lo, hi],
            "broken_by_attack": self.broken_counts(),
            "seconds_by_attack": {k: round(v, 3) for k, v in self.seconds.items()},
            "stopped": self.stopped,
            "images": [
                {
                    "index": i,
                    "clean_correct": bool(self.clean_correct[i]),
                    "robust": bool(self.robust[i]),
                    "broken_by": self.broken_by[i],
                    "linf": None if torch.isnan(self.linf[i]) else float(self.linf[i]),
                    "l2": None if torch.isnan(self.l2[i]) else float(self.l2[i]),
                }
                for i in range(self.n)
            ],
        }


def evaluate(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    suite: str | Suite = "quick",
    *,
    batch_size: int = 128,
    seed: int = 0,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Evaluation:
    """Evaluate ``model`` on images ``x`` (uint8 or float in [0, 1]) with labels ``y`` at L-inf ``eps``."""
    suite = get_suite(suite) if isinstance(suite, str) else suite
    if batch_size < 1:
        raise ValueError("the batch size must be at least 1")
    device = model_device(model)
    x = to_float(x)
    y = torch.as_tensor(y).long()
    n = len(x)
    with torch.no_grad(), eval_mode(model):
        preds = torch.cat([model(x[s : s + batch_size].to(device)).argmax(1).cpu() for s in range(0, n, batch_size)])
    correct = preds == y
    robust = correct.clone()
    broken_by = [""] * n
    linf = torch.full((n,), float("nan"))
    l2 = torch.full((n,), float("nan"))
    result = Evaluation(suite, float(eps), seed, correct, robust, broken_by, linf, l2)
    total = len(suite.attacks) * max(1, int(correct.sum()))
    done = 0
    for position, (name, params) in enumerate(suite.attacks):
        t0 = time.perf_counter()
        index = robust.nonzero()[:, 0]
        for s in range(0, len(index), batch_size):
            rows = index[s : s + batch_size]
            torch.manual_seed(seed * 1000 + position * 100 + s // batch_size)
            attack = ATTACKS[name](model, eps=float(eps), **params)
            xb, yb = x[rows].to(device), y[rows].to(device)
            x_adv = attack(xb, yb)
            with torch.no_grad(), eval_mode(model):
                fooled = (model(x_adv).argmax(1) != yb).cpu()
            delta = (x_adv.cpu() - x[rows]).flatten(1)
            for j in fooled.nonzero()[:, 0].tolist():
                i = int(rows[j])
                robust[i] = False
                broken_by[i] = name
                linf[i] = delta[j].abs().max()
                l2[i] = delta[j].norm()
                result.x_adv[i] = x_adv[j].cpu()
            done += len(rows)
            if progress is not None:
                progress(done, total)
            if should_stop is not None and should_stop():
                result.stopped = True
                result.seconds[name] = time.perf_counter() - t0
                return result
        result.seconds[name] = time.perf_counter() - t0
        done = (position + 1) * max(1, int(correct.sum()))
    return result
