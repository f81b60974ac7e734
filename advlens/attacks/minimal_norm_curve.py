"""Robust accuracy against eps from one minimal-norm run (FMN, :mod:`.fmn`).

An image is robust at eps when the smallest adversarial perturbation found for it is larger
than eps: misclassified images have norm 0 (never robust), images the attack could not break
have norm inf (robust at every eps). So one run over n images gives the whole curve

    robust(eps) = #{i : norm_i > eps} / n,

with a 95% Clopper-Pearson interval at each eps. The attack only finds *a* small perturbation,
not the smallest, so the curve is an upper bound on the true robust accuracy, as any attack's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..budget import format_budget
from ..intervals import clopper_pearson
from ..models.modes import eval_mode, model_device
from .registry import get_attack

NORM_ATTACKS = {"L0": "fmn_l0", "L1": "fmn_l1", "L2": "fmn_l2", "Linf": "fmn_linf"}


@dataclass
class NormCurve:
    norm: str
    norms: torch.Tensor  # (n,) per image: 0 misclassified, inf not broken
    attack: str
    params: dict
    stopped: bool = False  # stopped early: n counts the images attacked before the stop

    @property
    def n(self) -> int:
        return len(self.norms)

    def robust_at(self, eps: float) -> float:
        return float((self.norms > eps).float().mean()) if self.n else 0.0

    def interval_at(self, eps: float) -> tuple[float, float]:
        return clopper_pearson(int((self.norms > eps).sum()), self.n)

    def grid(self, points: int = 50) -> list[float]:
        """``points`` budgets from 0 to just past the largest finite norm."""
        finite = self.norms[torch.isfinite(self.norms)]
        top = float(finite.max()) * 1.05 if len(finite) and float(finite.max()) > 0 else 1.0
        return [top * i / (points - 1) for i in range(points)]

    def table(self, eps: list[float] | None = None) -> list[dict]:
        """One row per budget: eps, its display form, robust accuracy and the 95% interval."""
        rows = []
        for e in self.grid() if eps is None else eps:
            lo, hi = self.interval_at(e)
            shown = f"{e:g}" if self.norm == "L0" else format_budget(e, self.norm)
            rows.append({"eps": e, "eps_shown": shown, "robust_accuracy": self.robust_at(e), "low": lo, "high": hi})
        return rows

    def median(self) -> float:
        return float(self.norms.median()) if self.n else float("nan")

    def protocol(self) -> str:
        broken = int(torch.isfinite(self.norms).sum())
        return (
            f"{self.attack} ({', '.join(f'{k}={v}' for k, v in self.params.items())}), {self.norm}, n = {self.n}: "
            f"robust at eps = share of images whose smallest adversarial perturbation found is > eps "
            f"({broken} broken, {self.n - broken} never); an upper bound on robust accuracy"
            + (" (stopped early)" if self.stopped else "")
        )

    def to_dict(self) -> dict:
        median = self.median()
        return {
            "norm": self.norm,
            "attack": self.attack,
            "params": self.params,
            "protocol": self.protocol(),
            "n": self.n,
            "stopped": self.stopped,
            "norms": [None if not torch.isfinite(v) else float(v) for v in self.norms],
            "median": median if math.isfinite(median) else None,
            "curve": self.table(),
        }


def minimal_norm_curve(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    norm: str = "L2",
    batch_size: int = 128,
    progress=None,
    should_stop=None,
    **params,
) -> NormCurve:
    """Run FMN in ``norm`` on images ``x`` (uint8 or float in [0, 1]) with labels ``y``, ``batch_size``
    at a time, and return the curve. ``params`` go to the attack (``steps=100``, ...);
    ``progress(step, total)`` after each attack step, counted over all batches. ``should_stop()``
    returning True ends the run: the batch under way keeps the smallest norms found so far (still
    upper bounds), later batches are left out (``n`` counts the images attacked)."""
    from ..data import to_float

    if norm not in NORM_ATTACKS:
        raise ValueError(f"unknown norm {norm!r}: use one of {', '.join(NORM_ATTACKS)}")
    if batch_size < 1:
        raise ValueError("the batch size must be at least 1")
    cls = get_attack(NORM_ATTACKS[norm])
    config = cls.validate_params(params)
    x, y = to_float(x), torch.as_tensor(y).long()
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    device = model_device(model)
    batches = list(range(0, len(x), batch_size))
    steps = int(config.get("steps", 1))
    out, stopped = [], False
    for b, s in enumerate(batches):

        def tick(step, total, b=b):
            if progress is not None:
                progress(b * steps + min(step, steps), len(batches) * steps)

        attack = cls(model, progress=tick, should_stop=should_stop, **config)
        xb, yb = x[s : s + batch_size].to(device), y[s : s + batch_size].to(device)
        x_adv = attack(xb, yb)
        with torch.no_grad(), eval_mode(model):
            fooled = (model(x_adv).argmax(1) != yb).cpu()
        norms = attack.minimal_norms.clone()
        norms[~fooled] = float("inf")
        out.append(norms)
        if attack.stopped or (should_stop is not None and should_stop()):
            stopped = b < len(batches) - 1 or attack.stopped
            break
    return NormCurve(norm, torch.cat(out) if out else torch.zeros(0), cls.name, dict(config), stopped)


def curve_on_dataset(
    model, ds, n: int, norm: str = "L2", *, batch_size: int = 128, progress=None, should_stop=None, **params
):
    """The curve on ``n`` images of ``ds`` picked by the one subset rule
    (:func:`advlens.data.subset.choose_images`); returns ``(curve, subset)``. The dataset must have
    the model's input size and class names (its labels are the model's classes)."""
    from ..data.subset import choose_images

    if tuple(ds.shape) != tuple(model.input_size):
        raise ValueError(f"{ds.name} images are {tuple(ds.shape)}; the model expects {tuple(model.input_size)}")
    if tuple(ds.class_names) != tuple(model.class_names):
        raise ValueError(f"{ds.name}'s classes are not the model's: its labels cannot say which images are broken")
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    subset = choose_images(ds, n)
    x, y = ds.batch(subset.indices)
    if bool((torch.as_tensor(y) < 0).any()):
        raise ValueError(f"some images of {ds.name} have no label")
    curve = minimal_norm_curve(
        model, x, y, norm, batch_size=batch_size, progress=progress, should_stop=should_stop, **params
    )
    return curve, subset
