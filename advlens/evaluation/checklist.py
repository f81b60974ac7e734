"""The gradient-masking checklist: signs that an evaluation's attacks were too weak for the model.

After Carlini et al. 2019 ("On Evaluating Adversarial Robustness", arXiv 1902.06705, section 5) and
Athalye, Carlini and Wagner 2018 ("Obfuscated Gradients Give a False Sense of Security", arXiv
1802.00420). Each check reruns a cheap variant of the evaluation on the images the evaluation
used and compares; its verdict is ``pass`` (no sign of masking), ``warn`` (a sign: the robust
accuracy is likely too high) or ``skip`` (it cannot be run here, with the reason).

Each check is a small class registered in :data:`CHECKS`, in the order they run:

- :class:`LargeBudget`: accuracy falls to about 0 at a large budget (an unbounded attack must always win);
- :class:`BlackBox`: black-box (Square) is not stronger than white-box (gradients that mislead white-box attacks);
- :class:`Converged`: more iterations and restarts do not lower accuracy much further (the attack had converged);
- :class:`RandomNoise`: random noise of the same size does much less than the attack (the attack does something);
- :class:`UsableGradients`: gradients are finite and non-zero on most inputs (shattered or vanishing gradients);
- :class:`Transfer`: a transfer attack from an undefended surrogate is not stronger than white-box.

On a defended model the checks use the same attacks as the evaluation: adaptive (BPDA, EOT) when it
was, plain when it was not, so the list flags a transform defense under plain attacks (zero
gradients, Square and noise stronger than white-box) and clears it under BPDA and EOT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..attacks import ATTACKS
from ..budget import format_budget
from ..data import to_float
from ..models.defended import bpda_view, is_random
from ..models.modes import eval_mode, model_device
from ..registry import Registry
from .cascade import Evaluation, build_attack

LARGE_EPS = 0.5  # half the pixel range: any image can be turned into a mid-grey one
LARGE_L2 = 0.5  # per pixel, scaled by sqrt(dimension): the L2 ball that holds the L-inf one above
TOLERANCE = 0.02  # two points of accuracy: differences below this are noise on a few hundred images


@dataclass(frozen=True)
class Check:
    name: str
    verdict: str  # "pass", "warn" or "skip"
    measured: str  # what was measured, in words and numbers
    explanation: str  # one sentence: why the check matters

    def to_dict(self) -> dict:
        return {"name": self.name, "verdict": self.verdict, "measured": self.measured, "explanation": self.explanation}


def _accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    device = model_device(model)
    with torch.no_grad(), eval_mode(model):
        return float((model(x.to(device)).argmax(1).cpu() == y).float().mean()) if len(x) else 0.0


def _attacked(model, x, y, name: str, seed: int, adaptive: bool = False, **params) -> torch.Tensor:
    torch.manual_seed(seed)
    device = model_device(model)
    eps = params.pop("eps")
    return build_attack(model, name, eps, params, adaptive)(x.to(device), y.to(device)).cpu()


@dataclass
class Setting:
    """What every check reads: the model, the images the evaluation attacked, its result, the budgets.

    ``xs``, ``ys`` are the images the evaluation attacked (those classified correctly); accuracies on
    them become accuracies on all ``n`` images with :meth:`share`."""

    model: object
    xs: torch.Tensor
    ys: torch.Tensor
    result: Evaluation
    surrogate: object
    seed: int
    square_queries: int
    stronger: tuple[int, int]
    adaptive: bool
    large: float  # the large budget of the first check, in the evaluation's norm

    @property
    def norm(self) -> str:
        return self.result.norm

    @property
    def suffix(self) -> str:  # attack names per norm: apgd_ce, apgd_ce_l2, apgd_ce_l1
        return {"Linf": "", "L2": "_l2", "L1": "_l1"}[self.norm]

    @property
    def white_box(self) -> float:
        """What the evaluation's gradient attacks left standing (before its black-box ones)."""
        counts = self.result.broken_counts().items()
        black_box = sum(n for name, n in counts if not ATTACKS[name].uses_gradients)
        return self.result.robust_accuracy + black_box / self.result.n

    def share(self, acc_on_correct: float) -> float:
        """Accuracy on the attacked (correct) images -> accuracy on all n."""
        return acc_on_correct * len(self.xs) / self.result.n

    def accuracy(self, x_adv: torch.Tensor) -> float:
        return self.share(_accuracy(self.model, x_adv, self.ys))

    def attacked(self, name: str, seed: int, adaptive: bool = False, model=None, **params) -> torch.Tensor:
        return _attacked(self.model if model is None else model, self.xs, self.ys, name, seed, adaptive, **params)


