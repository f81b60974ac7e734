"""Batched, differentiable DeepFool (Moosavi-Dezfooli, Fawzi and Frossard 2016, arXiv 1511.04599),
as Deep Defense trains through it (Yan, Guo and Zhang, NeurIPS 2018, arXiv 1803.00404).

Each sample i has an origin class o_i and candidate classes K_i. At iteration t the network is
linearised at x_t = x + (1 + overshoot) r_t (r_0 = 0); for each candidate k

    f_k = z_k(x_t) - z_o(x_t),   w_k = grad_x f_k(x_t),   d_k = |f_k| / ||w_k||

and the sample steps onto the nearest linearised boundary k* = argmin_k d_k:

    r_{t+1} = r_t + (|f_k*| + slack) / ||w_k*||^2 * w_k*

until it is fooled or ``max_iter`` steps were taken; the result is r = (1 + overshoot) r_T
(clipped to the [0, 1] box when ``clip``). Two kinds of samples share one batch:

- *away* (a correctly classified sample, or any sample at test time): o = y, K = the top
  ``candidates - 1`` classes of the initial logits other than y (the attack's rule); fooled when
  argmax != y;
- *toward* (a misclassified sample in Deep Defense): o = the current prediction (re-read at each
  iteration), K = {y}; "fooled" when argmax == y, i.e. DeepFool runs toward the true label.

With ``create_graph=True`` every w_k is itself differentiable (double backprop), so r depends
differentiably on the weights through all unrolled iterations, and a loss on ||r|| trains the
network. The selection k* and the stopping rule are not differentiated (as in the authors' code).
Norms carry ``norm_eps`` inside the square root, ||v|| = sqrt(sum v^2 + norm_eps), so their
gradient exists at 0 (the authors add 1e-5; methods reference, section 2).

With ``slack=1e-4``, ``clip=True`` and ``candidates`` = the attack's, the perturbation equals the
one of the attack-only :class:`advlens.attacks.DeepFool` (tested): both follow the original
DeepFool code, which linearises at the overshot point x + (1 + overshoot) r_t. Deep Defense's
defaults are ``slack=0``, no clipping, 5 iterations and overshoot 0.02.

:func:`rho2` is the robustness measure of both papers: rho_2 = mean_i ||r(x_i)||_2 / ||x_i||_2 over
a test set, with r the (unclipped) DeepFool perturbation from the model's own prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advlens.data import to_float
from advlens.models.modes import eval_mode, model_device

NORM_EPS = 1e-5


def safe_norm(v: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """Per-sample sqrt(sum v^2 + eps), shape (N,)."""
    return (v.flatten(1).pow(2).sum(1) + eps).sqrt()


@dataclass
class DeepFoolResult:
    """The perturbation of each sample and how DeepFool got there."""

    r: torch.Tensor  # (N, C, H, W): x_adv - x; differentiable w.r.t. the weights with create_graph
    x_adv: torch.Tensor
    fooled: torch.Tensor  # (N,) bool: reached the other side (away) or the true class (toward)
    iterations: torch.Tensor  # (N,) linearisation steps taken

    def ratio(self, x: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
        """||r_i|| / ||x_i|| per sample (norms with ``eps`` inside)."""
        return safe_norm(self.r, eps) / safe_norm(x, eps)


def deepfool(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    toward: torch.Tensor | None = None,
    *,
    candidates: int = 10,
    max_iter: int = 5,
    overshoot: float = 0.02,
    slack: float = 0.0,
    clip: bool = False,
    norm_eps: float = NORM_EPS,
    create_graph: bool = True,
) -> DeepFoolResult:
    """DeepFool on a batch (formulas in the module docstring); the model's train/eval mode is left as is.

    ``y``: the labels; ``toward``: bool (N,), True for the samples DeepFool should move toward ``y``
    (default: none). ``candidates``: how many top classes (the origin included) an *away* sample
    considers. Returns r and x_adv = x + r; with ``create_graph`` both carry the graph to the weights.
    """
    if x.ndim != 4:
        raise ValueError(f"images must be a batch N x C x H x W, got shape {tuple(x.shape)}")
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1")
    x = x.detach()
    n = len(x)
    y = y.to(x.device).long().view(-1)
    toward = torch.zeros(n, dtype=torch.bool, device=x.device) if toward is None else toward.to(x.device).bool()
    scale = 1.0 + float(overshoot)
    x_leaf = x.clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_leaf)
        k = max(2, min(int(candidates), logits.shape[1]))
        # away samples: the top k-1 other classes of the initial logits; toward samples: y only
        cands = logits.detach().scatter(1, y[:, None], float("-inf")).topk(k - 1, dim=1).indices
        cands = torch.where(toward[:, None], y[:, None].expand_as(cands), cands)
        r_tot = torch.zeros_like(x)
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        iterations = torch.zeros(n, dtype=torch.long, device=x.device)
        x_t = x_leaf
        for t in range(max_iter + 1):
            if t > 0:
                x_t = x_leaf + scale * r_tot
                if clip:
                    x_t = x_t.clamp(0.0, 1.0)
                if not create_graph:
                    x_t = x_t.detach().requires_grad_(True)
                logits = model(x_t)
            pred = logits.detach().argmax(1)
            fooled = torch.where(toward, pred == y, pred != y)
            active = active & ~fooled
            if t == max_iter or not bool(active.any()):
                break
            origin = torch.where(toward, pred, y)
            step = _nearest_step(logits, x_t, origin, cands, slack, norm_eps, create_graph)
            mask = active.to(x.dtype).view(-1, 1, 1, 1)
            r_tot = r_tot + mask * step
            iterations = iterations + active.long()
        x_adv = x + scale * r_tot
        if clip:
            x_adv = x_adv.clamp(0.0, 1.0)
        r = x_adv - x
    if not create_graph:
        r, x_adv = r.detach(), x_adv.detach()
    return DeepFoolResult(r, x_adv, fooled, iterations)


def _nearest_step(
    logits: torch.Tensor,
    x_t: torch.Tensor,
    origin: torch.Tensor,
    cands: torch.Tensor,
    slack: float,
    norm_eps: float,
    create_graph: bool,
) -> torch.Tensor:
    """The step onto the nearest linearised boundary among each sample's candidates."""
    z_o = logits.gather(1, origin[:, None])[:, 0]
    best_step = best_d = None
    for j in range(cands.shape[1]):
        f = logits.gather(1, cands[:, j : j + 1])[:, 0] - z_o
        (w,) = torch.autograd.grad(f.sum(), x_t, create_graph=create_graph, retain_graph=True)
        w_norm = safe_norm(w, norm_eps)
        if not create_graph:
            f = f.detach()
        d = f.detach().abs() / w_norm.detach()
        step = ((f.abs() + slack) / w_norm.pow(2)).view(-1, 1, 1, 1) * w
        if best_step is None:
            best_step, best_d = step, d
        else:
            better = d < best_d
            best_d = torch.where(better, d, best_d)
            best_step = torch.where(better.view(-1, 1, 1, 1), step, best_step)
    return best_step


