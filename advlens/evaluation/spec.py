"""What an evaluation job evaluates: models, dataset, budgets, suite, n. Checked before anything runs."""

from __future__ import annotations

from dataclasses import asdict

from ..budget import BudgetError, parse_budget
from ..data.subset import MAX_INDICES, SUBSET_SEED
from ..params import REQUIRED, Param, ParamError, declared, json_value
from .suites import NORMS, SUITES

MAX_MODELS = 8
MAX_BUDGETS = 12
MAX_N = 100_000
MAX_REPEATS = 10


class EvalConfigError(ValueError):
    """A bad evaluation setting; the message says what to change."""


# The one declaration of an evaluation: the dataclass fields, the checks of EvalSpec.validated() and
# the flags of `python -m advlens evaluate` (advlens.cli.evaluate) come from it. The image choice
# (n, offset, indices, subset_seed) has the flags every command shares (advlens.cli.args.add_image_choice).
# fmt: off
FIELDS: tuple[Param, ...] = (
    Param("models", list, REQUIRED, help="zoo model names or checkpoints; a defended model is written "
          "base+transform, e.g. digits_small_cnn+jpeg75", label="Models", flags=("--model",)),
    Param("dataset", str, REQUIRED, help="dataset name (see `datasets`)", label="Dataset"),
    Param("eps", list, REQUIRED, help="budgets: 0.1,0.15 or 8/255,16/255 (L2: 0.5,1.0); none for --suite "
          "corruptions", label="Budgets"),
    Param("suite", str, "standard", choices=tuple(SUITES), label="Attack suite",
          help=f"the attack suite: {', '.join(SUITES)}; the CLI also runs corruptions (15 common corruptions "
          "x 5 severities)"),
    Param("norm", str, "Linf", choices=tuple(NORMS), help="the threat model's norm", label="Norm"),
    Param("n", int, 0, 0, MAX_N, help="n images of the split chosen by the subset rule (advlens.data.subset; "
          "0: all of them)", label="Images", flags=("--n", "--num-images"), tags=("image_choice",)),
    Param("split", str, "test", choices=("test", "train"), help="the dataset split", label="Split"),
    Param("root", str, None, optional=True, help="local folder of the dataset files", label="Dataset folder"),
    Param("seed", int, 0, 0, 2**31 - 1, help="random seed of the attacks", label="Seed"),
    Param("batch_size", int, 128, 1, 4096, help="images per batch", label="Batch size"),
    Param("checklist", bool, True, help="run the gradient-masking checklist after each (model, budget) "
          "(CLI default: with the standard suite)", label="Gradient-masking checklist"),
    Param("surrogate", str, None, optional=True, help="an undefended model for the checklist's transfer check",
          label="Surrogate"),
    Param("device", str, "auto", help="auto, cpu, cuda or cuda:N", label="Device"),
    Param("name", str, "", help="a name for the evaluation job", label="Name"),
    Param("adaptive", bool, True, help="BPDA and EOT on defended models; --plain attacks them without, to "
          "see a defense 'work' (not a robustness figure)", label="Adaptive attacks", flags=("--adaptive", "--plain")),
    Param("repeats", int, 1, 1, MAX_REPEATS, help="runs with seeds seed, seed+1, ... of each random defended "
          "model, for their spread", label="Repeats"),
    Param("offset", int, 0, 0, 10_000_000, help="skip the rule's first `offset` images (held-out images)",
          label="Offset", tags=("image_choice",)),
    Param("indices", list, None, optional=True, help="exactly these dataset indices instead of the rule "
          "(repeat a subset)", label="Indices", tags=("image_choice",)),
    Param("subset_seed", int, SUBSET_SEED, 0, 2**31 - 1, help="the stratified rule's seed (datasets not in "
          "their official order)", label="Subset seed", tags=("image_choice",)),
    Param("legacy_first_n", bool, False, help="queued before the subset rule: resume on the first n, as it "
          "started", tags=("internal",)),
)
# fmt: on
FIELD = {prm.name: prm for prm in FIELDS}
IMAGE_CHOICE = tuple(p.name for p in FIELDS if "image_choice" in p.tags)
INTERNAL = tuple(p.name for p in FIELDS if "internal" in p.tags)


@declared(FIELDS)
class EvalSpec:
    """An evaluation job's settings (the fields are :data:`FIELDS`)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EvalSpec:
        if not isinstance(data, dict):
            raise EvalConfigError("an evaluation config must be a JSON object")
        known = set(FIELD)
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
        for prm in FIELDS:  # every single-valued field: its kind (strictly, as JSON has it) and range
            if prm.kind is not list:
                try:
                    setattr(self, prm.name, prm.validate(json_value(prm, getattr(self, prm.name))))
                except ParamError as exc:
                    raise EvalConfigError(str(exc)) from None
        if self.indices is not None:
            if not isinstance(self.indices, list) or not 0 < len(self.indices) <= MAX_INDICES:
                raise EvalConfigError(f"indices must be a list of 1 to {MAX_INDICES:,} image indices")
            if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in self.indices):
                raise EvalConfigError("indices must be whole numbers >= 0")
            if len(set(self.indices)) != len(self.indices):
                raise EvalConfigError("an image index is listed twice")
            if self.offset:
                raise EvalConfigError("give either indices or an offset, not both")
        return self

    def parts(self) -> list[tuple[str, float]]:
        """(model, eps) in the order they run."""
        return [(m, e) for m in self.models for e in self.eps]
