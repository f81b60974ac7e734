"""The classifier contract shared by every model in advlens.

A :class:`Classifier` takes NCHW images in [0, 1], normalises them inside, and returns logits.
It knows its input shape and class names, and lists its named conv layers for CAMs and
feature maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What a model expects and produces; stored in every checkpoint's metadata."""

    arch: str
    input_size: tuple[int, int, int]  # (C, H, W)
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dataset: str = ""
    arch_kwargs: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        return {
            "arch": self.arch,
            "input_size": list(self.input_size),
            "class_names": list(self.class_names),
            "mean": list(self.mean),
            "std": list(self.std),
            "dataset": self.dataset,
            "arch_kwargs": dict(self.arch_kwargs),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        return cls(
            arch=str(d["arch"]),
            input_size=tuple(int(v) for v in d["input_size"]),
            class_names=tuple(str(c) for c in d["class_names"]),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            dataset=str(d.get("dataset", "")),
            arch_kwargs=dict(d.get("arch_kwargs", {})),
        )


class Classifier(nn.Module):
    """Normalisation + a network. ``forward(x in [0,1]) -> logits``."""

    def __init__(self, net: nn.Module, spec: ModelSpec):
        super().__init__()
        if len(spec.mean) != spec.input_size[0] or len(spec.std) != spec.input_size[0]:
            raise ValueError("mean and std must have one value per input channel")
        self.net = net
        self.spec = spec
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1), persistent=False)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    @property
    def input_size(self) -> tuple[int, int, int]:
        return self.spec.input_size

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def conv_layers(self) -> dict[str, nn.Module]:
        """Named conv layers, shallow to deep, addressable as ``model.get_submodule(name)``."""
        return {f"net.{name}": m for name, m in self.net.named_modules() if isinstance(m, nn.Conv2d)}

    def feature_layers(self) -> dict[str, nn.Module]:
        """Named layers whose outputs are spatial feature maps (blocks and convs), shallow to deep.

        Architectures override ``feature_layer_names`` on the net to expose their stages.
        """
        names = getattr(self.net, "feature_layer_names", None)
        if names is None:
            return self.conv_layers()
        return {f"net.{n}": self.net.get_submodule(n) for n in names}

    def default_cam_layer(self) -> str:
        """The late conv layer Grad-CAM uses unless told otherwise."""
        name = getattr(self.net, "cam_layer_name", None)
        if name is not None:
            return f"net.{name}"
        return list(self.conv_layers())[-1]
