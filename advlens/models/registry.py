"""The registry of architectures: name -> builder and default spec."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..params import short_repr
from ..plugins import load_plugins
from ..registry import Registry
from .base import Classifier, ModelSpec
from .efficientnet_lite import LITE_MEAN, LITE_STD, EfficientNetLite0, imagenet_class_names
from .preact_resnet import PreActResNet18
from .rb_architectures import ROBUSTBENCH_ARCHITECTURES
from .resnet_cifar import ResNetCifar
from .small_cnn import SmallCNN

DIGIT_NAMES = tuple(str(i) for i in range(10))
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    make_net: Callable[..., nn.Module]  # (spec, pretrained) -> nn.Module
    default_spec: Callable[[], ModelSpec]
    pretrained_available: bool = False


def _int_kwargs(spec: ModelSpec, allowed: dict[str, tuple[int, int]]) -> dict[str, int]:
    """``spec.arch_kwargs`` checked against ``allowed`` (name -> inclusive range); ValueError names the problem."""
    out = {}
    for key, value in spec.arch_kwargs.items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise ValueError(f"{spec.arch} has no option {key!r} (its options: {known})")
        lo, hi = allowed[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{spec.arch}'s {key} must be a whole number from {lo} to {hi}, not {short_repr(value)}")
        out[key] = value
    return out


def _small_cnn(spec: ModelSpec, pretrained: bool) -> nn.Module:
    c, h, w = spec.input_size
    if h != w or h % 4:
        raise ValueError(f"small_cnn needs a square input with a side divisible by 4, got {h}x{w}")
    kwargs = _int_kwargs(spec, {"hidden": (8, 4096)})
    return SmallCNN(num_classes=spec.num_classes, in_channels=c, input_hw=h, **kwargs)


def _resnet20(spec: ModelSpec, pretrained: bool) -> nn.Module:
    _int_kwargs(spec, {})
    return ResNetCifar(num_classes=spec.num_classes, in_channels=spec.input_size[0], depth=20)


def _preact(spec: ModelSpec, pretrained: bool) -> nn.Module:
    _int_kwargs(spec, {})
    return PreActResNet18(num_classes=spec.num_classes, in_channels=spec.input_size[0])


def _lite0(spec: ModelSpec, pretrained: bool) -> nn.Module:
    return EfficientNetLite0(num_classes=spec.num_classes, pretrained=pretrained)


def _spec(arch: str, size, names, mean, std, dataset: str) -> Callable[[], ModelSpec]:
    return lambda: ModelSpec(arch, size, names() if callable(names) else names, mean, std, dataset)


ARCHITECTURES: Registry[Architecture] = Registry(
    "architecture",
    (
        Architecture(
            "small_cnn",
            "Madry's MNIST CNN: conv32-pool-conv64-pool-fc1024 (1x28x28)",
            _small_cnn,
            _spec("small_cnn", (1, 28, 28), DIGIT_NAMES, (0.0,), (1.0,), "digits"),
        ),
        Architecture(
            "preact_resnet18",
            "PreAct-ResNet-18 for 3x32x32 images",
            _preact,
            _spec("preact_resnet18", (3, 32, 32), CIFAR10_NAMES, CIFAR10_MEAN, CIFAR10_STD, "cifar10"),
        ),
        Architecture(
            "resnet20",
            "ResNet-20 for 3x32x32 images (He et al. 2016, the 0.27M-parameter CIFAR variant)",
            _resnet20,
            _spec("resnet20", (3, 32, 32), CIFAR10_NAMES, CIFAR10_MEAN, CIFAR10_STD, "cifar10"),
        ),
        Architecture(
            "efficientnet_lite0",
            "EfficientNet-Lite0, ImageNet-pretrained (3x224x224)",
            _lite0,
            _spec("efficientnet_lite0", (3, 224, 224), imagenet_class_names, LITE_MEAN, LITE_STD, "imagenet"),
            pretrained_available=True,
        ),
    ),
)


def register_architecture(arch: Architecture, replace: bool = False) -> Architecture:
    """Add ``arch`` to :data:`ARCHITECTURES`, so :func:`build_model` and checkpoint loading know it.

    For architectures defined outside this package (e.g. a network with inserted defense blocks,
    rebuilt from the checkpoint metadata's ``arch_kwargs``). Registering a name again with the same
    builder (the same module and function name, e.g. after a module reload) replaces the entry; a
    different builder is an error unless ``replace`` is set.
    """
    return ARCHITECTURES.add(arch, replace=replace)


def arch_options_problem(arch: str, arch_kwargs: dict) -> str:
    """Why ``arch`` cannot be built with ``arch_kwargs`` ("" when it can). Nothing is allocated: the
    network is built on the meta device."""
    import torch

    a = get_architecture(arch)
    d = a.default_spec().to_dict()
    d["arch_kwargs"] = dict(arch_kwargs)
    try:
        with torch.device("meta"):
            a.make_net(ModelSpec.from_dict(d), False)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return ""


def list_architectures() -> list[str]:
    return list(ARCHITECTURES)


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        load_plugins()  # plugins register architectures of their own (e.g. small_cnn_denoise)
    return ARCHITECTURES.lookup(name)


def build_model(arch: str, spec: ModelSpec | None = None, pretrained: bool = False, **overrides) -> Classifier:
    """Build a :class:`Classifier`. ``overrides`` replace fields of the default spec
    (e.g. ``class_names=...``, ``input_size=(1, 28, 28)``, ``dataset='mnist'``)."""
    a = get_architecture(arch)
    if spec is None:
        d = a.default_spec().to_dict()
        for k, v in overrides.items():
            if k not in d:
                raise TypeError(f"unknown model option {k!r}")
            d[k] = list(v) if isinstance(v, tuple) else v
        spec = ModelSpec.from_dict(d)
    if pretrained and not a.pretrained_available:
        raise ValueError(f"{arch} has no pretrained weights; load a checkpoint instead")
    model = Classifier(a.make_net(spec, pretrained), spec)
    return model.eval()


for _fields in ROBUSTBENCH_ARCHITECTURES:  # WideResNets and ResNets in the published layouts (issue 25)
    ARCHITECTURES.add(Architecture(*_fields))
