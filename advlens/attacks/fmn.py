"""FMN, the Fast Minimum-Norm attack, in L0, L1, L2 and L-inf (Pintor, Roli, Brendel and Biggio
2021, "Fast Minimum-norm Adversarial Attacks through Adaptive Norm Constraints", NeurIPS 2021,
arXiv 2102.12827).

A minimal-norm attack: no budget is given; each image gets the smallest perturbation the attack
finds that changes its class, so one run gives the whole robust-accuracy-against-eps curve
(:mod:`advlens.attacks.minimal_norm_curve`). From delta = 0 it alternates two updates:

- the radius: with m = z_y - max_{j != y} z_j the logit margin at x + delta (adversarial when the
  class changed), eps <- min(eps (1 - gamma), ||delta*||) when the point is adversarial
  (delta* the smallest adversarial perturbation so far), eps <- eps (1 + gamma) when it is not
  but one was found before, and, before any, eps <- ||delta|| + |m| / ||grad m||_q (the distance
  to the linearised boundary, q the dual norm);
- the perturbation: a step delta <- delta - alpha grad m / ||grad m||_2, projected onto the
  eps-ball of the norm and clipped to the [0, 1] box.

alpha and gamma follow cosine annealing from ``alpha_init`` to ``alpha_final`` (alpha_init / 100
when blank) and from ``gamma_init`` to ``gamma_final`` over the steps. In L0 (the number of
changed pixel values) the radius moves by at least 1 and the projection keeps the eps largest
changes. Targeted: m = max_{j != t} z_j - z_t. One forward-backward pass per step. Each image
returns x + delta* (x itself when no adversarial point was found) and ``minimal_norms`` holds
||delta*|| (inf when none was found; 0 for an image already misclassified).

Foolbox's ``FMNAttackLp`` is the reference this is checked against (``bench/minimal_norm.py``);
unlike Foolbox 3.3.4, the L2 step is projected onto the eps-ball (Foolbox's L2 projection scales
by norms / norms = 1, so its L2 radius never binds), and the L1 projection is onto the ball and
the box together (:func:`advlens.attacks.apgd_l1.project_l1_box`).
"""

from __future__ import annotations

import math

import torch

from .apgd_l1 import project_l1_box
from .base import Attack, Param, steps
from .losses import is_success, other_max
from .trajectory import Rows


def lp_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """The per-image norm of a batch of perturbations: ``L0`` counts changed values."""
    d = delta.flatten(1)
    if norm == "L0":
        return (d != 0).sum(1).to(d.dtype)
    if norm == "L1":
        return d.abs().sum(1)
    if norm == "L2":
        return d.norm(dim=1)
    if norm == "Linf":
        return d.abs().amax(1)
    raise ValueError(f"unknown norm {norm!r}: use L0, L1, L2 or Linf")


def _cosine(start: float, end: float, i: int, n: int) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * i / n)) / 2


