"""ResNet-18/50 and PreAct-ResNet-18 for 32x32 images in the layout of Kuang Liu's
``pytorch-cifar`` code, which the robust CIFAR-10 checkpoints of Engstrom et al. 2019 (ResNet-50),
Sehwag et al. 2021 and Addepalli et al. 2021 (ResNet-18), Wong et al. 2020 and Rice et al. 2020
(PreAct-ResNet-18) use, so their state dicts load as they are.

**ResNet** (He et al. 2016): a 3x3 conv (64 filters, stride 1), batch norm, ReLU, four stages of
basic (ResNet-18: [2, 2, 2, 2]) or bottleneck (ResNet-50: [3, 4, 6, 3]) blocks whose projection
shortcut is ``shortcut.0`` (conv) and ``shortcut.1`` (batch norm), global average pooling and
``linear``. Grad-CAM's default layer is ``layer4`` (4x4), the last block's rectified output, which
pooling and the linear layer follow (CAM).

**PreAct-ResNet-18** (He et al. 2016b), RobustBench's variant, which differs from
:mod:`advlens.models.preact_resnet` (our own training recipe's network): the projection shortcut is
``shortcut.0``; in Wong et al.'s checkpoint it takes the *raw* block input and no batch norm comes
before the pooling, so Grad-CAM's default layer is ``layer4``, whose output is not rectified (a map
there can be empty; the Attention page then offers another layer or the signed map). With
``final_bn`` (Rice et al.'s L2 model, "PreActBlockV2") the shortcut takes the activated input, a
batch norm ``bn`` and a ReLU come before the pooling, and Grad-CAM's default is that ReLU, ``relu``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _projection(in_planes: int, out_planes: int, stride: int, bn: bool) -> nn.Sequential:
    layers = [nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)]
    if bn:
        layers.append(nn.BatchNorm2d(out_planes))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = _projection(in_planes, planes, stride, bn=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != 4 * planes:
            self.shortcut = _projection(in_planes, 4 * planes, stride, bn=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


RESNET_BLOCKS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}


class CifarResNet(nn.Module):
    feature_layer_names = ("conv1", "layer1", "layer2", "layer3", "layer4")
    cam_layer_name = "layer4"  # why: the module docstring

    def __init__(self, depth: int = 18, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(RESNET_BLOCKS)}, not {depth}")
        block, counts = RESNET_BLOCKS[depth]
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._stage(block, 64, counts[0], 1)
        self.layer2 = self._stage(block, 128, counts[1], 2)
        self.layer3 = self._stage(block, 256, counts[2], 2)
        self.layer4 = self._stage(block, 512, counts[3], 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def _stage(self, block, planes: int, n: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.pool(out), 1))


class RBPreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, shortcut_from_activation: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = _projection(in_planes, planes, stride, bn=False)
        self.from_activation = shortcut_from_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        if self.shortcut is None:
            shortcut = x
        else:
            shortcut = self.shortcut(act if self.from_activation else x)
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return out + shortcut


class RBPreActResNet18(nn.Module):
    def __init__(self, num_classes: int = 10, final_bn: bool = False, in_channels: int = 3):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.layer1 = self._stage(64, 1, final_bn)
        self.layer2 = self._stage(128, 2, final_bn)
        self.layer3 = self._stage(256, 2, final_bn)
        self.layer4 = self._stage(512, 2, final_bn)
        self.final_bn = final_bn
        if final_bn:
            self.bn = nn.BatchNorm2d(512)
            self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(512, num_classes)
        self.cam_layer_name = "relu" if final_bn else "layer4"  # why: the module docstring
        self.feature_layer_names = ("conv1", "layer1", "layer2", "layer3", "layer4") + (("relu",) if final_bn else ())

    def _stage(self, planes: int, stride: int, from_activation: bool) -> nn.Sequential:
        blocks = []
        for s in (stride, 1):
            blocks.append(RBPreActBlock(self.in_planes, planes, s, from_activation))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        if self.final_bn:
            out = self.relu(self.bn(out))
        return self.linear(torch.flatten(self.pool(out), 1))
