"""Where a model runs, and the one helper that sets its train/eval mode for a block.

:func:`model_mode` records the mode of *every* submodule, sets the one asked for, and puts each
back afterwards, also when the block raises: a model with some submodules deliberately in eval
mode (frozen BatchNorm, say) comes out exactly as it went in.

It also holds the model's lock for the block. The app caches one model object for all sessions
(``st.cache_resource``), and an engine call changes that object while it runs: the mode, the
``requires_grad`` flags an attribution switches off, the hooks Grad-CAM and the feature views
register. Every engine call (attacks, attributions, feature maps, predictions) runs inside
:func:`model_mode`, so calls on one model from several threads take turns, each finds the model
as the last one left it, and none sees another's hooks. The lock is re-entrant: an engine call
may call another on the same model.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

_locks: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The re-entrant lock that engine calls on ``model`` hold: one per model object, except that
    models sharing another's modules (a defended model, its BPDA view) name it as ``lock_key``."""
    model = getattr(model, "lock_key", model)
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock


def release_held_locks() -> Callable[[], None]:
    """Release every model lock the calling thread holds (however deep); return the function that
    takes them back. For a long call that pauses between its steps to let other calls run
    (:meth:`advlens.threads.Gate.take_turns`): a paused call must not keep its models locked, or a
    call on the same model would wait for it while it waits for that call. Between steps the model
    is as the paused call left it, and every other call puts it back so before it lets go."""
    with _locks_guard:
        locks = list(_locks.values())
    saved = [(lock, lock._release_save()) for lock in locks if lock._is_owned()]

    def take_back() -> None:
        for lock, state in saved:
            lock._acquire_restore(state)

    return take_back


@contextmanager
def model_mode(model: nn.Module, train: bool | None = False) -> Iterator[nn.Module]:
    """Run the block with ``model`` in train (True) or eval (False) mode, or as it is (None),
    holding the model's lock."""
    with model_lock(model):
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
