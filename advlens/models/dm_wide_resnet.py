"""DeepMind's WideResNet variant (Gowal et al. 2020, "Uncovering the Limits of Adversarial Training
against Norm-Bounded Adversarial Examples"; Rebuffi et al. 2021, "Fixing Data Augmentation to
Improve Adversarial Robustness"), in the layout of their published PyTorch checkpoints.

It differs from :mod:`advlens.models.wide_resnet` in four ways: the activation is SiLU (Swish,
x * sigmoid(x)) instead of ReLU; the first conv of a block pads by hand like TensorFlow's ``SAME``
(one pixel on each side at stride 1; only right and bottom at stride 2); the names are
``init_conv``, ``layer.<group>.block.<i>.batchnorm_0`` / ``conv_0`` / ``batchnorm_1`` / ``conv_1`` /
``shortcut``, ``batchnorm``, ``logits``; and the network normalises its input with the CIFAR-10
mean and std. Here that normalisation is the :class:`~advlens.models.base.Classifier`'s own (the
spec's ``mean`` and ``std``, the same ``(x - mean) / std``): the original keeps them as
non-persistent buffers, so they are not in the checkpoints either.

Grad-CAM's default layer is ``relu``, the activation after the last batch norm (8x8), which global
average pooling and the linear layer follow (CAM). SiLU is not a rectifier: its outputs can be
slightly negative (down to -0.28), so a map there can be empty where a ReLU network's would not.
Feature maps: ``init_conv``, ``layer.0``, ``layer.1``, ``layer.2``, ``relu``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .wide_resnet import wrn_blocks


class DMBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"unsupported stride {stride}")
        self.batchnorm_0 = nn.BatchNorm2d(in_planes)
        self.relu_0 = nn.SiLU()
        self.conv_0 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(out_planes)
        self.relu_1 = nn.SiLU()
        self.conv_1 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if in_planes != out_planes:
            self.shortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)
        self.pad = (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu_0(self.batchnorm_0(x))
        out = self.conv_0(F.pad(act, self.pad))
        out = self.conv_1(self.relu_1(self.batchnorm_1(out)))
        return (x if self.shortcut is None else self.shortcut(act)) + out


class DMGroup(nn.Module):
    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            *(DMBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1) for i in range(n))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DMWideResNet(nn.Module):
    feature_layer_names = ("init_conv", "layer.0", "layer.1", "layer.2", "relu")
    cam_layer_name = "relu"  # why: the module docstring

    def __init__(self, depth: int = 28, width: int = 10, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        n = wrn_blocks(depth)
        ch = [16, 16 * width, 32 * width, 64 * width]
        self.init_conv = nn.Conv2d(in_channels, ch[0], 3, stride=1, padding=1, bias=False)
        self.layer = nn.Sequential(
            DMGroup(n, ch[0], ch[1], 1), DMGroup(n, ch[1], ch[2], 2), DMGroup(n, ch[2], ch[3], 2)
        )
        self.batchnorm = nn.BatchNorm2d(ch[3])
        self.relu = nn.SiLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.logits = nn.Linear(ch[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.batchnorm(self.layer(self.init_conv(x))))
        return self.logits(torch.flatten(self.pool(out), 1))
