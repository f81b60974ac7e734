"""Madry et al.'s MNIST network: conv32 -> pool -> conv64 -> pool -> fc1024 -> classes.

``hidden`` sets the width of the fully connected layer (Madry: 1024). It holds 94% of the weights,
so the shipped MNIST models use 512 to keep ``assets/`` small (``arch_kwargs = {"hidden": 512}``).

Grad-CAM's default layer is ``relu2``, the second conv layer's rectified output (14x14), as in
Selvaraju et al.: its activations are non-negative, so a correctly classified image's map is
non-empty. At ``conv2``'s raw output most activations are negative, and the channel-weighted sum is
negative everywhere for 80% of ``mnist_small_cnn``'s clean test images (an all-zero map after
Grad-CAM's ReLU); at ``relu2`` 100% of the clean maps of 200 correctly classified test images are
non-empty for each of the three shipped small CNNs (``bench/cam_nonempty.py``, ``bench/RESULTS.md``).
"""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Module):
    feature_layer_names = ("conv1", "conv2")
    cam_layer_name = "relu2"  # why: the module docstring

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_hw: int = 28, hidden: int = 1024):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        side = input_hw // 4
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * side * side, hidden)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))