class FMN(Attack):
    """FMN in L2, and the shared loop: the other norms override the projection and the dual norm."""

    name = "fmn_l2"
    title = "FMN (L2, minimal norm)"
    paper = "Pintor et al. 2021, arXiv 2102.12827"
    norm = None  # minimal-norm: no budget
    measure = "L2"  # the norm it minimises
    iterative = True
    PARAMS = (
        steps(100),
        Param("alpha_init", float, 1.0, 1e-6, 100.0, "", "initial step (L2 length of the normalised gradient step)"),
        Param("alpha_final", float, None, 1e-8, 100.0, "", "final step (blank: alpha_init / 100)", optional=True),
        Param("gamma_init", float, 0.05, 0.0, 1.0, "", "initial relative change of the radius per step"),
        Param("gamma_final", float, 0.001, 0.0, 1.0, "", "final relative change of the radius per step"),
    )

    def project(self, delta: torch.Tensor, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        d = delta.flatten(1)
        return (d * (eps[:, None] / d.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)).view_as(delta)

    def dual_norm(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.flatten(1).norm(dim=1)

    def _margin(self, logits, y, target):
        arange = torch.arange(len(logits), device=logits.device)
        if target is None:
            return logits[arange, y] - other_max(logits, y)
        return other_max(logits, target) - logits[arange, target]

    def _perturb(self, x, y, target):
        k, n_steps, p = len(x), self.steps, self.measure
        shape = (k,) + (1,) * (x.ndim - 1)
        alpha_final = self.alpha_init / 100 if self.alpha_final is None else self.alpha_final
        rows = Rows(x, y, target, n_steps)
        worst = lp_norm(torch.maximum(x, 1.0 - x), p) if p != "L0" else torch.full((k,), float(x[0].numel()))
        worst = worst.to(x.device)
        eps = torch.full((k,), 1.0 if p == "L0" else float("inf"), device=x.device)
        delta = torch.zeros_like(x)
        best = torch.zeros_like(x)
        best_norm = torch.full((k,), float("inf"), device=x.device)
        found = torch.zeros(k, dtype=torch.bool, device=x.device)
        for i in range(n_steps):
            alpha = _cosine(self.alpha_init, alpha_final, i, n_steps)
            gamma = _cosine(self.gamma_init, self.gamma_final, i, n_steps)
            grad, logits, m = self.loss_gradient(x + delta, lambda z: self._margin(z, y, target))
            with torch.no_grad():
                adv = is_success(logits, y, target)
                size = lp_norm(delta, p)
                closer = adv & (size <= best_norm)
                best[closer] = delta[closer]
                best_norm = torch.where(closer, size, best_norm)
                found |= adv
                self.record_step(rows, i, x + delta, logits, -m, last=i == n_steps - 1)
                if p == "L0":
                    shrink = torch.minimum(torch.minimum(eps - 1, torch.floor(eps * (1 - gamma))), best_norm)
                    eps = torch.where(adv, shrink, torch.maximum(eps + 1, torch.floor(eps * (1 + gamma))))
                    eps = eps.clamp_min(1.0)
                else:
                    reach = size + m.abs() / self.dual_norm(grad).clamp_min(1e-12)
                    grow = torch.where(found, eps * (1 + gamma), reach)
                    eps = torch.where(adv, torch.minimum(eps * (1 - gamma), best_norm), grow)
                eps = torch.minimum(eps, worst)
                step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
                delta = self.project(delta - alpha * step, x, eps)
                delta = (x + delta).clamp_(0.0, 1.0) - x
            if self.tick(i + 1, n_steps):
                break
        self.minimal_norms = torch.where(found, best_norm, torch.full_like(best_norm, float("inf"))).cpu()
        return x + best


class FMNLinf(FMN):
    name = "fmn_linf"
    title = "FMN (L-inf, minimal norm)"
    measure = "Linf"

    def project(self, delta, x, eps):
        e = eps.view(-1, *[1] * (delta.ndim - 1))
        return torch.minimum(torch.maximum(delta, -e), e)

    def dual_norm(self, grad):
        return grad.flatten(1).abs().sum(1)


class FMNL1(FMN):
    name = "fmn_l1"
    title = "FMN (L1, minimal norm)"
    measure = "L1"

    def project(self, delta, x, eps):
        return project_l1_box(x, delta, eps)

    def dual_norm(self, grad):
        return grad.flatten(1).abs().amax(1)


class FMNL0(FMN):
    name = "fmn_l0"
    title = "FMN (L0, minimal norm)"
    measure = "L0"

    def project(self, delta, x, eps):
        d = delta.flatten(1)
        keep = eps.long().clamp(1, d.shape[1]).view(-1, 1)
        threshold = d.abs().sort(1, descending=True).values.gather(1, keep - 1)
        return (d * (d.abs() >= threshold)).view_as(delta)


FMNL2 = FMN
