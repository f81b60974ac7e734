"""Attack suites: which attacks a robustness evaluation runs, in which order, with which settings.

A suite is a cascade (Croce and Hein 2020, arXiv 2003.01690): each attack runs only on the images
that every earlier attack failed to break, and an image counts as robust only if it survives all
of them (the worst case per image).

- ``quick``: APGD-CE then APGD-DLR, 100 iterations each, one restart: the two white-box losses of
  AutoAttack, for live use. It is not AutoAttack's standard version, which adds the targeted
  attacks and the black-box Square attack; a quick figure is an upper bound on robust accuracy.
- ``ce-targeted``: APGD-CE, then APGD-T over the 9 highest-ranked wrong classes (100 iterations
  per class): AutoAttack's standard L-inf suite without FAB-T and Square, which are not
  implemented in advlens yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    attacks: tuple[tuple[str, dict], ...]  # (attack name, its settings besides eps), in cascade order
    note: str = ""

    def describe(self) -> str:
        parts = []
        for name, params in self.attacks:
            shown = ", ".join(f"{k}={v}" for k, v in params.items())
            parts.append(f"{name} ({shown})" if shown else name)
        return " -> ".join(parts)


SUITES: Registry[Suite] = Registry(
    "suite",
    (
        Suite(
            "quick",
            "quick (APGD-CE + APGD-DLR)",
            (("apgd_ce", {"steps": 100, "restarts": 1}), ("apgd_dlr", {"steps": 100, "restarts": 1})),
            "not AutoAttack's standard version: an upper bound on robust accuracy",
        ),
        Suite(
            "ce-targeted",
            "APGD-CE + APGD-T (9 targets)",
            (("apgd_ce", {"steps": 100, "restarts": 1}), ("apgd_t", {"steps": 100, "targets": 9})),
            "AutoAttack's standard L-inf suite without FAB-T and Square: an upper bound on robust accuracy",
        ),
    ),
    ValueError,
)


def get_suite(name: str) -> Suite:
    return SUITES.lookup(name)
