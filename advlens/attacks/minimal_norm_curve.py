"""Robust accuracy against eps from one minimal-norm run (FMN, :mod:`.fmn`).

An image is robust at eps when the smallest adversarial perturbation found for it is larger
than eps: misclassified images have norm 0 (never robust), images the attack could not break
have norm inf (robust at every eps). So one run over n images gives the whole curve

    robust(eps) = #{i : norm_i > eps} / n,

with a 95% Clopper-Pearson interval at each eps. The attack only finds *a* small perturbation,
not the smallest, so the curve is an upper bound on the true robust accuracy, as any attack's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..budget import format_budget
from ..evaluation.intervals import clopper_pearson
from ..models.modes import eval_mode, model_device
from .registry import get_attack

NORM_ATTACKS = {"L0": "fmn_l0", "L1": "fmn_l1", "L2": "fmn_l2", "Linf": "fmn_linf"}


@dataclass
class NormCurve:
    norm: str
    norms: torch.Tensor  # (n,) per image: 0 misclassified, inf not broken
    attack: str
    params: dict

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
        )

    def to_dict(self) -> dict:
        return {
            "norm": self.norm,
            "attack": self.attack,
            "params": self.params,
            "protocol": self.protocol(),
            "n": self.n,
            "norms": [None if not torch.isfinite(v) else float(v) for v in self.norms],
            "curve": self.table(),
        }


def minimal_norm_curve(
    model, x: torch.Tensor, y: torch.Tensor, norm: str = "L2", batch_size: int = 128, progress=None, **params
) -> NormCurve:
    """Run FMN in ``norm`` on images ``x`` (uint8 or float in [0, 1]) with labels ``y``, ``batch_size``
    at a time, and return the curve. ``params`` go to the attack (``steps=100``, ...);
    ``progress(done, total)`` after each batch."""
    from ..data import to_float

    if norm not in NORM_ATTACKS:
        raise ValueError(f"unknown norm {norm!r}: use one of {', '.join(NORM_ATTACKS)}")
    if batch_size < 1:
        raise ValueError("the batch size must be at least 1")
    cls = get_attack(NORM_ATTACKS[norm])
    x, y = to_float(x), torch.as_tensor(y).long()
    device = model_device(model)
    out = []
    attack = None
    for s in range(0, len(x), batch_size):
        attack = cls(model, **params)
        xb, yb = x[s : s + batch_size].to(device), y[s : s + batch_size].to(device)
        x_adv = attack(xb, yb)
        with torch.no_grad(), eval_mode(model):
            fooled = (model(x_adv).argmax(1) != yb).cpu()
        norms = attack.minimal_norms.clone()
        norms[~fooled] = float("inf")
        out.append(norms)
        if progress is not None:
            progress(min(len(x), s + batch_size), len(x))
    config = dict(attack.config) if attack is not None else cls.defaults()
    return NormCurve(norm, torch.cat(out) if out else torch.zeros(0), cls.name, config)
