"""One image, many views: every attack on the same image, and one attack across budgets.

:func:`compare_attacks` runs each L-inf attack at the same budget and each minimal-norm attack
(DeepFool, C&W) unbudgeted on one image, and reports per attack whether it succeeded, the
perturbation's L-inf and L2 norms, the time, and the attack's own smallest L-inf budget: found by
bisection on [0, ``max_eps``] (``ceil(log2(max_eps / tol))`` runs of the attack), or for a
minimal-norm attack the L-inf norm of the perturbation it found. Slow attacks run with their CPU
presets (C&W: 100 Adam steps; DeepFool: 3 candidates), Square with 1,000 queries; a defended
model gets the adaptive options an evaluation would use (BPDA, EOT).

:func:`eps_sweep` runs one attack at a list of budgets and reports the predicted class and its
confidence at each: how the decision changes as eps grows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .adaptive import adaptive_settings
from .base import AttackConfigError, ProgressFn, StopFn
from .registry import ATTACKS
from .result import run_attack

# L-inf attacks at the shared budget, then the minimal-norm ones; the order of the table.
COMPARED = ("fgsm", "stepll", "pgd", "mifgsm", "apgd_ce", "apgd_dlr", "apgd_t", "fab_t", "square", "deepfool", "cw")
SQUARE_QUERIES = 1000  # a single image; the full 5,000 of the standard suite is the Evaluate page's job


@dataclass
class AttackRow:
    attack: str
    title: str
    budgeted: bool  # False for minimal-norm attacks (no eps)
    success: bool
    predicted: int
    confidence: float  # the softmax probability of the predicted class
    linf: float
    l2: float
    seconds: float
    min_eps: float | None  # the smallest L-inf budget that flips the image (None: not within max_eps)
    min_eps_how: str  # how min_eps was found
    stopped: bool = False


def attack_settings(model, name: str, eps: float | None) -> dict:
    """The parameters :func:`compare_attacks` gives ``name``: its CPU preset, the shared budget, the
    adaptive options on a defended model."""
    cls = ATTACKS.get(name)
    params = dict(cls.CPU_PRESET)
    if name == "square":
        params["steps"] = SQUARE_QUERIES
    if cls.norm == "Linf" and eps is not None:
        params["eps"] = float(eps)
    params.update(adaptive_settings(model, cls))
    return params


def _search_steps(max_eps: float, tol: float) -> int:
    return max(1, math.ceil(math.log2(max_eps / tol)))


def smallest_budget(model, x, y, name: str, params: dict, target, max_eps: float, tol: float, seed: int, stop):
    """Bisection for the smallest L-inf eps at which attack ``name`` flips ``x`` (one image): None
    when it fails at ``max_eps``. Each run starts from the same seed, so the search is repeatable."""

    def flips(eps: float) -> bool:
        torch.manual_seed(seed)
        return bool(run_attack(model, x, y, name, target=target, should_stop=stop, **{**params, "eps": eps}).success[0])

    if not flips(max_eps):
        return None
    lo, hi = 0.0, max_eps
    for _ in range(_search_steps(max_eps, tol)):
        if stop is not None and stop():
            break
        mid = (lo + hi) / 2
        if flips(mid):
            hi = mid
        else:
            lo = mid
    return hi


def compare_attacks(
    model,
    x: torch.Tensor,
    y=None,
    eps: float = 8 / 255,
    *,
    names: tuple[str, ...] = COMPARED,
    target=None,
    search: bool = True,
    max_eps: float = 32 / 255,
    tol: float = 1 / 255,
    seed: int = 0,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> list[AttackRow]:
    """Every attack in ``names`` on the single image ``x`` (1, C, H, W); ``search`` adds each budgeted
    attack's smallest flipping eps. ``progress(done, total)`` counts attacks."""
    if x.ndim != 4 or len(x) != 1:
        raise AttackConfigError("compare_attacks takes one image (a batch of 1)")
    if not 0.0 < max_eps <= 1.0 or not 0.0 < tol < max_eps:
        raise AttackConfigError("the search needs 0 < tol < max_eps <= 1")
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        raise AttackConfigError(f"unknown attack(s): {', '.join(unknown)}")
    settings = {n: ATTACKS.get(n).validate_params(attack_settings(model, n, eps)) for n in names}
    rows: list[AttackRow] = []
    for i, name in enumerate(names):
        if should_stop is not None and should_stop():
            break
        cls = ATTACKS.get(name)
        params = settings[name]
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        res = run_attack(model, x, y, name, target=target, should_stop=should_stop, **params)
        seconds = time.perf_counter() - t0
        budgeted = cls.norm == "Linf"
        success = bool(res.success[0])
        if budgeted and search:
            min_eps = smallest_budget(model, x, y, name, params, target, max_eps, tol, seed, should_stop)
            how = f"bisection on [0, {max_eps:.4g}], {_search_steps(max_eps, tol)} steps"
        elif not budgeted:
            min_eps = float(res.linf[0]) if success else None
            how = "the L-inf norm of its minimal (L2) perturbation"
        else:
            min_eps, how = None, "not searched"
        probs = res.adv_probs[0]
        rows.append(
            AttackRow(
                attack=name,
                title=cls.title,
                budgeted=budgeted,
                success=success,
                predicted=int(probs.argmax()),
                confidence=float(probs.max()),
                linf=float(res.linf[0]),
                l2=float(res.l2[0]),
                seconds=seconds,
                min_eps=min_eps,
                min_eps_how=how,
                stopped=bool(res.stopped),
            )
        )
        if progress is not None:
            progress(i + 1, len(names))
    return rows


@dataclass
class SweepPoint:
    eps: float
    predicted: int
    confidence: float  # of the predicted class
    true_probability: float  # of the label attacked
    success: bool


def eps_sweep(
    model,
    x: torch.Tensor,
    y=None,
    name: str = "pgd",
    eps_values: tuple[float, ...] = (),
    *,
    params: dict | None = None,
    target=None,
    seed: int = 0,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> list[SweepPoint]:
    """Attack ``name`` on one image at each budget of ``eps_values`` (L-inf attacks only)."""
    cls = ATTACKS.get(name)
    if cls is None or cls.norm != "Linf":
        raise AttackConfigError(f"the eps sweep needs an L-inf attack, not {name!r}")
    if x.ndim != 4 or len(x) != 1:
        raise AttackConfigError("eps_sweep takes one image (a batch of 1)")
    if not eps_values or len(eps_values) > 64 or any(not 0.0 <= e <= 1.0 for e in eps_values):
        raise AttackConfigError("the sweep takes 1 to 64 budgets in [0, 1]")
    base = {**(params or {}), **adaptive_settings(model, cls)}
    points = []
    for i, eps in enumerate(sorted(eps_values)):
        if should_stop is not None and should_stop():
            break
        torch.manual_seed(seed)
        res = run_attack(model, x, y, name, target=target, should_stop=should_stop, **{**base, "eps": float(eps)})
        probs = res.adv_probs[0]
        points.append(
            SweepPoint(
                eps=float(eps),
                predicted=int(probs.argmax()),
                confidence=float(probs.max()),
                true_probability=float(probs[int(res.y[0])]),
                success=bool(res.success[0]),
            )
        )
        if progress is not None:
            progress(i + 1, len(eps_values))
    return points