def deepfool_ratios(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 100,
    max_iter: int = 50,
    overshoot: float = 0.02,
    candidates: int = 10,
) -> dict[str, torch.Tensor]:
    """Per image: ||r||_2 / ||x||_2 of DeepFool from the model's own prediction, and more (CPU tensors).

    DeepFool runs with the original paper's settings by default (50 iterations, overshoot 0.02,
    unclipped r), on the model as it is (call it in eval mode). Returns ``ratio``, ``norm``
    (||r||_2), ``fooled`` and ``pred`` (the clean prediction), one entry per image.
    """
    device = model_device(model)
    out: dict[str, list[torch.Tensor]] = {"ratio": [], "norm": [], "fooled": [], "pred": []}
    for start in range(0, len(x), batch_size):
        xb = to_float(x[start : start + batch_size].to(device)).float()
        with torch.no_grad():
            pred = model(xb).argmax(1)
        res = deepfool(
            model,
            xb,
            pred,
            candidates=candidates,
            max_iter=max_iter,
            overshoot=overshoot,
            create_graph=False,
            norm_eps=1e-12,
        )
        norm = res.r.flatten(1).norm(dim=1)
        out["norm"].append(norm.cpu())
        out["ratio"].append((norm / xb.flatten(1).norm(dim=1).clamp(min=1e-12)).cpu())
        out["fooled"].append(res.fooled.cpu())
        out["pred"].append(pred.cpu())
    if not out["ratio"]:
        raise ValueError("DeepFool ratios need at least one image")
    return {k: torch.cat(v) for k, v in out.items()}


RHO2_DEEPFOOL = {"max_iter": 50, "overshoot": 0.02, "candidates": 10}  # the original DeepFool paper's settings


def rho2(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *, batch_size: int = 100, **deepfool
) -> dict:
    """rho_2 = mean ||r(x)||_2 / ||x||_2 of the DeepFool perturbation, in eval mode (no gradients kept).

    DeepFool starts from the model's own prediction (the test-time rule of Yan et al.'s code), with
    the original paper's settings (50 iterations, overshoot 0.02, unclipped r; ``max_iter``,
    ``overshoot`` and ``candidates`` override them). ``x`` may be uint8
    or float in [0, 1]; ``y``, when given, adds the clean accuracy and rho_2 over the correctly
    classified images. Returns ``rho2, fooled, mean_norm, images`` (and ``accuracy,
    rho2_correct`` with labels).
    """
    with eval_mode(model):
        r = deepfool_ratios(model, x, batch_size=batch_size, **{**RHO2_DEEPFOOL, **deepfool})
    out = {
        "rho2": float(r["ratio"].mean()),
        "fooled": float(r["fooled"].float().mean()),
        "mean_norm": float(r["norm"].mean()),
        "images": len(r["ratio"]),
    }
    if y is not None:
        ok = r["pred"] == torch.as_tensor(y).cpu().long().view(-1)
        out["accuracy"] = float(ok.float().mean())
        out["rho2_correct"] = float(r["ratio"][ok].mean()) if bool(ok.any()) else float("nan")
    return out
