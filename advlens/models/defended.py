"""A defended model: a base classifier behind a chain of input transforms, itself a classifier.

``digits_small_cnn+bits3+median3`` is the base model ``digits_small_cnn`` whose inputs are first
reduced to 3 bits, then median-filtered. :class:`DefendedClassifier` shares the base's network
(the same ``net`` module, so its layer names, CAMs and feature maps are the base's), never changes
it, and only adds the transforms in front:

    forward(x) = base((t_k o ... o t_1)(x))

The backward pass is what a plain attacker gets: zero through each non-differentiable transform
(see :mod:`advlens.transforms`). :meth:`DefendedClassifier.with_bpda` returns a *view* of the same
model whose backward pass goes through each transform's differentiable approximation (BPDA); its
forward pass is the same. The view is a new object over the same modules, so turning BPDA on for
one attack changes nothing that another caller of the shared model could see. Both hold the
base's lock (:func:`advlens.models.modes.model_lock`), since they run the same modules.
"""

from __future__ import annotations

import torch
from torch import nn

from ..transforms import InputTransform, TransformError, chain_name
from .base import Classifier

MAX_MODEL_NAME = 256  # characters of a model name with its chain (a link's ?model=, --model)


def name_problem(name: str) -> str:
    """Why ``name`` cannot be a model name with input transforms ("" when it may be one): too long,
    or an empty transform name (``digits_small_cnn+``, ``a++jpeg75``), which must never be read as
    the bare base model."""
    if len(name) > MAX_MODEL_NAME:
        return f"a model name of {len(name):,} characters is too long (at most {MAX_MODEL_NAME})"
    base, sep, rest = name.partition("+")
    if sep and not base.strip():
        return f"{name!r} names no base model before the '+'"
    if sep and any(not token.strip() for token in rest.split("+")):
        return (
            f"{name!r} has an empty transform name (a '+' with nothing after it): write a transform after each '+', "
            f"as in {base.strip()}+jpeg75, or leave out the '+'"
        )
    return ""


def check_model_name(name: str) -> None:
    """Raise :class:`TransformError` with :func:`name_problem`'s message when there is one."""
    problem = name_problem(name)
    if problem:
        raise TransformError(problem)


class DefendedClassifier(Classifier):
    def __init__(self, base: Classifier, chain: list[InputTransform], bpda: bool = False, name: str = ""):
        if isinstance(base, DefendedClassifier):  # a defended base: one flat chain in front of the bare model
            base, chain = base.base, [*base.chain, *chain]
        super().__init__(base.net, base.spec)
        self.chain = tuple(chain)
        self.bpda = bool(bpda)
        # plain attributes, not submodules: the base's weights are not registered twice
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "lock_key", getattr(base, "lock_key", base))
        self.checkpoint_meta = getattr(base, "checkpoint_meta", None)
        self.zoo_name = name or chain_name(getattr(base, "zoo_name", base.spec.arch), list(chain))
        self.to(base.mean.device)

    @property
    def random(self) -> bool:
        """Whether a forward pass draws new randomness (so attacks need EOT, and results vary)."""
        return any(t.random for t in self.chain)

    @property
    def differentiable(self) -> bool:
        """Whether autograd sees every transform (so plain gradient attacks are not blinded)."""
        return all(t.differentiable for t in self.chain)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The input the base network sees (one random draw for random transforms)."""
        for t in self.chain:
            x = t(x, bpda=self.bpda)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.transform(x))

    def with_bpda(self) -> DefendedClassifier:
        """The same model whose backward pass goes through the transforms' approximations."""
        if self.bpda:
            return self
        view = DefendedClassifier(self.base, list(self.chain), bpda=True, name=self.zoo_name)
        view.training = self.training  # the wrapper's own flag; the shared modules are left alone
        return view


def transformed_inputs(model: nn.Module, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """What a defended model's base network sees for each batch in ``xs`` (one draw each), on the CPU."""
    from .modes import eval_mode, model_device

    device = model_device(model)
    with torch.no_grad(), eval_mode(model):
        return tuple(model.transform(x.to(device)).clamp(0.0, 1.0).cpu() for x in xs)


def is_defended(model: nn.Module) -> bool:
    return isinstance(model, DefendedClassifier)


def bpda_view(model: nn.Module) -> nn.Module:
    """``model`` with BPDA's backward pass when it is a defended model; any other model as it is."""
    return model.with_bpda() if isinstance(model, DefendedClassifier) else model


def is_random(model: nn.Module) -> bool:
    return bool(getattr(model, "random", False))


def needs_bpda(model: nn.Module) -> bool:
    return isinstance(model, DefendedClassifier) and not model.differentiable
