"""Robustness evaluation: attack suites run as a cascade, with per-image records and intervals.

>>> from advlens.evaluation import evaluate                                   # doctest: +SKIP
>>> result = evaluate(model, x, y, eps=0.1, suite="quick")                     # doctest: +SKIP
>>> result.robust_accuracy, result.interval                                   # doctest: +SKIP
"""

from __future__ import annotations

from .cascade import Evaluation, evaluate
from .checklist import Check, run_checklist
from .intervals import clopper_pearson
from .suites import SUITES, Suite, get_suite

__all__ = ["SUITES", "Check", "Evaluation", "Suite", "clopper_pearson", "evaluate", "get_suite", "run_checklist"]
