"""APGD, Auto-PGD, L-inf and L2 (Croce and Hein 2020, arXiv 2003.01690), with the CE or the DLR loss.

A step-size-free PGD. From a random point of the eps-ball, with eta_0 = 2 * eps and alpha = 0.75:

    z_{k+1} = P(x_k + eta_k * sign(grad L(x_k)))
    x_{k+1} = P(x_k + alpha (z_{k+1} - x_k) + (1 - alpha)(x_k - x_{k-1}))     (alpha = 1 at k = 0)

where P projects onto the ball and [0, 1]. At checkpoints w_j (w_0 = 0, w_1 = 0.22 N, then gaps
shrinking by 0.03 N down to 0.06 N) the step is halved, and the iterate restarts from the best
point found so far, for each image where either
  1. the loss increased in fewer than rho = 0.75 of the steps since the last checkpoint, or
  2. the step was not halved at the last checkpoint and the best loss has not improved since.
Each image returns the last adversarial iterate found, else its highest-loss point; restarts
run on the images not broken yet. L is CE (APGD-CE) or the shift- and scale-invariant DLR loss
(APGD-DLR, see :func:`advlens.attacks.losses.dlr_objective`). N + 1 gradient evaluations per run
(times ``eot`` with EOT; ``bpda`` and ``eot`` are the adaptive options of :mod:`.adaptive`).

L-inf ascends along sign(grad) and clips to the cube; L2 (the ``*_l2`` classes) starts on the
eps-sphere, ascends along grad / ||grad||_2 and rescales the perturbation into the ball, as in
the authors' code. The geometry is the only difference: three methods, overridden by
:class:`L2Geometry`.
"""

from __future__ import annotations

import torch

from .adaptive import adaptive_params
from .base import Attack, AttackConfigError, Param, l2_eps, linf_eps, restarts, steps, worst_case_over_restarts
from .losses import ce_objective, dlr_objective, is_success
from .pgd import flat_norm, linf_bounds, project_linf_
from .trajectory import Rows


def checkpoints(n_iter: int) -> list[int]:
    """The iterations after which APGD checks its progress (as in the authors' code)."""
    first = max(int(0.22 * n_iter), 1)
    least = max(int(0.06 * n_iter), 1)
    decr = max(int(0.03 * n_iter), 1)
    out, at, gap = [], first, first
    while at <= n_iter:
        out.append(at)
        gap = max(gap - decr, least)
        at += gap
    return out


class APGD(Attack):
    name = "apgd_ce"
    title = "APGD-CE"
    paper = "Croce and Hein 2020, arXiv 2003.01690"
    norm = "Linf"
    iterative = True
    loss = "ce"
    RHO = Param(
        "rho",
        float,
        0.75,
        0.0,
        1.0,
        "",
        "halve the step when the loss rose in fewer than this fraction of the steps since the last checkpoint",
    )
    PARAMS = (linf_eps(), steps(100), restarts(1), RHO, *adaptive_params())

    def succeeded(self, logits, y, target):
        """Per image: is this point adversarial (the target reached; any wrong class when untargeted)."""
        return is_success(logits, y, target)

    def objective(self, logits, y, target):
        return (dlr_objective if self.loss == "dlr" else ce_objective)(logits, y, target)

    def check_config(self) -> None:
        if self.loss == "dlr":
            self._check_classes(3)

    def _check_classes(self, need: int) -> None:
        if self.num_classes < need:
            raise AttackConfigError(f"the DLR loss needs at least {need} classes; the model has {self.num_classes}")

    def _perturb(self, x, y, target):
        if self.loss == "dlr" and target is not None:
            self._check_classes(4)  # the targeted DLR uses the 4th-largest logit
        total = self.steps * self.restarts

        def run_one(xs, ys, ts, restart, index):
            return self._run(xs, ys, ts, restart, total, index, len(x))

        return worst_case_over_restarts(self, x, y, target, run_one)

    # ----- the geometry of the ball (L2Geometry overrides these three) -----------------------
    def start(self, x: torch.Tensor, eps: float) -> torch.Tensor:
        """A random point of the ball: a uniform direction scaled to the cube's surface."""
        noise = torch.rand_like(x).mul_(2).sub_(1)
        return (x + eps * noise / noise.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))).clamp_(
            0.0, 1.0
        )

    def ascend(self, x_adv: torch.Tensor, grad: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        return x_adv + step * grad.sign()

    def projector(self, x: torch.Tensor, eps: float):
        """A function that projects a point onto the ball around ``x`` and the [0, 1] box, in place."""
        lo, hi = linf_bounds(x, torch.full((), eps, device=x.device))
        return lambda point: project_linf_(point, lo, hi)

    # ----- the loop -----------------------------------------------------------------------------
    def _run(self, x, y, target, restart, total, index, n):
        n_iter, eps, k = self.steps, float(self.eps), len(x)
        entries = self.restarts * (n_iter + 1)
        rows = Rows(x, y, target, entries, restart=restart, index=index, n=n)
        shape = (k,) + (1,) * (x.ndim - 1)
        project = self.projector(x, eps)

        def evaluate(point):
            return self.loss_gradient(point, lambda z: self.objective(z, y, target))

        x_adv = self.start(x, eps)
        grad, logits, loss = evaluate(x_adv)
        found = self.succeeded(logits, y, target)
        x_best_adv = x_adv.clone()
        x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss.clone()
        history = torch.empty(n_iter + 1, k, device=x.device)
        history[0] = loss
        self.record_step(rows, 0, x_adv, logits, loss)
        step = torch.full(shape, 2.0 * eps, device=x.device)
        x_old = x_adv.clone()
        checks = set(checkpoints(n_iter))
        last_check, loss_best_last = 0, loss_best.clone()
        reduced_last = torch.ones(k, dtype=torch.bool, device=x.device)
        for i in range(n_iter):
            with torch.no_grad():
                a = 0.75 if i > 0 else 1.0
                z = project(self.ascend(x_adv, grad, step))
                x_new = project(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_old))
                x_old, x_adv = x_adv, x_new
            grad, logits, loss = evaluate(x_adv)
            with torch.no_grad():
                succ = self.succeeded(logits, y, target)
                x_best_adv[succ] = x_adv[succ]
                found |= succ
                history[i + 1] = loss
                improved = loss > loss_best
                x_best[improved] = x_adv[improved]
                grad_best[improved] = grad[improved]
                loss_best = torch.where(improved, loss, loss_best)
            self.record_step(rows, i + 1, x_adv, logits, loss, last=i == n_iter - 1)
            if i + 1 in checks:
                with torch.no_grad():
                    span = i + 1 - last_check
                    rises = (history[last_check + 1 : i + 2] > history[last_check : i + 1]).sum(0)
                    oscillating = rises <= span * self.rho
                    stalled = ~reduced_last & (loss_best_last >= loss_best)
                    reduce = oscillating | stalled
                    reduced_last, loss_best_last, last_check = reduce, loss_best.clone(), i + 1
                    if bool(reduce.any()):
                        step[reduce] /= 2.0
                        x_adv[reduce] = x_best[reduce]
                        grad[reduce] = grad_best[reduce]
            if self.tick(restart * n_iter + i + 1, total):
                break
        x_out = torch.where(found.view(shape), x_best_adv, x_best)
        return x_out, loss_best, found


