"""Feature-denoising blocks (Xie, Wu, van der Maaten, Yuille and He, CVPR 2019, arXiv 1812.03411).

A block wraps one denoising operator D of :mod:`defenses.denoise` in a residual unit::

    y = x + BN(Conv1x1(D(x)))

with the BatchNorm scale (gamma) and shift (beta) initialised to zero, so a fresh block is exactly
the identity and inserting it into a trained network changes nothing until training moves gamma.
D is one of (``OPERATORS``):

- ``nonlocal_gaussian``: y_i = sum_j softmax_j(x_i . x_j / sqrt(C)) x_j (no embedding);
- ``nonlocal_embedded_gaussian``: the same on 1x1 embeddings theta(x_i) . phi(x_j) to C/2
  channels, initialised N(0, 0.01^2) as in the authors' code (``non_local_op(embed=True,
  softmax=True)``, the variant of their released models, hence the default);
- ``nonlocal_dot``: y_i = (1/N) sum_j (x_i . x_j) x_j, N = H*W (the fast one);
- ``mean``, ``median``: k x k filters; ``bilateral``: a k x k bilateral filter.

Networks: :func:`add_denoise_blocks` turns a ``small_cnn`` or ``preact_resnet18`` :class:`Classifier`
into ``small_cnn_denoise`` / ``preact_resnet18_denoise`` with blocks after the chosen stages
(``small_cnn``: after the ``conv1`` and/or ``conv2`` activations, before pooling;
``preact_resnet18``: after ``layer1`` .. ``layer4``; the paper puts one after every residual
stage). The base network's tensors keep their names, the blocks add ``net.denoise.<stage>.*``.
Both architectures are registered with :func:`advlens.models.registry.register_architecture` and
rebuilt from the checkpoint metadata's ``arch_kwargs`` (``stages``, ``operator``,
``kernel_size``), so a trained denoising network loads with :func:`advlens.models.load_checkpoint`
once this module is imported (importing the ``defenses.objectives`` package does it).

:func:`block_features` is the engine of the "denoising network" view: the features entering and
leaving every block for clean and adversarial images, with the noise-suppression ratio of
:func:`defenses.denoise.suppression_ratio` for the whole block and for its bare operator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advlens.attribution.hooks import inference_guard
from advlens.models import Classifier, ModelSpec
from advlens.models.modes import model_device
from advlens.models.preact_resnet import PreActResNet18
from advlens.models.registry import Architecture, get_architecture, register_architecture
from advlens.models.small_cnn import SmallCNN

from .denoise import (
    bilateral_filter,
    mean_filter,
    median_filter,
    nonlocal_means,
    relative_suppression,
    suppression_ratio,
)

OPERATORS = {
    "nonlocal_embedded_gaussian": "Non-local means, embedded Gaussian (softmax of theta(x_i) . phi(x_j))",
    "nonlocal_gaussian": "Non-local means, Gaussian (softmax of x_i . x_j)",
    "nonlocal_dot": "Non-local means, dot product / N",
    "mean": "Mean filter (k x k)",
    "median": "Median filter (k x k)",
    "bilateral": "Bilateral filter (k x k)",
}
DEFAULT_OPERATOR = "nonlocal_embedded_gaussian"
BASE_STAGES = {"small_cnn": ("conv1", "conv2"), "preact_resnet18": ("layer1", "layer2", "layer3", "layer4")}
DENOISED_ARCH = {base: f"{base}_denoise" for base in BASE_STAGES}
STAGE_CHANNELS = {
    "small_cnn": {"conv1": 32, "conv2": 64},
    "preact_resnet18": {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512},
}


class DenoiseBlock(nn.Module):
    """y = x + BN(Conv1x1(D(x))), BN's gamma and beta initialised to 0 (identity at initialisation)."""

    def __init__(self, channels: int, operator: str = DEFAULT_OPERATOR, kernel_size: int = 3):
        super().__init__()
        if operator not in OPERATORS:
            raise ValueError(f"unknown denoising operator {operator!r}; use one of {', '.join(OPERATORS)}")
        if operator in ("mean", "median", "bilateral") and (kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"the kernel size must be an odd positive integer, got {kernel_size}")
        self.operator = operator
        self.kernel_size = int(kernel_size)
        if operator == "nonlocal_embedded_gaussian":
            inner = max(1, channels // 2)
            self.theta = nn.Conv2d(channels, inner, 1, bias=False)
            self.phi = nn.Conv2d(channels, inner, 1, bias=False)
            nn.init.normal_(self.theta.weight, std=0.01)
            nn.init.normal_(self.phi.weight, std=0.01)
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        """D(x), the bare operator (no residual, no 1x1 conv)."""
        op = self.operator
        if op == "nonlocal_embedded_gaussian":
            return nonlocal_means(x, "embedded_gaussian", theta=self.theta, phi=self.phi)
        if op == "nonlocal_gaussian":
            return nonlocal_means(x, "gaussian")
        if op == "nonlocal_dot":
            return nonlocal_means(x, "dot_product")
        if op == "mean":
            return mean_filter(x, self.kernel_size)
        if op == "median":
            return median_filter(x, self.kernel_size)
        return bilateral_filter(x, self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn(self.conv(self.denoise(x)))

    def extra_repr(self) -> str:
        return f"operator={self.operator}" + (
            f", kernel_size={self.kernel_size}" if self.operator in ("mean", "median", "bilateral") else ""
        )


# --------------------------------------------------------------------------- denoising networks
def _blocks(base: str, stages, operator: str, kernel_size: int) -> nn.ModuleDict:
    stages = check_stages(base, stages)
    return nn.ModuleDict({s: DenoiseBlock(STAGE_CHANNELS[base][s], operator, kernel_size) for s in stages})


class DenoisingSmallCNN(SmallCNN):
    """Madry's MNIST CNN with denoising blocks after the conv1 and/or conv2 activations (before pooling)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_hw: int = 28,
        stages=BASE_STAGES["small_cnn"],
        operator: str = DEFAULT_OPERATOR,
        kernel_size: int = 3,
    ):
        super().__init__(num_classes, in_channels, input_hw)
        self.denoise = _blocks("small_cnn", stages, operator, kernel_size)
        self.feature_layer_names = tuple(
            n for s in ("conv1", "conv2") for n in ((s, f"denoise.{s}") if s in self.denoise else (s,))
        )
        self.cam_layer_name = "denoise.conv2" if "conv2" in self.denoise else "relu2"  # rectified: SmallCNN's docstring

    def _dn(self, stage: str, x: torch.Tensor) -> torch.Tensor:
        return self.denoise[stage](x) if stage in self.denoise else x

    def forward(self, x):
        x = self.pool1(self._dn("conv1", self.relu1(self.conv1(x))))
        x = self.pool2(self._dn("conv2", self.relu2(self.conv2(x))))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


class DenoisingPreActResNet18(PreActResNet18):
    """PreAct-ResNet-18 with a denoising block after each chosen residual stage (layer1..layer4)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        stages=BASE_STAGES["preact_resnet18"],
        operator: str = DEFAULT_OPERATOR,
        kernel_size: int = 3,
    ):
        super().__init__(num_classes, in_channels)
        self.denoise = _blocks("preact_resnet18", stages, operator, kernel_size)
        self.feature_layer_names = ("conv1",) + tuple(
            n for s in BASE_STAGES["preact_resnet18"] for n in ((s, f"denoise.{s}") if s in self.denoise else (s,))
        )
        self.cam_layer_name = "denoise.layer4" if "layer4" in self.denoise else "layer4"

    def forward(self, x):
        out = self.conv1(x)
        for stage in BASE_STAGES["preact_resnet18"]:
            out = getattr(self, stage)(out)
            if stage in self.denoise:
                out = self.denoise[stage](out)
        out = F.relu(self.bn(out))
        return self.linear(self.flatten(self.pool(out)))


def check_stages(base: str, stages) -> tuple[str, ...]:
    """The stages as a tuple in network order; a comma-separated string is accepted. ValueError if unknown."""
    if base not in BASE_STAGES:
        raise ValueError(f"denoising blocks can be inserted into {', '.join(BASE_STAGES)}, not {base!r}")
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",") if s.strip()]
    stages = list(stages)
    unknown = [s for s in stages if s not in BASE_STAGES[base]]
    if unknown:
        raise ValueError(
            f"{base} has no stage {unknown[0]!r} to put a denoising block after; "
            f"choose among {', '.join(BASE_STAGES[base])}"
        )
    if not stages:
        raise ValueError(f"choose at least one stage of {base} for a denoising block")
    return tuple(s for s in BASE_STAGES[base] if s in stages)


