"""Robustness evaluation: attack suites run as a cascade, with per-image records and intervals.

>>> from advlens.evaluation import evaluate                                   # doctest: +SKIP
>>> result = evaluate(model, x, y, eps=0.1, suite="standard")                 # doctest: +SKIP
>>> result.robust_accuracy, result.interval                                   # doctest: +SKIP

Jobs (queued, cancelled, resumed through the run store) are in :mod:`advlens.evaluation.jobs`,
the exports (HTML, CSV, figures) in :mod:`advlens.evaluation.report`.
"""

from __future__ import annotations

from ..intervals import clopper_pearson
from .cascade import Evaluation, Shard, evaluate
from .checklist import Check, run_checklist
from .spec import EvalConfigError, EvalSpec
from .suites import NORMS, SUITES, Suite, get_suite

__all__ = [
    "NORMS",
    "SUITES",
    "Check",
    "EvalConfigError",
    "EvalSpec",
    "Evaluation",
    "Shard",
    "Suite",
    "clopper_pearson",
    "evaluate",
    "get_suite",
    "run_checklist",
]
