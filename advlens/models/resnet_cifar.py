"""ResNet-20 for 32x32 images (He et al. 2016, "Deep Residual Learning", section 4.2).

The CIFAR variant, not the ImageNet one: a 3x3 conv with 16 filters, then three stages of ``n``
basic blocks with 16, 32 and 64 filters (the feature map halves and the width doubles at each new
stage), global average pooling and one linear layer: 6n + 2 layers, so n = 3 gives ResNet-20 with
0.27M parameters. The shortcuts are the paper's option A: the identity, zero-padded in the channels and
subsampled when the shape changes, so they add no parameters.

Grad-CAM's default layer is ``layer3``, the last stage's rectified output (8x8): global average
pooling and one linear layer follow it, so Grad-CAM there is CAM (Zhou et al. 2016) and the map's
mean is the class logit minus its bias, positive for a confidently predicted class. 100% of the
clean maps of correctly classified test images are non-empty for both shipped ResNet-20s
(200 images each; ``bench/cam_nonempty.py``, ``bench/RESULTS.md``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.pad = planes - in_planes  # option A: zero channels for the wider stage

    def shortcut(self, x):
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    feature_layer_names = ("conv1", "layer1", "layer2", "layer3")
    cam_layer_name = "layer3"

    def __init__(self, num_classes: int = 10, in_channels: int = 3, depth: int = 20):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has 6n + 2 layers (20, 32, 44, 56, ...), not {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.in_planes = 16
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(self.flatten(self.pool(out)))