def block_spec(stages, operator: str = DEFAULT_OPERATOR, kernel_size: int = 3, base: str = "small_cnn") -> dict:
    """The ``arch_kwargs`` that rebuild a denoising network (JSON-serialisable)."""
    if operator not in OPERATORS:
        raise ValueError(f"unknown denoising operator {operator!r}; use one of {', '.join(OPERATORS)}")
    return {
        "base": base,
        "stages": list(check_stages(base, stages)),
        "operator": operator,
        "kernel_size": int(kernel_size),
    }


def _kwargs(spec: ModelSpec, base: str) -> dict:
    k = dict(spec.arch_kwargs)
    default = block_spec(BASE_STAGES[base], base=base)
    return {
        "stages": k.get("stages", default["stages"]),
        "operator": k.get("operator", default["operator"]),
        "kernel_size": int(k.get("kernel_size", default["kernel_size"])),
    }


def _make_small_cnn_denoise(spec: ModelSpec, pretrained: bool) -> nn.Module:
    c, h, w = spec.input_size
    if h != w or h % 4:
        raise ValueError(f"small_cnn needs a square input with a side divisible by 4, got {h}x{w}")
    return DenoisingSmallCNN(spec.num_classes, c, h, **_kwargs(spec, "small_cnn"))


def _make_preact_denoise(spec: ModelSpec, pretrained: bool) -> nn.Module:
    return DenoisingPreActResNet18(spec.num_classes, spec.input_size[0], **_kwargs(spec, "preact_resnet18"))