class MaskingCheck:
    """One check of the list: ``name`` (what should hold), ``why`` (one sentence), :meth:`run`."""

    name = ""
    why = ""

    def run(self, s: Setting) -> Check:
        raise NotImplementedError

    def verdict(self, ok: bool, measured: str) -> Check:
        return Check(self.name, "pass" if ok else "warn", measured, self.why)

    def skip(self, reason: str, why: str = "") -> Check:
        return Check(self.name, "skip", reason, why)


CHECKS: Registry[type[MaskingCheck]] = Registry("checklist check", error=ValueError)  # in the order they run


@CHECKS.add
class LargeBudget(MaskingCheck):
    name = "accuracy falls to about 0 at a large budget"
    why = "An attack with a budget this large must win; accuracy left standing means the gradients mislead it."

    def run(self, s: Setting) -> Check:
        big = s.accuracy(s.attacked("apgd_ce" + s.suffix, s.seed, s.adaptive, eps=s.large, steps=50))
        return self.verdict(
            big <= TOLERANCE, f"{big * 100:.1f}% under APGD-CE-50 at eps {format_budget(s.large, s.norm)}"
        )


@CHECKS.add
class BlackBox(MaskingCheck):
    name = "black-box (Square) is not stronger than white-box"
    why = "A black-box attack beating white-box ones means the gradients are masked, not the model robust."

    def run(self, s: Setting) -> Check:
        sq = s.accuracy(s.attacked("square" + s.suffix, s.seed, eps=s.result.eps, steps=s.square_queries))
        white = s.white_box
        return self.verdict(
            sq >= white - TOLERANCE,
            f"Square ({s.square_queries} queries) alone {sq * 100:.1f}% against the white-box attacks' {white * 100:.1f}%",
        )


@CHECKS.add
class Converged(MaskingCheck):
    name = "more iterations and restarts do not lower accuracy much further"
    why = "If more iterations or restarts still lower accuracy, the evaluation had not converged."

    def run(self, s: Setting) -> Check:
        steps, restarts = s.stronger
        x_adv = s.attacked(
            "apgd_ce" + s.suffix, s.seed + 1, s.adaptive, eps=s.result.eps, steps=steps, restarts=restarts
        )
        strong, robust = s.accuracy(x_adv), s.result.robust_accuracy
        return self.verdict(
            strong >= robust - TOLERANCE,
            f"APGD-CE-{steps} x {restarts} restarts {strong * 100:.1f}% against {robust * 100:.1f}%",
        )


@CHECKS.add
class RandomNoise(MaskingCheck):
    name = "random noise of the same size does much less than the attack"
    why = "An attack that does no better than random noise of its size is not using the gradients."

    def run(self, s: Setting) -> Check:
        noise = s.accuracy(random_noise(s.xs, s.result.eps, s.norm, s.seed))
        robust, base = s.result.robust_accuracy, s.result.clean_accuracy
        return self.verdict(
            noise - robust >= TOLERANCE or robust >= base - TOLERANCE,
            f"random noise of size eps {noise * 100:.1f}% against the attack's {robust * 100:.1f}% (clean {base * 100:.1f}%)",
        )


@CHECKS.add
class UsableGradients(MaskingCheck):
    name = "gradients are finite and non-zero on most inputs"
    why = "Zero, infinite or NaN gradients (shattered or vanishing) leave gradient attacks blind."

    def run(self, s: Setting) -> Check:
        grads = _input_gradients(bpda_view(s.model) if s.adaptive else s.model, s.xs, s.ys)
        norms = grads.flatten(1).norm(dim=1)
        usable = float((torch.isfinite(norms) & (norms > 0)).float().mean())
        return self.verdict(usable >= 0.95, f"{usable * 100:.1f}% of the images have a finite, non-zero input gradient")