class APGDDLR(APGD):
    name = "apgd_dlr"
    title = "APGD-DLR"
    loss = "dlr"


class APGDT(APGD):
    """APGD-T: APGD with the targeted DLR loss, once toward each of the ``targets`` classes that the
    clean logits rank highest after the true one (AutoAttack's standard version: 9 targets, 100
    steps each, one restart per target), each run only on the images not misclassified yet. As in
    AutoAttack, a point counts as adversarial as soon as it is misclassified, whatever the target.
    With an explicit ``target`` it is one targeted run that succeeds on reaching that class."""

    name = "apgd_t"
    title = "APGD-T"
    loss = "dlr"
    restarts = 1  # one run per target class: the targets are the restarts
    PARAMS = (
        linf_eps(),
        steps(100),
        Param("targets", int, 9, 1, 999, "", "target classes, the highest-ranked wrong ones first"),
        APGD.RHO,
        *adaptive_params(),
    )

    def check_config(self) -> None:
        self._check_classes(4)  # the targeted DLR uses the 4th-largest logit

    def succeeded(self, logits, y, target):
        return logits.argmax(1) != y if self._untargeted else is_success(logits, y, target)

    def _perturb(self, x, y, target):
        self._untargeted = target is None
        if target is not None:
            return self._run(x, y, target, 0, self.steps, None, len(x))[0]
        with torch.no_grad():
            logits = self.model(x)
        order = logits.argsort(1, descending=True)
        broken = logits.argmax(1) != y  # misclassified already: nothing to attack
        x_best = x.clone()
        n_targets = min(self.targets, self.num_classes - 1)
        for r in range(n_targets):
            index = (~broken).nonzero()[:, 0]
            if index.numel() == 0:
                break
            ranked = order[index]
            # the r-th highest class that is not the label (the label is first for a correct image)
            others = ranked[ranked != y[index, None]].view(len(index), -1)
            x_adv, _, found = self._run(x[index], y[index], others[:, r], r, self.steps * n_targets, index, len(x))
            x_best[index] = x_adv
            broken[index[found]] = True
            if self.stopped:
                break
        return x_best


class L2Geometry:
    """The L2 ball for APGD: start on the eps-sphere, ascend along the normalised gradient, and
    rescale the perturbation into the ball before clipping to the box (Croce and Hein's code)."""

    norm = "L2"

    def start(self, x: torch.Tensor, eps: float) -> torch.Tensor:
        noise = torch.randn_like(x)
        return (x + eps * noise / flat_norm(noise).clamp_min(1e-12)).clamp_(0.0, 1.0)

    def ascend(self, x_adv: torch.Tensor, grad: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        return x_adv + step * grad / flat_norm(grad).clamp_min(1e-12)

    def projector(self, x: torch.Tensor, eps: float):
        def project(point: torch.Tensor) -> torch.Tensor:
            delta = point.sub_(x)
            delta.mul_((eps / flat_norm(delta).clamp_min(1e-12)).clamp_(max=1.0))
            return delta.add_(x).clamp_(0.0, 1.0)

        return project


class APGDL2(L2Geometry, APGD):
    name = "apgd_ce_l2"
    title = "APGD-CE (L2)"
    PARAMS = (l2_eps(),) + APGD.PARAMS[1:]


class APGDDLRL2(L2Geometry, APGDDLR):
    name = "apgd_dlr_l2"
    title = "APGD-DLR (L2)"
    PARAMS = APGDL2.PARAMS


class APGDTL2(L2Geometry, APGDT):
    name = "apgd_t_l2"
    title = "APGD-T (L2)"
    PARAMS = (l2_eps(),) + APGDT.PARAMS[1:]
