"""FAB-T, the targeted Fast Adaptive Boundary attack, L-inf and L2 (Croce and Hein 2020, arXiv 1907.02044).

A minimal-norm attack used with a budget, as in AutoAttack. At the current point x_k, linearise
g = z_t - z_y (the target's logit minus the label's) and project both x_k and the clean image x
onto the hyperplane g(x_k) + grad g . (z - x_k) = 0 inside the [0, 1] box, in the attack's norm
(:mod:`advlens.attacks.boundary`): steps d_k and d_0. Then

    x_{k+1} = clip((1 - a) (x_k + eta d_k) + a (x + eta d_0)),   a = min(|d_k| / (|d_k| + |d_0|), alpha_max)

(eta = 1.05 overshoots the boundary; a leans toward the clean image). When x_{k+1} is
misclassified, keep it if it is the closest such point yet, and step back toward x:
x_{k+1} = x + beta (x_{k+1} - x), beta = 0.9. So the search walks along the decision boundary
toward x, and each image ends with the closest misclassified point found.

Budgeted, an image is broken only when that point lies within eps; the others are returned
unchanged. Untargeted use runs once toward each of the ``targets`` classes that the clean logits
rank highest after the true one (AutoAttack's standard version: 9 targets, 100 iterations, one
run each, the first from x itself), each run only on the images not broken yet. Every iteration
costs one forward-backward pass and one forward pass. With an explicit ``target`` it is one run
that succeeds on reaching that class.
"""

from __future__ import annotations

import torch

from .base import Attack, Param, l2_eps, linf_eps, restarts, steps
from .boundary import project_l2, project_linf
from .losses import other_max
from .trajectory import Rows


class FABT(Attack):
    name = "fab_t"
    title = "FAB-T (L-inf)"
    paper = "Croce and Hein 2020, arXiv 1907.02044"
    norm = "Linf"
    iterative = True
    PARAMS = (
        linf_eps(),
        steps(100),
        Param("targets", int, 9, 1, 999, "", "target classes, the highest-ranked wrong ones first"),
        restarts(1),
        Param("alpha_max", float, 0.1, 0.0, 1.0, "", "the largest weight of the step from the clean image"),
        Param("eta", float, 1.05, 1.0, 2.0, "", "overshoot past the linearised boundary"),
        Param("beta", float, 0.9, 0.0, 1.0, "", "backward step toward the clean image after a success"),
    )

    # ----- the norm (FABTL2 overrides these) ---------------------------------------------------
    @staticmethod
    def size(d: torch.Tensor) -> torch.Tensor:
        return d.flatten(1).abs().amax(1)

    @staticmethod
    def project(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return project_linf(t, w, b)

    def random_start(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.rand_like(x).mul_(2).sub_(1)
        return x + 0.5 * float(self.eps) * noise / self.size(noise).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))

    # ----- the attack -------------------------------------------------------------------------
    def _perturb(self, x, y, target):
        if target is not None:
            return self._closest_within_eps(x, y, target, restart=0, total=self.steps * self.restarts, index=None)
        with torch.no_grad():
            logits = self.model(x)
        order = logits.argsort(1, descending=True)
        broken = logits.argmax(1) != y
        x_out = x.clone()
        n_targets = min(self.targets, self.num_classes - 1)
        total = self.steps * self.restarts * n_targets
        run = 0
        for r in range(n_targets):
            for restart in range(self.restarts):
                index = (~broken).nonzero()[:, 0]
                if index.numel() == 0 or self.stopped:
                    return x_out
                ranked = order[index]
                # the r-th highest class that is not the label (the label is first for a correct image)
                others = ranked[ranked != y[index, None]].view(len(index), -1)
                x_adv, found = self._run(x[index], y[index], others[:, r], run, total, index, len(x), restart > 0)
                x_out[index[found]] = x_adv[found]
                broken[index[found]] = True
                run += 1
        return x_out

    def _closest_within_eps(self, x, y, target, restart, total, index):
        x_out = x.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for r in range(self.restarts):
            rows = (~done).nonzero()[:, 0]
            if rows.numel() == 0 or self.stopped:
                break
            x_adv, found = self._run(x[rows], y[rows], target[rows], r, total, rows, len(x), r > 0, targeted=True)
            x_out[rows[found]] = x_adv[found]
            done[rows[found]] = True
        return x_out

    def _run(self, x, y, t, run, total, index, n, random_start, targeted=False):
        """One FAB run toward classes ``t``; returns (closest point found, found within eps)."""
        k, shape = len(x), (len(x),) + (1,) * (x.ndim - 1)
        x0 = x.flatten(1)
        rows = Rows(
            x, y, t if targeted else None, self.restarts * max(1, self.targets) * (self.steps + 1), run, index, n
        )
        x1 = self.random_start(x).clamp_(0.0, 1.0) if random_start else x.clone()
        best = x.clone()
        best_size = torch.full((k,), float("inf"), device=x.device)
        arange = torch.arange(k, device=x.device)
        for i in range(self.steps):
            x1.requires_grad_(True)
            logits = self.model(x1)
            g = logits[arange, t] - logits[arange, y]
            (grad,) = torch.autograd.grad(g.sum(), x1)
            x1.requires_grad_(False)
            with torch.no_grad():
                self.record_step(rows, i, x1, logits, -(logits[arange, y] - other_max(logits, y)))
                w = grad.flatten(1)
                b = (w * x1.flatten(1)).sum(1) - g
                d = self.project(torch.cat((x1.flatten(1), x0)), torch.cat((w, w)), torch.cat((b, b)))
                d1, d2 = d[:k].view_as(x), d[k:].view_as(x)
                a1 = self.size(d1).clamp_min(1e-8).view(shape)
                a2 = self.size(d2).clamp_min(1e-8).view(shape)
                alpha = (a1 / (a1 + a2)).clamp(0.0, self.alpha_max)
                x1 = ((x1 + self.eta * d1) * (1 - alpha) + (x + self.eta * d2) * alpha).clamp_(0.0, 1.0)
                pred = self.model(x1).argmax(1)
                adv = pred == t if targeted else pred != y
                size = self.size(x1 - x)
                closer = adv & (size < best_size)
                best[closer] = x1[closer]
                best_size = torch.where(closer, size, best_size)
                x1[adv] = x[adv] + (x1[adv] - x[adv]) * self.beta
            if self.tick(run * self.steps + i + 1, total):
                break
        found = best_size <= float(self.eps) + 1e-7
        if bool(found.any()):  # exactly inside the ball: the box clip keeps [0, 1]
            best[found] = self.clip_to_ball(best[found], x[found])
        return best, found

    def clip_to_ball(self, point: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        eps = float(self.eps)
        return torch.minimum(torch.maximum(point, x - eps), x + eps).clamp_(0.0, 1.0)


class FABTL2(FABT):
    name = "fab_t_l2"
    title = "FAB-T (L2)"
    norm = "L2"
    PARAMS = (l2_eps(),) + FABT.PARAMS[1:]

    @staticmethod
    def size(d: torch.Tensor) -> torch.Tensor:
        return d.flatten(1).norm(dim=1)

    @staticmethod
    def project(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return project_l2(t, w, b)

    def random_start(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn_like(x)
        return x + 0.5 * float(self.eps) * noise / self.size(noise).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))

    def clip_to_ball(self, point: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        delta = (point - x).flatten(1)
        scale = (float(self.eps) / delta.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
        return (x + (delta * scale[:, None]).view_as(x)).clamp_(0.0, 1.0)
