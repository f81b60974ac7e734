"""The smallest L-inf budget that flips an image, by binary search with PGD, and DeepFool's L2.

For each image, PGD at ``max_eps`` first tells whether any budget up to it flips the image.
Then ``ceil(log2(max_eps / tol))`` bisections on [lo, hi] (lo: a budget PGD failed at, hi: one it
succeeded at) run PGD at mid = (lo + hi) / 2, all images at once with per-image budgets. The
answer is the final hi, within ``tol`` of the smallest budget this PGD can break; a stronger
attack (more steps, restarts) can only lower it. Images already misclassified get 0.

DeepFool (Moosavi-Dezfooli et al. 2016) gives the complementary L2 view: the norm of its
minimal perturbation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..models.modes import eval_mode, model_device
from .base import AttackConfigError, ProgressFn, StopFn, check_images
from .deepfool import DeepFool
from .losses import is_success
from .pgd import PGD
from .result import resolve_labels


@dataclass
class MinimalEps:
    """Per image: ``eps`` (inf when even ``max_eps`` failed), ``found``, the ``x_adv`` at that eps,
    and DeepFool's L2 norm (``deepfool_l2``, NaN where DeepFool did not flip the image)."""

    eps: torch.Tensor
    found: torch.Tensor
    x_adv: torch.Tensor
    max_eps: float
    tol: float
    searches: int
    deepfool_l2: torch.Tensor
    deepfool_success: torch.Tensor
    deepfool_x_adv: torch.Tensor | None
    stopped: bool = False

    def summary(self, index: int = 0) -> dict:
        eps = float(self.eps[index])
        return {
            "min_linf_eps": None if math.isinf(eps) else eps,
            "min_linf_eps_255": None if math.isinf(eps) else eps * 255.0,
            "found": bool(self.found[index]),
            "max_eps": self.max_eps,
            "tol": self.tol,
            "max_eps_255": self.max_eps * 255.0,
            "tol_255": self.tol * 255.0,
            "searches": self.searches,
            "deepfool_l2": None if math.isnan(float(self.deepfool_l2[index])) else float(self.deepfool_l2[index]),
            "stopped": self.stopped,
        }


def find_minimal_eps(
    model,
    x: torch.Tensor,
    y=None,
    *,
    target=None,
    max_eps: float = 32 / 255,
    tol: float = 0.5 / 255,
    steps: int = 20,
    restarts: int = 1,
    deepfool: bool = True,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> MinimalEps:
    """Binary-search the smallest L-inf eps at which PGD-``steps`` flips each image of ``x``."""
    if not 0.0 < max_eps <= 1.0:
        raise AttackConfigError(f"max_eps must be in (0, 1] (0 to 255/255), got {max_eps * 255:.4g}/255")
    if not 0.0 < tol < max_eps:
        raise AttackConfigError(f"tol must be positive and below max_eps, got {tol * 255:.4g}/255")
    device = model_device(model)
    x = check_images(model, x, device)
    y, _, clean_logits = resolve_labels(model, x, y)
    searches = math.ceil(math.log2(max_eps / tol))
    df_steps = DeepFool.defaults()["steps"] if deepfool else 0
    total = (searches + 1) * steps * restarts + df_steps
    done = 0

    def sub_progress(step, _total):
        if progress is not None:
            progress(done + step, total)

    pgd = PGD(model, eps=max_eps, steps=steps, restarts=restarts, progress=sub_progress, should_stop=should_stop)
    tgt = pgd.check_inputs(x, y, target, device)[2]
    n = len(x)
    already = is_success(clean_logits, y, tgt)
    eps = torch.where(already, 0.0, float("inf")).to(device)
    x_best = x.clone()
    lo = torch.zeros(n, device=device)
    hi = torch.full((n,), max_eps, device=device)
    todo = ~already
    stopped = False
    for search in range(searches + 1):
        idx = todo.nonzero()[:, 0]
        if idx.numel() == 0:
            break
        mid = hi[idx] if search == 0 else (lo[idx] + hi[idx]) / 2
        pgd.eps_per_sample = mid
        x_adv = pgd(x[idx], y[idx], None if tgt is None else tgt[idx])
        with torch.no_grad(), eval_mode(model):
            ok = is_success(model(x_adv), y[idx], None if tgt is None else tgt[idx])
        rows = idx[ok]
        hi[rows] = mid[ok]
        eps[rows] = mid[ok]
        x_best[rows] = x_adv[ok]
        if search == 0:
            todo[idx[~ok]] = False  # unbreakable within max_eps
        else:
            lo[idx[~ok]] = mid[~ok]
        done += steps * restarts
        if pgd.stopped:
            stopped = True
            break
    df_l2 = torch.full((n,), float("nan"))
    df_ok = torch.zeros(n, dtype=torch.bool)
    df_x = None
    if deepfool and not stopped:
        df = DeepFool(model, progress=sub_progress, should_stop=should_stop)
        df_x = df(x, y, tgt)
        with torch.no_grad(), eval_mode(model):
            df_ok = is_success(model(df_x), y, tgt).cpu()
        norms = (df_x - x).flatten(1).norm(dim=1).cpu()
        df_l2 = torch.where(df_ok, norms, df_l2)
        df_x = df_x.cpu()
        stopped = df.stopped
    search = {"eps": eps.cpu(), "found": torch.isfinite(eps).cpu(), "x_adv": x_best.cpu(), "searches": searches}
    deepfool = {"deepfool_l2": df_l2, "deepfool_success": df_ok, "deepfool_x_adv": df_x}
    return MinimalEps(**search, **deepfool, max_eps=float(max_eps), tol=float(tol), stopped=stopped)
