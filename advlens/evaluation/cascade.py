"""Run a suite as a cascade over a set of images, and keep what happened to each image.

Design. The images are chosen by the caller with the one subset rule (:mod:`advlens.data.subset`: the
first n in an official order, a class-stratified sample otherwise), so evaluations are comparable. The
clean predictions come first: a misclassified image is not robust and is not attacked. Then each
attack of the suite runs, batch by batch, on the images still robust when it starts (its
*stage*); an image whose adversarial point is misclassified is marked broken by that attack, with
its perturbation's L-inf and L2 norms and the point itself (so a page can open it).

Batch ``b`` of attack ``p`` is seeded with ``seed * 1000 + p * 100 + b``, so a run is repeatable
and a batch does the same thing wherever it runs. That gives the two other ways to run:

- *resume*: :class:`Evaluation` records the attack and the batch it is at; ``evaluate(...,
  resume=state)`` continues after the last finished batch (``after_batch`` is called after each
  one, for a job to save it);
- *shards* (:class:`Shard`, e.g. ``torchrun``): every rank forms the same batches of a stage and
  runs those whose number is its rank modulo the world size; at the end of each attack the ranks
  exchange what they broke, so every rank starts the next stage with the same robust set and the
  merged result equals the single-process one.

The result holds the protocol (suite, norm, settings, eps, n, seed), so every figure it produces
names its attack.

A defended model (:mod:`advlens.models.defended`) is attacked adaptively unless ``adaptive`` is
off: the gradient attacks get BPDA through non-differentiable transforms and EOT over 20 draws
through random ones (FAB-T, which has no such options, attacks the BPDA view), and a random model
asked for the standard suite gets AutoAttack's ``rand`` version, as Croce and Hein recommend.
The protocol says which adaptations ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..attacks import ATTACKS
from ..attacks.adaptive import EOT_DRAWS, adaptive_settings
from ..budget import format_budget
from ..data import to_float
from ..intervals import clopper_pearson
from ..models.defended import bpda_view, is_defended, is_random, needs_bpda
from ..models.modes import eval_mode, model_device
from .suites import Suite, get_suite

ProgressFn = Callable[[int, int], object]


@dataclass(frozen=True)
class Shard:
    """This process's part of a sharded evaluation; ``gather(obj)`` returns every rank's ``obj``."""

    rank: int
    world: int
    gather: Callable[[object], list]

    def mine(self, batch: int) -> bool:
        return batch % self.world == self.rank


@dataclass
class Evaluation:
    """One model at one budget under one suite, per image and in summary."""

    suite: Suite
    norm: str
    eps: float
    seed: int
    clean_correct: torch.Tensor  # (n,) bool
    robust: torch.Tensor  # (n,) bool: correct clean and not broken by any attack
    broken_by: list[str]  # per image: the attack that broke it, "" if none (or misclassified clean)
    linf: torch.Tensor  # (n,) the breaking perturbation's L-inf norm (nan when not broken)
    l2: torch.Tensor
    x_adv: dict[int, torch.Tensor] = field(default_factory=dict)  # image index -> its adversarial point
    seconds: dict[str, float] = field(default_factory=dict)  # per attack
    stopped: bool = False
    position: int = 0  # the attack running (len(attacks) when finished)
    next_batch: int = 0  # the first batch of that attack not done yet
    stage: torch.Tensor | None = None  # the images that attack runs on (robust when it started)
    adaptations: str = ""  # the adaptive attacks used on a defended model ("" for none)

    @property
    def attacks(self) -> tuple[tuple[str, dict], ...]:
        return self.suite.attacks(self.norm)

    @property
    def finished(self) -> bool:
        return self.position >= len(self.attacks)

    @property
    def n(self) -> int:
        return len(self.robust)

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.float().mean()) if self.n else 0.0

    @property
    def robust_accuracy(self) -> float:
        return float(self.robust.float().mean()) if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Clopper-Pearson interval of the robust accuracy."""
        return clopper_pearson(int(self.robust.sum()), self.n)

    def broken_counts(self) -> dict[str, int]:
        return {name: self.broken_by.count(name) for name, _ in self.attacks}

    def protocol(self) -> str:
        text = self.suite.protocol(self.norm, self.eps, self.n, self.seed)
        return f"{text}; {self.adaptations}" if self.adaptations else text

    def to_dict(self) -> dict:
        lo, hi = self.interval
        return {
            "suite": self.suite.name,
            "suite_title": self.suite.title,
            "norm": self.norm,
            "protocol": self.protocol(),
            "note": self.suite.note,
            "attacks": [{"name": n, "params": p} for n, p in self.attacks],
            "adaptations": self.adaptations,
            "eps": self.eps,
            "eps_shown": format_budget(self.eps, self.norm),
            "n": self.n,
            "seed": self.seed,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "robust_interval_95": [lo, hi],
            "broken_by_attack": self.broken_counts(),
            "seconds_by_attack": {k: round(v, 3) for k, v in self.seconds.items()},
            "stopped": self.stopped,
            "finished": self.finished,
            "images": [
                {
                    "index": i,
                    "clean_correct": bool(self.clean_correct[i]),
                    "robust": bool(self.robust[i]),
                    "broken_by": self.broken_by[i],
                    "linf": None if torch.isnan(self.linf[i]) else float(self.linf[i]),
                    "l2": None if torch.isnan(self.l2[i]) else float(self.l2[i]),
                }
                for i in range(self.n)
            ],
        }


