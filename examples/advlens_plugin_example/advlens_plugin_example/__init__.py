"""An example advlens plugin: one architecture, ``example_mlp``.

advlens finds this package through the entry point in its ``pyproject.toml``::

    [project.entry-points."advlens.plugins"]
    example_mlp = "advlens_plugin_example:register"

and calls :func:`register` once per process, the first time it looks up an architecture it does
not know. From then on ``example_mlp`` works wherever an architecture does: a checkpoint whose
metadata says ``"arch": "example_mlp"`` loads (``python -m advlens import``, the Home page's import
box), its models appear in the zoo and in every model picker, attacks and evaluations run on it.
"""

from __future__ import annotations

from torch import nn

ARCH = "example_mlp"


class ExampleMLP(nn.Module):
    """Flatten, one hidden layer, logits. ``hidden`` is set by the checkpoint's ``arch_kwargs``."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 32):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def _make_net(spec, pretrained: bool) -> nn.Module:
    """Build the network a checkpoint's metadata (a ``ModelSpec``) describes; ValueError if it cannot."""
    if pretrained:
        raise ValueError(f"{ARCH} has no pretrained weights")
    unknown = set(spec.arch_kwargs) - {"hidden"}
    if unknown:
        raise ValueError(f"{ARCH} has no option {sorted(unknown)[0]!r} (its options: hidden)")
    hidden = spec.arch_kwargs.get("hidden", 32)
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= 4096:
        raise ValueError(f"{ARCH}'s hidden must be a whole number from 1 to 4096, not {hidden!r}")
    c, h, w = spec.input_size
    return ExampleMLP(c * h * w, spec.num_classes, hidden)


def _default_spec():
    from advlens.models import ModelSpec

    return ModelSpec(ARCH, (1, 8, 8), tuple(str(i) for i in range(10)), (0.0,), (1.0,), "digits8")


def register() -> None:
    """The entry point: add ``example_mlp`` to advlens's architectures."""
    from advlens.models.registry import Architecture, register_architecture

    register_architecture(
        Architecture(ARCH, "Example plugin: a one-hidden-layer MLP (1x8x8)", _make_net, _default_spec)
    )