@CHECKS.add
class Transfer(MaskingCheck):
    name = "a transfer attack from an undefended surrogate is not stronger than white-box"
    why = "Adversarial examples made on another model should not beat attacks that see this model's gradients."

    def run(self, s: Setting) -> Check:
        if s.surrogate is None or s.surrogate is s.model:
            return self.skip("no undefended surrogate of the same inputs and classes", self.why)
        attack = {"Linf": "pgd", "L2": "pgd_l2", "L1": "apgd_ce_l1"}[s.norm]
        transfer = s.accuracy(s.attacked(attack, s.seed, model=s.surrogate, eps=s.result.eps, steps=20))
        robust = s.result.robust_accuracy
        return self.verdict(
            transfer >= robust - TOLERANCE,
            f"PGD-20 on the surrogate, transferred: {transfer * 100:.1f}% against white-box {robust * 100:.1f}%",
        )


def random_noise(xs: torch.Tensor, eps: float, norm: str, seed: int) -> torch.Tensor:
    """``xs`` plus random noise of size ``eps``: random signs (L-inf), a random direction of length
    eps (L2), random signs with an L1 norm of eps (L1); clipped to [0, 1]."""
    torch.manual_seed(seed)
    signs = torch.randint(0, 2, xs.shape).float().mul_(2).sub_(1)
    if norm == "L2":
        signs = torch.randn(xs.shape)
        signs /= signs.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (xs.ndim - 1))
    elif norm == "L1":
        signs /= float(xs[0].numel())
    return (xs + eps * signs).clamp(0, 1)


def large_budget(x: torch.Tensor, norm: str) -> float:
    """LARGE_EPS in L-inf; the L2 (L1) ball that holds that L-inf ball."""
    dims = float(x[0].numel())
    return LARGE_EPS if norm == "Linf" else LARGE_L2 * (dims**0.5 if norm == "L2" else dims)


def run_checklist(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    result: Evaluation,
    surrogate=None,
    seed: int = 0,
    square_queries: int = 1000,
    stronger: tuple[int, int] = (200, 3),
    progress: Callable[[int, int], object] | None = None,
) -> list[Check]:
    """The checks of :data:`CHECKS` for ``result`` (an evaluation of ``model`` on ``x``, ``y``).
    ``surrogate`` is an undefended model with the same inputs and classes, for the transfer check;
    ``stronger`` is the (steps, restarts) of the convergence check's longer APGD-CE run (100 x 2 on a
    random defense, whose every step already costs 20 draws). The attacks are adaptive when the
    evaluation's were. ``progress(done, total)`` is called after each check."""
    x, y = to_float(x), torch.as_tensor(y).long()
    adaptive = result.adaptations.startswith("adaptive")
    if adaptive and is_random(model):
        stronger = (100, 2)
    keep = result.clean_correct  # the images the evaluation attacked
    xs, ys = x[keep], y[keep]
    if len(xs) == 0:
        why = "no image is classified correctly, so there is nothing to attack"
        return [Check(name, "skip", why, "") for name in CHECKS]
    large = large_budget(x, result.norm)
    setting = Setting(model, xs, ys, result, surrogate, seed, square_queries, stronger, adaptive, large)
    checks: list[Check] = []
    for check in CHECKS.values():
        checks.append(check().run(setting))
        if progress is not None:
            progress(len(checks), len(CHECKS))
    return checks


def _input_gradients(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    device = model_device(model)
    out = []
    with eval_mode(model):
        for s in range(0, len(x), batch_size):
            xb = x[s : s + batch_size].to(device).requires_grad_(True)
            loss = F.cross_entropy(model(xb), y[s : s + batch_size].to(device), reduction="sum")
            (g,) = torch.autograd.grad(loss, xb)
            out.append(g.cpu())
    return torch.cat(out)
