"""The gradient-masking checklist: signs that an evaluation's attacks were too weak for the model.

After Carlini et al. 2019 ("On Evaluating Adversarial Robustness", arXiv 1902.06705, section 5) and
Athalye, Carlini and Wagner 2018 ("Obfuscated Gradients Give a False Sense of Security", arXiv
1802.00420). Each check reruns a cheap variant of the evaluation on the images the evaluation
used and compares; its verdict is ``pass`` (no sign of masking), ``warn`` (a sign: the robust
accuracy is likely too high) or ``skip`` (it cannot be run here, with the reason).

1. accuracy falls to about 0 at a large budget (an unbounded attack must always win);
2. black-box (Square) is not stronger than white-box (gradients that mislead white-box attacks);
3. more iterations and restarts do not lower accuracy much further (the attack had converged);
4. random noise of the same size does much less than the attack (the attack does something);
5. gradients are finite and non-zero on most inputs (shattered or vanishing gradients);
6. a transfer attack from an undefended surrogate is not stronger than white-box.

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
    """The six checks for ``result`` (an evaluation of ``model`` on ``x``, ``y``). ``surrogate`` is an
    undefended model with the same inputs and classes, for the transfer check; ``stronger`` is the
    (steps, restarts) of check 3's longer APGD-CE run (100 x 2 on a random defense, whose every
    step already costs 20 draws). The attacks are adaptive when the evaluation's were.
    ``progress(done, total)`` is called after each check."""
    x, y = to_float(x), torch.as_tensor(y).long()
    adaptive = result.adaptations.startswith("adaptive")
    if adaptive and is_random(model):
        stronger = (100, 2)
    keep = result.clean_correct  # the images the evaluation attacked
    xs, ys = x[keep], y[keep]
    eps, robust = result.eps, result.robust_accuracy
    base = result.clean_accuracy
    norm = result.norm
    suffix = {"Linf": "", "L2": "_l2", "L1": "_l1"}[norm]
    dims = float(x[0].numel())  # the L2 (L1) ball below holds the L-inf one of LARGE_EPS
    large = LARGE_EPS if norm == "Linf" else LARGE_L2 * (dims**0.5 if norm == "L2" else dims)
    # the white-box part of the evaluation: what its gradient attacks left standing
    black_box = sum(n for name, n in result.broken_counts().items() if not ATTACKS[name].uses_gradients)
    white = robust + black_box / result.n
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        if progress is not None:
            progress(len(checks), len(_NAMES))

    if len(xs) == 0:
        why = "no image is classified correctly, so there is nothing to attack"
        return [Check(n, "skip", why, "") for n in _NAMES]

    def share(acc_on_correct: float) -> float:  # accuracy on the correct images -> on all n
        return acc_on_correct * len(xs) / result.n

    big = share(_accuracy(model, _attacked(model, xs, ys, "apgd_ce" + suffix, seed, adaptive, eps=large, steps=50), ys))
    add(
        Check(
            _NAMES[0],
            "pass" if big <= TOLERANCE else "warn",
            f"{big * 100:.1f}% under APGD-CE-50 at eps {format_budget(large, norm)}",
            "An attack with a budget this large must win; accuracy left standing means the gradients mislead it.",
        )
    )
    if norm == "L1":  # no L1 Square here (issue 28)
        add(Check(_NAMES[1], "skip", "no L1 black-box attack here (AutoAttack's L1 Square is not implemented)", ""))
    else:
        sq = share(
            _accuracy(model, _attacked(model, xs, ys, "square" + suffix, seed, eps=eps, steps=square_queries), ys)
        )
        add(
            Check(
                _NAMES[1],
                "pass" if sq >= white - TOLERANCE else "warn",
                f"Square ({square_queries} queries) alone {sq * 100:.1f}% against the white-box attacks' {white * 100:.1f}%",
                "A black-box attack beating white-box ones means the gradients are masked, not the model robust.",
            )
        )
    strong = share(
        _accuracy(
            model,
            _attacked(
                model, xs, ys, "apgd_ce" + suffix, seed + 1, adaptive, eps=eps, steps=stronger[0], restarts=stronger[1]
            ),
            ys,
        )
    )
    add(
        Check(
            _NAMES[2],
            "pass" if strong >= robust - TOLERANCE else "warn",
            f"APGD-CE-{stronger[0]} x {stronger[1]} restarts {strong * 100:.1f}% against {robust * 100:.1f}%",
            "If more iterations or restarts still lower accuracy, the evaluation had not converged.",
        )
    )
    torch.manual_seed(seed)
    signs = torch.randint(0, 2, xs.shape).float().mul_(2).sub_(1)
    if norm == "L2":  # a random direction of length eps
        signs = torch.randn(xs.shape)
        signs /= signs.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (xs.ndim - 1))
    elif norm == "L1":  # random signs with an L1 norm of eps
        signs /= float(xs[0].numel())
    noisy = (xs + eps * signs).clamp(0, 1)
    noise = share(_accuracy(model, noisy, ys))
    add(
        Check(
            _NAMES[3],
            "pass" if noise - robust >= TOLERANCE or robust >= base - TOLERANCE else "warn",
            f"random noise of size eps {noise * 100:.1f}% against the attack's {robust * 100:.1f}% (clean {base * 100:.1f}%)",
            "An attack that does no better than random noise of its size is not using the gradients.",
        )
    )
    grads = _input_gradients(bpda_view(model) if adaptive else model, xs, ys)
    norms = grads.flatten(1).norm(dim=1)
    usable = float((torch.isfinite(norms) & (norms > 0)).float().mean())
    add(
        Check(
            _NAMES[4],
            "pass" if usable >= 0.95 else "warn",
            f"{usable * 100:.1f}% of the images have a finite, non-zero input gradient",
            "Zero, infinite or NaN gradients (shattered or vanishing) leave gradient attacks blind.",
        )
    )
    if surrogate is None or surrogate is model:
        add(Check(_NAMES[5], "skip", "no undefended surrogate of the same inputs and classes", _TRANSFER))
    else:
        transfer_attack = {"Linf": "pgd", "L2": "pgd_l2", "L1": "apgd_ce_l1"}[norm]
        adv = _attacked(surrogate, xs, ys, transfer_attack, seed, eps=eps, steps=20)
        transfer = share(_accuracy(model, adv, ys))
        add(
            Check(
                _NAMES[5],
                "pass" if transfer >= robust - TOLERANCE else "warn",
                f"PGD-20 on the surrogate, transferred: {transfer * 100:.1f}% against white-box {robust * 100:.1f}%",
                _TRANSFER,
            )
        )
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


_TRANSFER = "Adversarial examples made on another model should not beat attacks that see this model's gradients."
_NAMES = (
    "accuracy falls to about 0 at a large budget",
    "black-box (Square) is not stronger than white-box",
    "more iterations and restarts do not lower accuracy much further",
    "random noise of the same size does much less than the attack",
    "gradients are finite and non-zero on most inputs",
    "a transfer attack from an undefended surrogate is not stronger than white-box",
)
