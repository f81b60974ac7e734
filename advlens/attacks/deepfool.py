"""DeepFool (Moosavi-Dezfooli, Fawzi and Frossard 2016, arXiv 1511.04599), L2, batched.

At each step the classifier is linearised around the current point; for every candidate class
k among the top-k (other than the true class y) the distance to the linearised boundary is

    d_k = |f_k| / ||w_k||_2,   f_k = z_k - z_y,   w_k = grad_x (z_k - z_y)

and the sample moves onto the nearest one: r = (|f_k*| + 1e-4) / ||w_k*||^2 * w_k*. The steps add
up in r_tot and the image is x' = clip_[0,1](x + (1 + overshoot) r_tot). Each sample stops as soon
as it is misclassified, so r_tot approximates the smallest L2 perturbation that flips it.
Targeted: the same step toward the boundary between the target t and the current class.

The recorded loss is the negative logit margin, max_{i != y} z_i - z_y (it crosses 0 on success).
"""

from __future__ import annotations

import torch

from .base import Attack, Param, steps
from .losses import is_success, margin
from .pgd import flat_norm
from .trajectory import Rows


class DeepFool(Attack):
    name = "deepfool"
    title = "DeepFool (L2)"
    paper = "Moosavi-Dezfooli et al. 2016, arXiv 1511.04599"
    norm = None
    iterative = True
    CPU_PRESET = {"steps": 10, "candidates": 3}  # 3 class gradients per step instead of 10
    PARAMS = (
        steps(50, 1000, "linearisation steps (at most)"),
        Param("overshoot", float, 0.02, 0.0, 1.0, "", "scale the final perturbation by (1 + overshoot)"),
        Param("candidates", int, 10, 2, 10_000, "", "how many top classes to consider as the nearest boundary"),
    )

    def _perturb(self, x, y, target):
        k = min(self.candidates, self.num_classes)
        if target is None:
            with torch.no_grad():
                cands = self.model(x).scatter(1, y[:, None], float("-inf")).topk(k - 1, dim=1).indices
        r_tot = torch.zeros_like(x)
        x_adv = x.clone()
        active = torch.ones(len(x), dtype=torch.bool, device=x.device)
        for t in range(self.steps + 1):
            x_in = x_adv.clone().requires_grad_(True)
            logits = self.model(x_in)
            succ = is_success(logits.detach(), y, target)
            self.record_step(
                Rows(x, y, target, self.steps + 1),
                t,
                x_adv,
                logits,
                -margin(logits.detach(), y, target),
                last=t == self.steps,
            )
            active &= ~succ
            if t == self.steps or not bool(active.any()):
                break
            if target is None:
                r = self._nearest_step(x_in, logits, y, cands)
            else:
                current = logits.detach().argmax(1)
                r, _ = self._linear_step(x_in, logits, target, current, retain=False)
            with torch.no_grad():
                r_tot[active] += r[active]
                x_adv = (x + (1.0 + self.overshoot) * r_tot).clamp_(0.0, 1.0)
            if self.tick(t + 1, self.steps):
                break
        return x_adv

    @staticmethod
    def _linear_step(x_in, logits, to_cls, from_cls, retain: bool):
        """The step onto the linearised boundary where z_to = z_from."""
        f = logits.gather(1, to_cls[:, None])[:, 0] - logits.gather(1, from_cls[:, None])[:, 0]
        (w,) = torch.autograd.grad(f.sum(), x_in, retain_graph=retain)
        w_norm = flat_norm(w).clamp_min_(1e-8)
        f = f.detach().abs().view_as(w_norm)
        return (f + 1e-4) / w_norm.square() * w, (f / w_norm).flatten()

    def _nearest_step(self, x_in, logits, y, cands):
        best_r, best_d = None, None
        for j in range(cands.shape[1]):
            r, d = self._linear_step(x_in, logits, cands[:, j], y, retain=j < cands.shape[1] - 1)
            if best_r is None:
                best_r, best_d = r, d
            else:
                better = d < best_d
                best_d = torch.where(better, d, best_d)
                best_r[better] = r[better]
        return best_r
