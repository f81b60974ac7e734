"""Learning-rate schedules as pure functions of the step, so a resumed run needs no scheduler state.

With ``t = step / total_steps`` in [0, 1] and the base rate ``lr``:

- constant: ``lr``.
- step: ``lr * gamma^k`` where k counts the milestones (fractions of training) already passed.
- cosine (Loshchilov and Hutter 2017, arXiv 1608.03983, without restarts):
  ``lr * (1 + cos(pi t)) / 2``.
- onecycle (Smith and Topin 2018, arXiv 1708.07120; PyTorch's ``OneCycleLR`` defaults): cosine warm-up
  from ``lr / 25`` to ``lr`` over the first 30%, then cosine annealing to ``lr / (25 * 1e4)``; the
  momentum (SGD momentum or Adam's beta1) cycles the other way, 0.95 -> 0.85 -> 0.95.
- cyclic (Wong, Rice and Kolter 2020, arXiv 2001.03994, the Fast-AT recipe): a triangle
  ``0 -> lr -> 0`` with its peak at 40% of training (piecewise linear).
"""

from __future__ import annotations

import math

ONECYCLE_PCT_START = 0.3
ONECYCLE_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4
ONECYCLE_MOMENTUM = (0.85, 0.95)
CYCLIC_PEAK = 0.4


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def lr_at(
    schedule: str,
    step: int,
    total_steps: int,
    lr: float,
    milestones: tuple[float, ...] = (0.5, 0.75),
    gamma: float = 0.1,
) -> float:
    """The learning rate for optimiser step ``step`` (0-based) of ``total_steps``."""
    total = max(1, total_steps)
    if schedule == "constant":
        return lr
    if schedule == "step":
        passed = sum(1 for m in milestones if step >= m * total)
        return lr * gamma**passed
    if schedule == "cosine":
        return lr * (1.0 + math.cos(math.pi * min(step, total) / total)) / 2.0
    if schedule == "onecycle":
        initial = lr / ONECYCLE_DIV
        final = initial / ONECYCLE_FINAL_DIV
        warm_end = float(ONECYCLE_PCT_START * total) - 1.0
        last = float(total - 1)
        if step <= warm_end:
            return _cos_anneal(initial, lr, step / max(warm_end, 1e-12))
        return _cos_anneal(lr, final, (step - warm_end) / max(last - warm_end, 1e-12))
    if schedule == "cyclic":
        t = min(step, total) / total
        return lr * (t / CYCLIC_PEAK if t <= CYCLIC_PEAK else (1.0 - t) / (1.0 - CYCLIC_PEAK))
    raise ValueError(f"unknown schedule {schedule!r}")


def momentum_at(schedule: str, step: int, total_steps: int, base: float) -> float:
    """One-cycle cycles the momentum inversely to the rate; other schedules keep ``base``."""
    if schedule != "onecycle":
        return base
    low, high = ONECYCLE_MOMENTUM
    total = max(1, total_steps)
    warm_end = float(ONECYCLE_PCT_START * total) - 1.0
    if step <= warm_end:
        return _cos_anneal(high, low, step / max(warm_end, 1e-12))
    return _cos_anneal(low, high, (step - warm_end) / max(float(total - 1) - warm_end, 1e-12))


def apply(
    optimizer,
    schedule: str,
    step: int,
    total_steps: int,
    lr: float,
    momentum: float,
    milestones: tuple[float, ...],
    gamma: float,
) -> float:
    """Set the rate (and, for one-cycle, the momentum / beta1) of every parameter group."""
    rate = lr_at(schedule, step, total_steps, lr, milestones, gamma)
    for group in optimizer.param_groups:
        group["lr"] = rate
        if schedule == "onecycle":
            if "betas" in group:
                group["betas"] = (momentum_at(schedule, step, total_steps, group["betas"][0]), group["betas"][1])
            elif "momentum" in group:
                group["momentum"] = momentum_at(schedule, step, total_steps, momentum)
    return rate
