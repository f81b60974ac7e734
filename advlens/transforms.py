"""Input transforms: the base class, the registry, and the chain syntax of defended model names.

An input-transform defense runs a fixed image operation before the classifier: JPEG compression
(Das et al. 2017, arXiv 1705.02900), bit-depth reduction and median smoothing (Xu et al. 2018,
feature squeezing, arXiv 1704.01155), random resize-and-pad (Xie et al. 2018, arXiv 1711.01991),
Gaussian noise, or a denoising operator. The concrete transforms live in ``defenses/transforms.py``
(registered through the plugin loader); this module only says what a transform is:

- ``name`` (the registry key, and the token's prefix) and one setting :class:`~advlens.params.Param`,
  so ``jpeg75`` is JPEG at quality 75 and ``bits3`` a 3-bit image;
- ``differentiable``: whether autograd sees the real operation. A non-differentiable transform
  (computed in OpenCV or NumPy, or a rounding) gives the attacker a zero gradient: Athalye et al.'s
  *shattered gradients*. BPDA (Athalye, Carlini and Wagner 2018, arXiv 1802.00420) keeps the
  transform in the forward pass and differentiates :meth:`InputTransform.approximate` instead: the
  identity by default, the same operation in torch where one exists (median, resize);
- ``random``: whether each call draws new randomness (EOT averages gradients over draws).

:func:`parse_chain` reads ``jpeg75+bits3`` into transform objects; :func:`split_name` splits
``digits_small_cnn+bits3+median3`` into the base model's name and the chain.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import torch

from .params import Param, ParamError
from .plugins import load_plugins
from .registry import Registry

MAX_CHAIN = 8  # transforms in one chain: more is a typo, not a defense
_TOKEN = re.compile(r"^([a-z][a-z_]*?)(\d+(?:\.\d+)?)?$")


class TransformError(ValueError):
    """A chain that cannot be read; the message says what to write instead."""


class InputTransform:
    """One image operation on (N, C, H, W) batches in [0, 1]. Subclasses set the class attributes
    and :meth:`apply`; random ones also :meth:`sample`, and non-differentiable ones may override
    :meth:`approximate` (BPDA's backward pass; the identity when not overridden)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    differentiable: ClassVar[bool] = False
    random: ClassVar[bool] = False
    setting: ClassVar[Param | None] = None  # the number in the token; None: the token is the name alone
    approximation: ClassVar[str] = "the identity"  # what BPDA differentiates instead, in words

    def __init__(self, value: Any = None):
        if self.setting is None:
            if value is not None:
                raise TransformError(f"{self.name} takes no setting: write {self.name}")
            self.value = None
        else:
            try:
                self.value = self.setting.validate(self.setting.default if value is None else value, self.name)
            except ParamError as exc:
                raise TransformError(str(exc)) from None

    @property
    def token(self) -> str:
        """``jpeg75``: the transform as a defended model's name writes it."""
        if self.value is None:
            return self.name
        v = self.value
        return f"{self.name}{v:g}" if isinstance(v, float) else f"{self.name}{v}"

    def describe(self) -> str:
        kind = "differentiable" if self.differentiable else f"not differentiable (BPDA: {self.approximation})"
        return f"{self.token}: {self.title}; {kind}; {'random' if self.random else 'deterministic'}"

    def check_input(self, input_size: tuple[int, int, int]) -> None:
        """Refuse, before any work, an input this transform cannot take (``TransformError``)."""

    # ----- the operation ---------------------------------------------------------------------
    def sample(self, x: torch.Tensor) -> Any:
        """The random draw for this batch (per image), shared by :meth:`apply` and :meth:`approximate`."""
        return None

    def apply(self, x: torch.Tensor, draw: Any) -> torch.Tensor:
        raise NotImplementedError

    def approximate(self, x: torch.Tensor, draw: Any) -> torch.Tensor:
        """A differentiable stand-in with (about) the same output, for BPDA's backward pass."""
        return x

    def __call__(self, x: torch.Tensor, bpda: bool = False) -> torch.Tensor:
        """The transform inside a model's forward pass. Differentiable: as it is. Otherwise the
        output is computed without autograd and the gradient is zero (what a plain attack sees), or,
        with ``bpda``, the gradient of :meth:`approximate` (the straight-through construction
        ``g(x) + (t(x) - g(x)).detach()``)."""
        draw = self.sample(x)
        if self.differentiable:
            return self.apply(x, draw)
        with torch.no_grad():
            out = self.apply(x.detach(), draw)
        if not x.requires_grad:
            return out
        if not bpda:
            return out + 0.0 * x  # a constant to autograd: the gradient is shattered to zero
        approx = self.approximate(x, draw)
        return approx + (out - approx).detach()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.token}>"


TRANSFORMS: Registry[type[InputTransform]] = Registry("input transform", (), TransformError)


def register_transform(cls: type[InputTransform]) -> type[InputTransform]:
    """Class decorator: add an input transform to the registry under ``cls.name``."""
    return TRANSFORMS.add(cls)


def list_transforms() -> list[type[InputTransform]]:
    load_plugins()
    return list(TRANSFORMS.values())


def parse_token(token: str) -> InputTransform:
    """``jpeg75`` -> JPEG(quality=75); ``median3``; ``noise0.25``."""
    load_plugins()
    text = token.strip().lower()
    m = _TOKEN.match(text)
    if not m or m.group(1) not in TRANSFORMS:
        known = ", ".join(f"{c.name}{'' if c.setting is None else c.setting.default}" for c in TRANSFORMS.values())
        raise TransformError(f"unknown input transform {token!r}; write one of: {known}")
    cls = TRANSFORMS[m.group(1)]
    number = m.group(2)
    if number is None:
        return cls()
    if cls.setting is None:
        raise TransformError(f"{cls.name} takes no setting: write {cls.name}")
    kind = cls.setting.kind
    if kind is int and "." in number:
        raise TransformError(f"{cls.name} takes a whole number, as in {cls.name}{cls.setting.default}")
    return cls(kind(number))


def parse_chain(text: str) -> list[InputTransform]:
    """``jpeg75+bits3`` -> the transforms, in the order they run."""
    tokens = [t for t in (text or "").split("+")]
    if not text or any(not t.strip() for t in tokens):
        raise TransformError("a chain is transforms joined by '+', as in jpeg75+bits3")
    if len(tokens) > MAX_CHAIN:
        raise TransformError(f"at most {MAX_CHAIN} transforms in one chain")
    return [parse_token(t) for t in tokens]


def split_name(name: str) -> tuple[str, list[InputTransform]]:
    """``digits_small_cnn+jpeg75`` -> ("digits_small_cnn", [JPEG 75]); a name without '+' has no chain."""
    base, sep, rest = name.partition("+")
    if not sep:
        return name, []
    if not base:
        raise TransformError(f"{name!r} names no base model before the '+'")
    return base, parse_chain(rest)


def chain_name(base: str, chain: list[InputTransform]) -> str:
    """The canonical name of a defended model: the base's name, then each transform's token."""
    return "+".join([base, *(t.token for t in chain)])
