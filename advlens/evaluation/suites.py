"""Attack suites: which attacks a robustness evaluation runs, in which order, with which settings.

A suite is a cascade (Croce and Hein 2020, arXiv 2003.01690): each attack runs only on the images
that every earlier attack failed to break, and an image counts as robust only if it survives all
of them (the worst case per image). Each suite has an L-inf and an L2 form.

- ``standard``: AutoAttack's standard version. APGD-CE (100 iterations, one restart), APGD-T
  (the targeted DLR loss toward each of the 9 highest-ranked wrong classes, 100 iterations each),
  FAB-T (9 targets, 100 iterations each) and Square (5,000 queries, p_init 0.8, the schedule not
  rescaled), the settings of ``AutoAttack(version="standard")``. The figure to report.
- ``quick``: APGD-CE then APGD-DLR, 100 iterations each: the two white-box losses, for live use
  and for the check after training. Without the targeted and black-box attacks it can miss
  what they find, so a quick figure is an upper bound on robust accuracy.
- ``rand``: AutoAttack's version for randomized defenses: APGD-CE and APGD-DLR, 100 iterations
  each, every gradient averaged over 20 random draws (EOT). A randomized defended model asked for
  the standard suite gets this one (:func:`advlens.evaluation.cascade.evaluate`).

On a defended model (a base model behind input transforms) every gradient attack is adaptive
unless the evaluation is asked to be plain: BPDA through non-differentiable transforms, EOT over
20 draws for random ones (:mod:`advlens.attacks.adaptive`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..budget import format_budget
from ..registry import Registry

NORMS = ("Linf", "L2")


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    linf: tuple[tuple[str, dict], ...]  # (attack name, its settings besides eps), in cascade order
    l2: tuple[tuple[str, dict], ...]
    note: str = ""
    strength: int = 0  # which suite's figure wins when two evaluations of a model disagree

    def attacks(self, norm: str = "Linf") -> tuple[tuple[str, dict], ...]:
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}: use one of {', '.join(NORMS)}")
        return self.linf if norm == "Linf" else self.l2

    def describe(self, norm: str = "Linf") -> str:
        parts = []
        for name, params in self.attacks(norm):
            shown = ", ".join(f"{k}={v}" for k, v in params.items())
            parts.append(f"{name} ({shown})" if shown else name)
        return " -> ".join(parts)

    def protocol(self, norm: str, eps: float, n: int, seed: int) -> str:
        """The sentence every figure of this suite carries."""
        return f"{self.title}, {norm} eps {format_budget(eps, norm)}, n = {n}, seed {seed}: {self.describe(norm)}"


def _standard(norm_suffix: str) -> tuple[tuple[str, dict], ...]:
    return (
        (f"apgd_ce{norm_suffix}", {"steps": 100, "restarts": 1}),
        (f"apgd_t{norm_suffix}", {"steps": 100, "targets": 9}),
        (f"fab_t{norm_suffix}", {"steps": 100, "targets": 9}),
        (f"square{norm_suffix}", {"steps": 5000, "p_init": 0.8, "rescale": False}),
    )


def _quick(norm_suffix: str) -> tuple[tuple[str, dict], ...]:
    return ((f"apgd_ce{norm_suffix}", {"steps": 100, "restarts": 1}), (f"apgd_dlr{norm_suffix}", {"steps": 100}))


def _rand(norm_suffix: str) -> tuple[tuple[str, dict], ...]:
    return (
        (f"apgd_ce{norm_suffix}", {"steps": 100, "restarts": 1, "eot": 20}),
        (f"apgd_dlr{norm_suffix}", {"steps": 100, "eot": 20}),
    )


SUITES: Registry[Suite] = Registry(
    "suite",
    (
        Suite(
            "standard",
            "standard (AutoAttack: APGD-CE, APGD-T, FAB-T, Square-5000)",
            _standard(""),
            _standard("_l2"),
            "AutoAttack's standard version (Croce and Hein 2020)",
            strength=2,
        ),
        Suite(
            "quick",
            "quick (APGD-CE + APGD-DLR)",
            _quick(""),
            _quick("_l2"),
            "not AutoAttack's standard version: an upper bound on robust accuracy",
            strength=1,
        ),
        Suite(
            "rand",
            "rand (AutoAttack for randomized defenses: APGD-CE + APGD-DLR, EOT over 20 draws)",
            _rand(""),
            _rand("_l2"),
            "AutoAttack's rand version (Croce and Hein 2020), for randomized defenses",
            strength=2,
        ),
    ),
    ValueError,
)


def get_suite(name: str) -> Suite:
    return SUITES.lookup(name)
