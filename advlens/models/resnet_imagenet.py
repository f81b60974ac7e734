"""ResNet-18/50 and Wide-ResNet-50-2 for ImageNet (He et al. 2016; Zagoruyko and Komodakis 2016),
with torchvision's parameter names, the layout of the robust ImageNet checkpoints (Engstrom et al.
2019, Salman et al. 2020, Wong et al. 2020) and of torchvision's own standard weights.

A 7x7 conv (stride 2), batch norm, ReLU, a 3x3 max pool (stride 2), four stages of basic (ResNet-18)
or bottleneck (ResNet-50) blocks with the stride on the 3x3 conv ("ResNet v1.5") and the projection
shortcut ``downsample.0`` (conv) / ``downsample.1`` (batch norm), global average pooling and ``fc``.
``width_per_group`` 128 gives Wide-ResNet-50-2. The published checkpoints often prefix the keys with
``module.`` and/or ``model.`` and carry ``normalize.mean`` / ``normalize.std`` (RobustBench's
normalisation wrapper); :mod:`advlens.models.robustbench.convert` strips those, and the ImageNet mean
and std become the classifier's own normalisation.

Grad-CAM's default layer is ``layer4``, the last block's rectified output (7x7 at 224 pixels), which
pooling and ``fc`` follow (CAM), as in Selvaraju et al.'s own ResNet examples.
"""

from __future__ import annotations

import torch
from torch import nn


class TVBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, base_width: int = 64):
        super().__init__()
        if base_width != 64:
            raise ValueError("a ResNet with basic blocks has width_per_group 64")
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TVBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, base_width: int = 64):
        super().__init__()
        width = planes * base_width // 64
        self.conv1 = nn.Conv2d(in_planes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_planes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


IMAGENET_BLOCKS = {18: (TVBasicBlock, (2, 2, 2, 2)), 34: (TVBasicBlock, (3, 4, 6, 3)), 50: (TVBottleneck, (3, 4, 6, 3))}


class ImageNetResNet(nn.Module):
    feature_layer_names = ("conv1", "layer1", "layer2", "layer3", "layer4")
    cam_layer_name = "layer4"  # why: the module docstring

    def __init__(self, depth: int = 50, num_classes: int = 1000, width_per_group: int = 64, in_channels: int = 3):
        super().__init__()
        if depth not in IMAGENET_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(IMAGENET_BLOCKS)}, not {depth}")
        block, counts = IMAGENET_BLOCKS[depth]
        self.in_planes, self.base_width = 64, width_per_group
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(block, 64, counts[0], 1)
        self.layer2 = self._stage(block, 128, counts[1], 2)
        self.layer3 = self._stage(block, 256, counts[2], 2)
        self.layer4 = self._stage(block, 512, counts[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _stage(self, block, planes: int, n: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(block(self.in_planes, planes, s, self.base_width))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(torch.flatten(self.avgpool(out), 1))