def _default_spec(base: str):
    def spec() -> ModelSpec:
        d = get_architecture(base).default_spec().to_dict()
        d.update(arch=DENOISED_ARCH[base], arch_kwargs=block_spec(BASE_STAGES[base], base=base))
        return ModelSpec.from_dict(d)

    return spec


register_architecture(
    Architecture(
        "small_cnn_denoise",
        "small_cnn with feature-denoising blocks y = x + BN(Conv1x1(D(x))) (Xie et al. 2019)",
        _make_small_cnn_denoise,
        _default_spec("small_cnn"),
    )
)
register_architecture(
    Architecture(
        "preact_resnet18_denoise",
        "PreAct-ResNet-18 with feature-denoising blocks after its stages (Xie et al. 2019)",
        _make_preact_denoise,
        _default_spec("preact_resnet18"),
    )
)


def base_arch(model: Classifier) -> str:
    """``small_cnn`` or ``preact_resnet18`` for a plain or denoising network; ValueError otherwise."""
    arch = model.spec.arch
    if arch in BASE_STAGES:
        return arch
    base = model.spec.arch_kwargs.get("base")
    if arch in DENOISED_ARCH.values() and base in BASE_STAGES:
        return base
    raise ValueError(f"feature-denoising blocks can be added to {', '.join(BASE_STAGES)}, not {arch!r}")


