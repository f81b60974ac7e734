"""What an evaluation job evaluates: models, dataset, budgets, suite, n. Checked before anything runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..budget import BudgetError, parse_budget
from ..data.subset import MAX_INDICES, SUBSET_SEED
from .suites import NORMS, SUITES

MAX_MODELS = 8
MAX_BUDGETS = 12
MAX_N = 100_000
MAX_REPEATS = 10


class EvalConfigError(ValueError):
    """A bad evaluation setting; the message says what to change."""


@dataclass
class EvalSpec:
    models: list[str]
    dataset: str
    eps: list[float]
    suite: str = "standard"
    norm: str = "Linf"
    n: int = 0  # n images of the split chosen by the subset rule (advlens.data.subset; 0: all of them)
    split: str = "test"
    root: str | None = None  # a local folder with the dataset's files
    seed: int = 0
    batch_size: int = 128
    checklist: bool = True  # run the gradient-masking checklist after each (model, budget)
    surrogate: str | None = None  # an undefended model for the checklist's transfer check
    device: str = "auto"
    name: str = ""
    adaptive: bool = True  # BPDA and EOT on defended models (False: plain attacks, to see a defense "work")
    repeats: int = 1  # runs with seeds seed, seed+1, ... of each random defended model, for their spread
    offset: int = 0  # skip the rule's first `offset` images (held-out images: another window of the same order)
    indices: list[int] | None = None  # exactly these dataset indices instead of the rule (repeat a subset)
    subset_seed: int = SUBSET_SEED  # the stratified rule's seed (datasets not in their official order)
    legacy_first_n: bool = False  # queued before the subset rule: resume on the first n, as it started

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EvalSpec:
        if not isinstance(data, dict):
            raise EvalConfigError("an evaluation config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EvalConfigError(f"unknown evaluation setting(s): {', '.join(unknown)}")
        if "subset_seed" not in data and "legacy_first_n" not in data:
            data = {**data, "legacy_first_n": True}  # a job stored before the subset rule existed
        try:
            spec = cls(**data)
        except TypeError as exc:
            raise EvalConfigError(f"missing evaluation setting: {exc}") from None
        return spec.validated()

    def validated(self) -> EvalSpec:
        """Check and normalise every field; :class:`EvalConfigError` on the first problem."""
        if isinstance(self.models, str):
            self.models = [self.models]
        if (
            not isinstance(self.models, list)
            or not self.models
            or not all(isinstance(m, str) and m for m in self.models)
        ):
            raise EvalConfigError("choose at least one model")
        if len(self.models) > MAX_MODELS:
            raise EvalConfigError(f"at most {MAX_MODELS} models per evaluation")
        if len(set(self.models)) != len(self.models):
            raise EvalConfigError("a model is listed twice")
        if self.suite not in SUITES:
            raise EvalConfigError(f"unknown suite {self.suite!r}; use one of: {', '.join(SUITES)}")
        if self.norm not in NORMS:
            raise EvalConfigError(f"unknown norm {self.norm!r}; use one of: {', '.join(NORMS)}")
        if not isinstance(self.eps, list) or not self.eps:
            raise EvalConfigError("give at least one budget")
        if len(self.eps) > MAX_BUDGETS:
            raise EvalConfigError(f"at most {MAX_BUDGETS} budgets per evaluation")
        try:
            self.eps = [parse_budget(e, self.norm) for e in self.eps]
        except BudgetError as exc:
            raise EvalConfigError(str(exc)) from None
        if len(set(self.eps)) != len(self.eps):
            raise EvalConfigError("a budget is listed twice")
        for key, lo, hi in (
            ("n", 0, MAX_N),
            ("seed", 0, 2**31 - 1),
            ("batch_size", 1, 4096),
            ("repeats", 1, MAX_REPEATS),
            ("offset", 0, 10_000_000),
            ("subset_seed", 0, 2**31 - 1),
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise EvalConfigError(f"{key} must be a whole number in [{lo}, {hi}], not {value!r}")
        if self.indices is not None:
            if not isinstance(self.indices, list) or not 0 < len(self.indices) <= MAX_INDICES:
                raise EvalConfigError(f"indices must be a list of 1 to {MAX_INDICES:,} image indices")
            if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in self.indices):
                raise EvalConfigError("indices must be whole numbers >= 0")
            if len(set(self.indices)) != len(self.indices):
                raise EvalConfigError("an image index is listed twice")
            if self.offset:
                raise EvalConfigError("give either indices or an offset, not both")
        if self.split not in ("test", "train"):
            raise EvalConfigError("split must be test or train")
        for key in ("checklist", "adaptive", "legacy_first_n"):
            if not isinstance(getattr(self, key), bool):
                raise EvalConfigError(f"{key} must be true or false")
        for key in ("dataset", "device", "name"):
            if not isinstance(getattr(self, key), str):
                raise EvalConfigError(f"{key} must be text")
        return self

    def parts(self) -> list[tuple[str, float]]:
        """(model, eps) in the order they run."""
        return [(m, e) for m in self.models for e in self.eps]
