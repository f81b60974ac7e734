"""PreAct-ResNet-18 for 32x32 inputs (He et al. 2016), as used by Wong et al.'s Fast-AT.

Grad-CAM's default layer is ``relu``, the final ReLU after the last batch norm (4x4): global average
pooling and one linear layer follow it, so Grad-CAM there is CAM (Zhou et al. 2016), its activations
are non-negative, and the map's mean is the class logit minus its bias. ``layer4``'s output, the
earlier default, comes before that batch norm and can be negative everywhere, which empties the map
as it did at ``small_cnn``'s ``conv2`` (issue 30). No model of this architecture is shipped, so the
share of non-empty maps is not measured here; ResNet-20's ``layer3``, the same position, gives 100%.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    feature_layer_names = ("conv1", "layer1", "layer2", "layer3", "layer4")
    cam_layer_name = "relu"  # why: the module docstring

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(64, 2, 1)
        self.layer2 = self._make_layer(128, 2, 2)
        self.layer3 = self._make_layer(256, 2, 2)
        self.layer4 = self._make_layer(512, 2, 2)
        self.bn = nn.BatchNorm2d(512)
        self.relu = nn.ReLU()  # a module (no weights) so that Grad-CAM can hook the rectified features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(512, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.relu(self.bn(out))
        return self.linear(self.flatten(self.pool(out)))
