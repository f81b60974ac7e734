"""The architectures of the RobustBench catalogue (:mod:`advlens.models.robustbench`), registered in
:data:`advlens.models.registry.ARCHITECTURES` like every other one: ``wide_resnet``,
``dm_wide_resnet``, ``cifar_resnet``, ``rb_preact_resnet18`` and ``imagenet_resnet``. Their options
(``arch_kwargs``) are checked here, so a checkpoint's metadata cannot ask for an absurd network.
"""

from __future__ import annotations

from torch import nn

from .base import ModelSpec
from .dm_wide_resnet import DMWideResNet
from .efficientnet_lite import imagenet_class_names
from .rb_resnet import RESNET_BLOCKS, CifarResNet, RBPreActResNet18
from .resnet_imagenet import IMAGENET_BLOCKS, ImageNetResNet
from .wide_resnet import WideResNet

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def _options(spec: ModelSpec, allowed: dict) -> dict:
    """``spec.arch_kwargs`` checked against ``allowed``: name -> (kind, choices) where kind is int
    (choices a range or a set) or bool. ValueError names the problem."""
    out = {}
    for key, value in spec.arch_kwargs.items():
        if key not in allowed:
            raise ValueError(f"{spec.arch} has no option {key!r} (its options: {', '.join(allowed)})")
        kind, choices = allowed[key]
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{spec.arch}'s {key} must be true or false, not {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value not in choices:
            shown = f"{min(choices)} to {max(choices)}" if isinstance(choices, range) else sorted(choices)
            raise ValueError(f"{spec.arch}'s {key} must be one of {shown}, not {value!r}")
        out[key] = value
    return out


_WRN = {"depth": (int, range(10, 107)), "width": (int, range(1, 21))}


def _wide_resnet(spec: ModelSpec, pretrained: bool) -> nn.Module:
    kw = _options(spec, {**_WRN, "sub_block1": (bool, None)})
    return WideResNet(num_classes=spec.num_classes, in_channels=spec.input_size[0], **kw)


def _dm_wide_resnet(spec: ModelSpec, pretrained: bool) -> nn.Module:
    kw = _options(spec, _WRN)
    return DMWideResNet(num_classes=spec.num_classes, in_channels=spec.input_size[0], **kw)


def _cifar_resnet(spec: ModelSpec, pretrained: bool) -> nn.Module:
    kw = _options(spec, {"depth": (int, set(RESNET_BLOCKS))})
    return CifarResNet(num_classes=spec.num_classes, in_channels=spec.input_size[0], **kw)


def _rb_preact(spec: ModelSpec, pretrained: bool) -> nn.Module:
    kw = _options(spec, {"final_bn": (bool, None)})
    return RBPreActResNet18(num_classes=spec.num_classes, in_channels=spec.input_size[0], **kw)


def _imagenet_resnet(spec: ModelSpec, pretrained: bool) -> nn.Module:
    kw = _options(spec, {"depth": (int, set(IMAGENET_BLOCKS)), "width_per_group": (int, {64, 128})})
    return ImageNetResNet(num_classes=spec.num_classes, in_channels=spec.input_size[0], **kw)


def _cifar_spec(arch: str, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
    return lambda: ModelSpec(arch, (3, 32, 32), CIFAR10_NAMES, mean, std, "cifar10")


# (name, description, make_net, default_spec): registry.py turns each into an Architecture (this
# module does not import the registry, which imports it).
ROBUSTBENCH_ARCHITECTURES = (
    (
        "wide_resnet",
        "WideResNet for 3x32x32 (TRADES layout; arch_kwargs depth, width, sub_block1: 28-10, 34-10, 34-20, 70-16)",
        _wide_resnet,
        _cifar_spec("wide_resnet"),
    ),
    (
        "dm_wide_resnet",
        "DeepMind's WideResNet for 3x32x32 (SiLU, SAME padding; arch_kwargs depth, width)",
        _dm_wide_resnet,
        _cifar_spec("dm_wide_resnet", CIFAR10_MEAN, CIFAR10_STD),
    ),
    (
        "cifar_resnet",
        "ResNet-18/34/50 for 3x32x32 (pytorch-cifar layout; arch_kwargs depth)",
        _cifar_resnet,
        _cifar_spec("cifar_resnet"),
    ),
    (
        "rb_preact_resnet18",
        "PreAct-ResNet-18 for 3x32x32 in RobustBench's layout (arch_kwargs final_bn)",
        _rb_preact,
        _cifar_spec("rb_preact_resnet18", CIFAR10_MEAN, CIFAR10_STD),
    ),
    (
        "imagenet_resnet",
        "ResNet-18/50 and Wide-ResNet-50-2 for ImageNet, torchvision layout (arch_kwargs depth, width_per_group)",
        _imagenet_resnet,
        lambda: ModelSpec(
            "imagenet_resnet", (3, 224, 224), imagenet_class_names(), IMAGENET_MEAN, IMAGENET_STD, "imagenet"
        ),
    ),
)
