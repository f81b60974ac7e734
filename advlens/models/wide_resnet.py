"""WideResNet for 32x32 images (Zagoruyko and Komodakis 2016), in the layout of TRADES' code that
most robust CIFAR-10 checkpoints use (Carmon et al. 2019, Zhang et al. 2019, Rice et al. 2020, ...).

Depth ``d`` = 6n + 4: a 3x3 conv with 16 filters, three groups of ``n`` pre-activation blocks with
16k, 32k and 64k filters (``k`` the width), then batch norm, ReLU, global average pooling and one
linear layer. WRN-28-10 has 36.5M parameters, WRN-34-10 46.2M, WRN-34-20 184.5M, WRN-70-16 267M.
The parameter names (``conv1``, ``block1.layer.0.bn1``, ``convShortcut``, ``bn1``, ``fc``) are those
of the published checkpoints, so their state dicts load as they are. ``sub_block1`` adds the unused
copy of the first group that Carmon et al.'s checkpoints carry (never run: it only makes the keys
match). The first block of a group whose width changes applies the shortcut to the *activated*
input, the others to the raw input, exactly as in the original code.

Grad-CAM's default layer is ``relu``, the rectified output of the last batch norm (8x8): global
average pooling and the linear layer follow it, so Grad-CAM there is CAM (Zhou et al. 2016) and its
activations are non-negative. Feature maps: ``conv1``, ``block1``, ``block2``, ``block3``, ``relu``.
"""

from __future__ import annotations

import torch
from torch import nn


class WideBasicBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(act))))
        shortcut = x if self.equal_in_out else self.convShortcut(act)
        return shortcut + out


class WideGroup(nn.Module):
    """``n`` blocks; the attribute is called ``layer`` as in the checkpoints (``block1.layer.0...``)."""

    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(
            *(
                WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
                for i in range(n)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def wrn_blocks(depth: int) -> int:
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"a WideResNet's depth must be 6n + 4 (10, 16, 22, 28, 34, ...), not {depth}")
    return (depth - 4) // 6


class WideResNet(nn.Module):
    feature_layer_names = ("conv1", "block1", "block2", "block3", "relu")
    cam_layer_name = "relu"  # why: the module docstring

    def __init__(
        self, depth: int = 28, width: int = 10, num_classes: int = 10, sub_block1: bool = False, in_channels: int = 3
    ):
        super().__init__()
        n = wrn_blocks(depth)
        ch = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(in_channels, ch[0], 3, stride=1, padding=1, bias=False)
        self.block1 = WideGroup(n, ch[0], ch[1], 1)
        if sub_block1:
            self.sub_block1 = WideGroup(n, ch[0], ch[1], 1)  # in the checkpoints, never run
        self.block2 = WideGroup(n, ch[1], ch[2], 2)
        self.block3 = WideGroup(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(torch.flatten(self.pool(out), 1))
