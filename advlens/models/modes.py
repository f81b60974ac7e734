"""Where a model runs, and the one helper that sets its train/eval mode for a block.

:func:`model_mode` records the mode of *every* submodule, sets the one asked for, and puts each
back afterwards, also when the block raises: a model with some submodules deliberately in eval
mode (frozen BatchNorm, say) comes out exactly as it went in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def model_mode(model: nn.Module, train: bool | None = False) -> Iterator[nn.Module]:
    """Run the block with ``model`` in train (True) or eval (False) mode, or as it is (None)."""
    if train is None:
        yield model
        return
    modes = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def eval_mode(model: nn.Module):
    """:func:`model_mode` in eval mode: what every attack, attribution and evaluation runs in."""
    return model_mode(model, False)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a stateless model."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")
