"""An attack's CPU preset fitted to the model's cost: at most ``seconds`` in the worst case (issue 25).

The presets (``Attack.CPU_PRESET``) were chosen on the small shipped models and EfficientNet-Lite0. A
RobustBench WideResNet-28-10 costs about 0.6 s per forward+backward pass of one image on one core
(``bench/RESULTS.md``), so C&W's 100 Adam steps alone would take a minute. :func:`fitted_preset`
times one forward+backward pass of the model once (per model object), bounds the preset's worst case
(every step runs: the attack never stops early, as on an image it cannot break) with the pass counts
below, and, when that passes the budget, lowers the preset's step counts until it fits.

Worst-case passes (one image):

- ``cw``: ``steps * binary_steps`` forward+backward passes (Adam), plus ``binary_steps`` forwards;
- ``deepfool``: ``steps`` forwards and ``steps * candidates`` backward passes (one per candidate class);
- ``hopskipjump`` / ``hopskipjump_linf``: forwards only: up to ``start_draws + 10`` for the starting
  point (noise draws and a binary search), ``sum_t min(init_evals * sqrt(t), max_evals)``
  gradient-estimate queries, and about 25 per iteration (binary search and step-size search), each
  counted as :data:`QUERY_PASS` of a forward+backward pass (they run in batches: on a WideResNet-28-10,
  0.10 to 0.19 s per image against 0.5 s per pass, ``bench/cpu_presets.py --wrn``). The worst case of
  the start is a model that labels all noise as the image's class (an untrained network): 200 draws
  take about 40 s there, so the start's draws are lowered first (to 50; a trained model mostly finds
  its start within the first 10), then the iterations, and last the draws again (to 20 at the least).
"""

from __future__ import annotations

import math
import time
import weakref

import torch

from .models.modes import eval_mode, model_device

DEFAULT_SECONDS = 30.0
QUERY_PASS = 0.35  # one image through a batched forward pass, as a fraction of a forward+backward pass
_PASS_S: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pass_seconds(model) -> float:
    """Seconds of one forward+backward pass (to the input) of one image, measured once per model."""
    known = _PASS_S.get(model)
    if known is not None:
        return known
    best = math.inf
    with eval_mode(model):  # as the attack will run: eval mode, holding the model's lock
        x = torch.rand(1, *model.input_size, device=model_device(model), requires_grad=True)
        for _ in range(2):  # the first call pays for allocations
            t0 = time.perf_counter()
            torch.autograd.grad(model(x).max(), x)
            best = min(best, time.perf_counter() - t0)
    _PASS_S[model] = best
    return best


def worst_case_passes(name: str, params: dict) -> float | None:
    """Forward+backward passes an attack ``name`` makes at most with ``params``; None if not modelled."""
    if name == "cw":
        return params["steps"] * params["binary_steps"] + params["binary_steps"] / 2
    if name == "deepfool":
        return params["steps"] * (params["candidates"] + 0.5)
    if name.startswith("hopskipjump"):
        init = params.get("init_evals", 100)
        queries = sum(min(init * math.sqrt(t), params["max_evals"]) for t in range(1, params["steps"] + 1))
        return (params.get("start_draws", 200) + 10 + queries + 25 * params["steps"]) * QUERY_PASS
    return None


def _shrink(params: dict) -> dict | None:
    """The next smaller preset: fewer noise draws for a label-only attack's start (its worst case, not
    its usual cost), then fewer steps; at one step, fewer of the inner iterations."""
    out = dict(params)
    if out.get("start_draws", 0) > 50:
        out["start_draws"] = max(50, out["start_draws"] // 2)
    elif out.get("steps", 1) > 1:
        out["steps"] = max(1, int(out["steps"] * 0.8))
    elif out.get("binary_steps", 1) > 1:
        out["binary_steps"] -= 1
    elif out.get("candidates", 2) > 2:
        out["candidates"] -= 1
    elif out.get("max_evals", 10) > 10:
        out["max_evals"] = max(10, out["max_evals"] // 2)
    elif out.get("start_draws", 0) > 20:  # last: one round of uniform noise, one around the image
        out["start_draws"] = max(20, out["start_draws"] // 2)
    else:
        return None
    return out


def fitted_preset(cls, model, seconds: float = DEFAULT_SECONDS, per_pass: float | None = None) -> tuple[dict, str]:
    """(the preset of attack class ``cls`` for ``model``, a note saying what was lowered and why, or "").

    ``per_pass``: seconds of one forward+backward pass (measured with :func:`pass_seconds` if None).
    """
    preset = dict(cls.CPU_PRESET)
    if not preset:
        return preset, ""
    full = {p.name: p.default for p in cls.params()} | preset
    passes = worst_case_passes(cls.name, full)
    if passes is None:
        return preset, ""
    per_pass = pass_seconds(model) if per_pass is None else per_pass
    if passes * per_pass <= seconds:
        return preset, ""
    fitted, worst = full, passes * per_pass
    while worst > seconds:
        smaller = _shrink(fitted)
        if smaller is None:
            break
        fitted = smaller
        worst = worst_case_passes(cls.name, fitted) * per_pass
    preset = {k: fitted[k] for k in full if k in preset or fitted[k] != full[k]}  # in the parameters' order
    how = (
        f"lowered to stay under {seconds:.0f} s"
        if worst <= seconds
        else f"lowered as far as it goes; even so it may take {worst:.0f} s"
    )
    usual = ", ".join(f"{k}={v}" for k, v in cls.CPU_PRESET.items())
    return preset, (
        f"This model takes {per_pass:.2f} s per forward+backward pass here: the usual preset ({usual}) could "
        f"take {passes * per_pass:.0f} s, so the preset is {how}."
    )
