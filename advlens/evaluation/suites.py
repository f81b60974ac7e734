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

L1 (``--norm L1``; Croce and Hein 2021, arXiv 2103.01208): the L1 APGD with its sparsity-adaptive
step (:mod:`advlens.attacks.apgd_l1`). ``standard`` follows ``AutoAttack(norm="L1",
version="standard")``: APGD-CE with 5 restarts and APGD-T over 5 targets, both on the schedule
that starts at 3 eps and 2 eps (``large_reps``), then FAB-T (L1) over 9 targets, then L1 Square
(5,000 queries, p_init 0.8, :class:`advlens.attacks.square.SquareL1`).

On a defended model (a base model behind input transforms) every gradient attack is adaptive
unless the evaluation is asked to be plain: BPDA through non-differentiable transforms, EOT over
20 draws for random ones (:mod:`advlens.attacks.adaptive`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..budget import format_budget
from ..registry import Registry

NORMS = ("Linf", "L2", "L1")


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    linf: tuple[tuple[str, dict], ...]  # (attack name, its settings besides eps), in cascade order
    l2: tuple[tuple[str, dict], ...]
    note: str = ""
    strength: int = 0  # which suite's figure wins when two evaluations of a model disagree
    l1: tuple[tuple[str, dict], ...] = ()
    l1_note: str = ""  # what the L1 version leaves out, in the protocol of every L1 figure

    def attacks(self, norm: str = "Linf") -> tuple[tuple[str, dict], ...]:
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}: use one of {', '.join(NORMS)}")
        if norm == "L1" and not self.l1:
            raise ValueError(f"the {self.name} suite has no L1 version")
        return {"Linf": self.linf, "L2": self.l2, "L1": self.l1}[norm]

    def describe(self, norm: str = "Linf") -> str:
        parts = []
        for name, params in self.attacks(norm):
            shown = ", ".join(f"{k}={v}" for k, v in params.items())
            parts.append(f"{name} ({shown})" if shown else name)
        return " -> ".join(parts)

    def protocol(self, norm: str, eps: float, n: int, seed: int) -> str:
        """The sentence every figure of this suite carries."""
        text = f"{self.title}, {norm} eps {format_budget(eps, norm)}, n = {n}, seed {seed}: {self.describe(norm)}"
        return f"{text} ({self.l1_note})" if norm == "L1" and self.l1_note else text


def _standard(norm_suffix: str) -> tuple[tuple[str, dict], ...]:
    return (
        (f"apgd_ce{norm_suffix}", {"steps": 100, "restarts": 1}),
        (f"apgd_t{norm_suffix}", {"steps": 100, "targets": 9}),
        (f"fab_t{norm_suffix}", {"steps": 100, "targets": 9}),
        (f"square{norm_suffix}", {"steps": 5000, "p_init": 0.8, "rescale": False}),
    )


def _quick(norm_suffix: str) -> tuple[tuple[str, dict], ...]:
    return ((f"apgd_ce{norm_suffix}", {"steps": 100, "restarts": 1}), (f"apgd_dlr{norm_suffix}", {"steps": 100}))


# AutoAttack's L1 standard version: more restarts, 5 targets, the 3 eps / 2 eps / eps schedule
_STANDARD_L1 = (
    ("apgd_ce_l1", {"steps": 100, "restarts": 5, "large_reps": True}),
    ("apgd_t_l1", {"steps": 100, "targets": 5, "large_reps": True}),
    ("fab_t_l1", {"steps": 100, "targets": 9}),
    ("square_l1", {"steps": 5000, "p_init": 0.8, "rescale": False}),
)
_QUICK_L1 = (("apgd_ce_l1", {"steps": 100, "restarts": 1}), ("apgd_dlr_l1", {"steps": 100}))
_RAND_L1 = (
    ("apgd_ce_l1", {"steps": 100, "restarts": 1, "large_reps": False, "eot": 20}),
    ("apgd_dlr_l1", {"steps": 100, "large_reps": False, "eot": 20}),
)


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
            l1=_STANDARD_L1,
        ),
        Suite(
            "quick",
            "quick (APGD-CE + APGD-DLR)",
            _quick(""),
            _quick("_l2"),
            "not AutoAttack's standard version: an upper bound on robust accuracy",
            strength=1,
            l1=_QUICK_L1,
        ),
        Suite(
            "rand",
            "rand (AutoAttack for randomized defenses: APGD-CE + APGD-DLR, EOT over 20 draws)",
            _rand(""),
            _rand("_l2"),
            "AutoAttack's rand version (Croce and Hein 2020), for randomized defenses",
            strength=2,
            l1=_RAND_L1,
        ),
    ),
    ValueError,
)


# Not an attack cascade and needs no budget: accuracy under the 15 common corruptions at 5 severities
# (Hendrycks and Dietterich 2019; RobustBench's ``corruptions`` threat model), run by
# :mod:`advlens.evaluation.corruption_suite` (``evaluate --suite corruptions``).
CORRUPTIONS_SUITE = "corruptions"


def get_suite(name: str) -> Suite:
    return SUITES.lookup(name)
