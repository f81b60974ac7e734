"""C&W-L2 (Carlini and Wagner 2017, arXiv 1608.04644), in tanh space with Adam.

With x' = (tanh(w) + 1) / 2 (always in [0,1]), Adam minimises over w

    ||x' - x||_2^2 + c * max(Z_y - max_{i != y} Z_i, -kappa)          (untargeted)
    ||x' - x||_2^2 + c * max(max_{i != t} Z_i - Z_t, -kappa)          (targeted)

on the logits Z, starting from x. A binary search over c per image follows each run: after a
success c is lowered (midpoint with the last failure), after a failure it is raised (midpoint,
or times 10 while no success has been seen). The result is, per image, the adversarial point of
smallest L2 norm found across the search; images never broken are returned unchanged. A run
stops early when the total cost has not decreased over a tenth of its steps.

The recorded loss is the negative logit margin (it crosses 0 on success); ``restart`` numbers
the binary-search step.
"""

from __future__ import annotations

import torch

from .base import Attack, Param, steps
from .losses import margin
from .trajectory import Rows


class CWL2(Attack):
    name = "cw"
    title = "C&W (L2)"
    paper = "Carlini and Wagner 2017, arXiv 1608.04644"
    norm = None
    iterative = True
    CPU_PRESET = {"steps": 50, "binary_steps": 2, "lr": 0.01}  # 100 Adam steps instead of 500
    PARAMS = (
        Param("c", float, 1.0, 1e-6, 1e6, "", "initial weight of the misclassification term"),
        Param("kappa", float, 0.0, 0.0, 1000.0, "", "confidence: the logit margin the attack asks for"),
        steps(100, 10_000, "Adam steps per value of c"),
        Param("lr", float, 0.01, 1e-6, 10.0, "", "Adam learning rate"),
        Param("binary_steps", int, 5, 1, 50, "", "binary-search steps over c"),
    )

    def _perturb(self, x, y, target):
        n = len(x)
        dev = x.device
        w0 = torch.atanh((x * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        c = torch.full((n,), float(self.c), device=dev)
        lo = torch.zeros(n, device=dev)
        hi = torch.full((n,), 1e10, device=dev)
        best_l2 = torch.full((n,), float("inf"), device=dev)
        best_x = x.clone()
        total = self.steps * self.binary_steps
        check_every = max(self.steps // 10, 1)
        for b in range(self.binary_steps):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=self.lr)
            found = torch.zeros(n, dtype=torch.bool, device=dev)
            prev = float("inf")
            for t in range(self.steps):
                x_new = (torch.tanh(w) + 1) / 2
                logits = self.model(x_new)
                l2sq = (x_new - x).square().flatten(1).sum(1)
                m = margin(logits, y, target)
                cost = l2sq + c * m.clamp(min=-self.kappa)
                (grad,) = torch.autograd.grad(cost.sum(), w)
                with torch.no_grad():
                    m = m.detach()
                    succ = (m < 0) & (m <= -self.kappa)
                    l2 = l2sq.detach().sqrt()
                    improved = succ & (l2 < best_l2)
                    best_l2 = torch.where(improved, l2, best_l2)
                    best_x[improved] = x_new.detach()[improved]
                    found |= succ
                self.record_step(Rows(x, y, target, total, restart=b), t, x_new, logits, -m, last=t == self.steps - 1)
                w.grad = grad
                opt.step()
                if self.tick(b * self.steps + t + 1, total):
                    break
                if (t + 1) % check_every == 0:
                    now = float(cost.detach().sum())
                    if now > prev * 0.9999:
                        break
                    prev = now
            if self.stopped:
                break
            hi = torch.where(found, torch.minimum(hi, c), hi)
            lo = torch.where(found, lo, torch.maximum(lo, c))
            c = torch.where(found | (hi < 1e9), (lo + hi) / 2, c * 10)
        return best_x
