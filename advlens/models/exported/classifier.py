"""An imported program as a :class:`Classifier`, and running it at the batch it was exported with."""

from __future__ import annotations

import torch
from torch import nn

from ..base import Classifier, ModelSpec

CONV_OPS = ("conv2d", "convolution", "_convolution", "conv_transpose2d", "cudnn_convolution")


def in_slices(x: torch.Tensor, batch: int | None, fn, target=None):
    """``fn(x, target)`` with exactly ``batch`` rows at a time (any number when ``batch`` is None): the
    last slice is padded with copies of its last row, and the results (tensors, or dicts of tensors)
    are trimmed and joined."""
    if batch is None or x.shape[0] == batch:
        return fn(x, target)
    t = None
    if target is not None:
        t = torch.as_tensor(target, device=x.device).reshape(-1)
        t = t.expand(x.shape[0]) if t.numel() == 1 else t
    outs = []
    for start in range(0, x.shape[0], batch):
        xs = x[start : start + batch]
        ts = None if t is None else t[start : start + batch]
        k = xs.shape[0]
        if k < batch:
            xs = torch.cat([xs, xs[-1:].expand(batch - k, *xs.shape[1:])])
            ts = None if ts is None else torch.cat([ts, ts[-1:].expand(batch - k)])
        out = fn(xs, ts)
        outs.append({n: v[:k] for n, v in out.items()} if isinstance(out, dict) else out[:k])
    if isinstance(outs[0], dict):
        return {n: torch.cat([o[n] for o in outs]) for n in outs[0]}
    return torch.cat(outs)


def in_program_batches(model: nn.Module, x: torch.Tensor, target, fn):
    """``fn(x, target)``, called with exactly the program's batch at a time when ``model`` is a program
    exported with a fixed batch (its forward runs a larger input in slices, so a hook on one of its
    layers, as Grad-CAM's, would see one call per slice and keep the last). Any other model: one call.
    Every function that hooks a layer and runs the model runs through this (the CAM methods in
    :mod:`advlens.attribution.cam`, :func:`advlens.attribution.features.layer_features`)."""
    return in_slices(x, getattr(model, "program_batch", None), fn, target)


class ExportedClassifier(Classifier):
    """A :class:`Classifier` whose network is an unflattened exported program. Its layers keep their
    original names (``net.features.3``); conv layers are found from the operators they run."""

    def __init__(self, net: nn.Module, spec: ModelSpec, batch: int | None, cam_layer: str | None = None):
        super().__init__(net, spec)
        self.program_batch = batch
        self._cam_layer = cam_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        return in_slices(z, self.program_batch, lambda part, _: self.net(part))

    def conv_layers(self) -> dict[str, nn.Module]:
        out = {}
        for name, m in self.net.named_modules():
            graph = getattr(m, "graph", None)
            if not name or graph is None or any(True for _ in m.children()):
                continue
            ops = {
                str(getattr(n.target, "__name__", n.target)).split(".")[0]
                for n in graph.nodes
                if n.op == "call_function"
            }
            if ops & set(CONV_OPS):
                out[f"net.{name}"] = m
        return out

    def default_cam_layer(self) -> str:
        if self._cam_layer:
            return self._cam_layer
        convs = list(self.conv_layers())
        if not convs:
            raise ValueError("this exported model has no conv layer; name a layer for Grad-CAM (cam_layer)")
        return convs[-1]

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        # lifted constants are plain tensor attributes of the unflattened modules: move them too
        for m in self.net.modules():
            for key, value in list(vars(m).items()):
                if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                    setattr(m, key, fn(value))
        return self