def add_denoise_blocks(
    model: Classifier, stages=None, operator: str = DEFAULT_OPERATOR, kernel_size: int = 3
) -> Classifier:
    """A copy of ``model`` with identity-initialised denoising blocks after ``stages`` (default: all).

    ``model`` is a ``small_cnn`` or ``preact_resnet18`` Classifier, or a denoising network (its
    blocks are then replaced). Its weights are copied, the new blocks start as the identity, so
    the returned model computes the same logits. The result is on the same device, in the same
    train/eval mode, with ``spec.arch = "<base>_denoise"`` and the block spec in ``arch_kwargs``.
    """
    base = base_arch(model)
    kwargs = block_spec(BASE_STAGES[base] if stages is None else stages, operator, kernel_size, base)
    d = model.spec.to_dict()
    d.update(arch=DENOISED_ARCH[base], arch_kwargs=kwargs)
    spec = ModelSpec.from_dict(d)
    new = Classifier(get_architecture(spec.arch).make_net(spec, False), spec)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("net.denoise.")}
    missing, unexpected = new.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("net.denoise.") for k in missing):
        raise ValueError(
            f"cannot copy the weights of {model.spec.arch} into {spec.arch}: missing "
            f"{[k for k in missing if not k.startswith('net.denoise.')][:3]}, unexpected {unexpected[:3]}"
        )
    new.to(model_device(model))
    new.train(model.training)
    return new


def denoise_blocks(model: nn.Module) -> dict[str, DenoiseBlock]:
    """The denoising blocks of ``model`` by module name (``net.denoise.conv2``), shallow to deep."""
    return {name: m for name, m in model.named_modules() if isinstance(m, DenoiseBlock)}


# ------------------------------------------------------------------------------ the feature view
@dataclass
class BlockFeatures:
    """One block's input and output features for clean and adversarial images, and its effect on the noise."""

    name: str
    operator: str
    before_clean: torch.Tensor  # (N, C, H, W), the block's input
    before_adv: torch.Tensor
    after_clean: torch.Tensor  # the block's output
    after_adv: torch.Tensor
    ratio: torch.Tensor  # (N,) ||y(fa) - y(fc)|| / ||fa - fc||: noise kept by the whole block
    relative_ratio: torch.Tensor  # (N,) the same, each side divided by its clean feature norm
    operator_ratio: torch.Tensor  # (N,) ||D(fa) - D(fc)|| / ||fa - fc||: the bare operator
    gamma_norm: float  # ||BN gamma||: 0 while the block is still the identity


@torch.no_grad()
def block_features(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor) -> list[BlockFeatures]:
    """For each denoising block of ``model`` (shallow to deep): its clean and adversarial input and output.

    One eval-mode forward pass of ``[x; x_adv]`` with hooks on the blocks; the ratios follow
    :func:`defenses.denoise.suppression_ratio` (< 1: the block shrinks the adversarial noise) and
    :func:`defenses.denoise.relative_suppression`, recomputing each block on its recorded inputs.
    """
    if x.shape != x_adv.shape:
        raise ValueError(f"clean and adversarial batches differ in shape: {tuple(x.shape)} vs {tuple(x_adv.shape)}")
    blocks = denoise_blocks(model)
    if not blocks:
        raise ValueError(
            "the model has no denoising blocks; train one with the feature_denoise objective (or add_denoise_blocks)"
        )
    n = x.shape[0]
    device = model_device(model)
    store: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = [
        b.register_forward_hook(lambda _m, i, o, _n=name: store.__setitem__(_n, (i[0], o)))
        for name, b in blocks.items()
    ]
    try:
        with inference_guard(model, freeze_params=False):
            model(torch.cat([x, x_adv]).detach().to(device).float())
            out = []
            for name, block in blocks.items():
                fin, fout = store[name]
                fc, fa = fin[:n], fin[n:]
                out.append(
                    BlockFeatures(
                        name,
                        block.operator,
                        fc.cpu(),
                        fa.cpu(),
                        fout[:n].cpu(),
                        fout[n:].cpu(),
                        suppression_ratio(fc, fa, block).cpu(),
                        relative_suppression(fc, fa, block).cpu(),
                        suppression_ratio(fc, fa, block.denoise).cpu(),
                        float(block.bn.weight.norm()),
                    )
                )
    finally:
        for h in handles:
            h.remove()
    return out