def clean_predictions(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = model_device(model)
    with torch.no_grad(), eval_mode(model):
        return torch.cat(
            [model(x[s : s + batch_size].to(device)).argmax(1).cpu() for s in range(0, len(x), batch_size)]
        )


def start(
    model, x, y, eps: float, suite: Suite, norm: str, seed: int, batch_size: int, adaptations: str = ""
) -> Evaluation:
    """The evaluation before any attack: the clean predictions and the first stage."""
    n = len(x)
    torch.manual_seed(seed)  # a random defense's clean predictions repeat too
    correct = clean_predictions(model, x, batch_size) == y
    nan = torch.full((n,), float("nan"))
    return Evaluation(
        suite, norm, float(eps), seed, correct, correct.clone(), [""] * n, nan, nan.clone(), adaptations=adaptations
    )


def adapted_suite(model, suite: Suite, adaptive: bool) -> tuple[Suite, str]:
    """The suite to run on ``model`` and the adaptations, in words ("" for an undefended model or a
    plain evaluation; "plain" attacks on a defended model say so, since their figure is not to be trusted)."""
    if not is_defended(model):
        return suite, ""
    if not adaptive:
        return suite, "plain attacks on a defended model (no BPDA, no EOT): not a robustness figure"
    if is_random(model) and suite.name == "standard":
        suite = get_suite("rand")
    parts = []
    if needs_bpda(model):
        bpda = [f"{t.token} by {t.approximation}" for t in model.chain if not t.differentiable]
        parts.append("BPDA through " + ", ".join(bpda))
    if is_random(model):
        parts.append(f"EOT over {EOT_DRAWS} draws")
    return suite, "adaptive: " + "; ".join(parts) if parts else ""


def build_attack(model, name: str, eps: float, params: dict, adaptive: bool):
    """Attack ``name`` on ``model`` with the suite's settings, made adaptive on a defended model."""
    cls = ATTACKS[name]
    extra = adaptive_settings(model, cls) if adaptive else {}
    target = model
    if adaptive and cls.uses_gradients and "bpda" not in {p.name for p in cls.params()}:
        target = bpda_view(model) if needs_bpda(model) else model  # FAB-T: through the BPDA view
    return cls(target, eps=float(eps), **{**params, **extra})


def evaluate(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    suite: str | Suite = "quick",
    *,
    norm: str = "Linf",
    batch_size: int = 128,
    seed: int = 0,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Evaluation | None = None,
    after_batch: Callable[[Evaluation], object] | None = None,
    shard: Shard | None = None,
    adaptive: bool = True,
) -> Evaluation:
    """Evaluate ``model`` on images ``x`` (uint8 or float in [0, 1]) with labels ``y`` at ``eps``
    in ``norm`` (L-inf or L2). ``progress(done, total)`` counts image-attacks; ``should_stop()``
    is polled after each batch (the result then has ``stopped`` and can be resumed). ``adaptive``
    (on a defended model): BPDA and EOT, as the module docstring says."""
    suite = get_suite(suite) if isinstance(suite, str) else suite
    suite, adaptations = adapted_suite(model, suite, adaptive)
    if batch_size < 1:
        raise ValueError("the batch size must be at least 1")
    suite.attacks(norm)  # an unknown norm is an error before any work
    device = model_device(model)
    x = to_float(x)
    y = torch.as_tensor(y).long()
    result = resume if resume is not None else start(model, x, y, eps, suite, norm, seed, batch_size, adaptations)
    result.stopped = False
    attacks = result.attacks
    while not result.finished:
        name, params = attacks[result.position]
        if result.stage is None:
            result.stage = result.robust.nonzero()[:, 0]
        stage = result.stage
        batches = (len(stage) + batch_size - 1) // batch_size
        t0 = time.perf_counter()
        mine: dict[int, tuple] = {}  # what this process broke in this stage (for the other shards)
        while result.next_batch < batches:
            b = result.next_batch
            if shard is None or shard.mine(b):
                rows = stage[b * batch_size : (b + 1) * batch_size]
                torch.manual_seed(seed * 1000 + result.position * 100 + b)
                attack = build_attack(model, name, eps, params, adaptive)
                x_adv = attack(x[rows].to(device), y[rows].to(device))
                with torch.no_grad(), eval_mode(model):
                    fooled = (model(x_adv).argmax(1) != y[rows].to(device)).cpu()
                delta = (x_adv.cpu() - x[rows]).flatten(1)
                for j in fooled.nonzero()[:, 0].tolist():
                    i = int(rows[j])
                    mine[i] = (float(delta[j].abs().max()), float(delta[j].norm()), x_adv[j].cpu())
                    _mark(result, i, name, *mine[i])
            result.next_batch = b + 1
            result.seconds[name] = result.seconds.get(name, 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            if progress is not None:
                progress(*_progress(result, batch_size))
            if shard is None:
                if after_batch is not None:
                    after_batch(result)
                if should_stop is not None and should_stop():
                    result.stopped = True
                    return result
        if shard is not None:
            parts = shard.gather((mine, result.seconds.get(name, 0.0)))
            for broken, _ in parts:
                for i, record in broken.items():
                    _mark(result, i, name, *record)
            result.seconds[name] = max(seconds for _, seconds in parts)
        result.position += 1
        result.next_batch = 0
        result.stage = None
        if shard is None and after_batch is not None:
            after_batch(result)
    return result


def _mark(result: Evaluation, i: int, name: str, linf: float, l2: float, point: torch.Tensor) -> None:
    result.robust[i] = False
    result.broken_by[i] = name
    result.linf[i] = linf
    result.l2[i] = l2
    result.x_adv[i] = point


def _progress(result: Evaluation, batch_size: int) -> tuple[int, int]:
    """(image-attacks done, an estimate of the total): later stages are assumed as large as now."""
    per_stage = int(result.clean_correct.sum())
    done = result.position * per_stage + min(len(result.stage), result.next_batch * batch_size)
    remaining = (len(result.attacks) - result.position - 1) * int(result.robust.sum())
    return done, max(done, result.position * per_stage + len(result.stage) + remaining)
