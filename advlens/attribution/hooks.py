"""Layer lookup, forward hooks and the model-state guards every attribution runs under.

* :func:`resolve_layer` turns a layer name (``model.get_submodule(name)``) into a module and
  raises :class:`LayerError` (a ``ValueError``) naming the valid choices when it is not there.
* :func:`record_outputs` is a context manager that registers forward hooks on named layers and
  *always* removes them, also when the forward pass raises.
* :func:`inference_guard` puts the model in eval mode and stops parameters from requiring
  gradients for the duration, then restores both: an attribution never leaves ``.grad`` on the
  weights, never changes BatchNorm statistics, and the backward pass skips weight gradients.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..models.modes import eval_mode, model_lock


class LayerError(ValueError):
    """An unknown or unusable layer name; the message lists the valid ones."""


def layer_choices(model: nn.Module) -> list[str]:
    """The layers a person may pick, shallow to deep: conv layers first, then feature stages."""
    names: list[str] = []
    for getter in ("conv_layers", "feature_layers"):
        fn = getattr(model, getter, None)
        if fn is not None:
            names += [n for n in fn() if n not in names]
    if not names:
        names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    return sorted(names, key=lambda n: order.get(n, len(order)))


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; :class:`LayerError` when there is none."""
    if not isinstance(name, str) or not name.strip():
        raise LayerError("a layer name is required, e.g. " + _examples(model))
    try:
        return model.get_submodule(name.strip())
    except AttributeError:
        raise LayerError(f"the model has no layer {name!r}; choose one of: {_examples(model)}") from None


def _examples(model: nn.Module) -> str:
    choices = layer_choices(model)
    shown = ", ".join(choices[:8])
    return shown + (f", ... ({len(choices)} in all)" if len(choices) > 8 else "")


@contextmanager
def record_outputs(model: nn.Module, layers: Iterable[str], detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the named layers during the forward passes run inside the block.

    ``with record_outputs(model, ["net.conv1"]) as feats: model(x)`` leaves ``feats["net.conv1"]``
    holding the layer's output of the last forward pass (detached unless ``detach=False``).
    The hooks are removed on exit, whatever happens inside the block.
    """
    names = list(dict.fromkeys(layers))
    modules = {n: resolve_layer(model, n) for n in names}
    store: dict[str, torch.Tensor] = {}
    handles = []
    with model_lock(model), _removing(handles):
        for n, m in modules.items():

            def hook(_module, _inputs, output, _name=n):
                if isinstance(output, (tuple, list)):
                    output = output[0]
                store[_name] = output.detach() if detach else output

            handles.append(m.register_forward_hook(hook))
        yield store


@contextmanager
def _removing(handles: list) -> Iterator[None]:
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def inference_guard(model: nn.Module, freeze_params: bool = True) -> Iterator[nn.Module]:
    """Eval mode and (optionally) frozen parameters for the block; the previous state is restored.

    The flags are read inside the model's lock (:func:`advlens.models.modes.model_mode`): read
    outside it, they could be another thread's frozen ones, and would be "restored" as such."""
    with eval_mode(model):
        flags = [(p, p.requires_grad) for p in model.parameters()] if freeze_params else []
        try:
            for p, _ in flags:
                p.requires_grad_(False)
            yield model
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)
