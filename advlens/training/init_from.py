"""Start a run from trained weights: ``TrainConfig.init_from``.

Fine-tuning is how Deep Defense is trained (the authors start from a clean model), and it works for
every objective: PGD-AT from a clean model, or a feature-denoising network from a plain one (its
blocks are inserted after the weights are loaded, and start as the identity).

``init_from`` is a model-zoo name (``digits_small_cnn``, ``run-<id>-standard``, an imported model)
or a checkpoint path. The checkpoint must be the run's architecture, for the same input size and
number of classes; anything else is a :class:`ConfigError` raised before any training work.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..models import CheckpointError, Classifier, load_checkpoint
from .errors import ConfigError


def resolve_init_path(ref: str) -> Path:
    """The checkpoint file that ``ref`` (a zoo name or a path) names."""
    from ..zoo import get_entry, is_checkpoint_path

    ref = ref.strip()
    path = Path(ref).expanduser()
    if is_checkpoint_path(ref):
        if not path.is_file():
            raise ConfigError(f"init_from: no checkpoint at {path}.")
        return path
    try:
        entry = get_entry(ref)
    except KeyError as exc:
        raise ConfigError(f"init_from: {exc.args[0]}") from None
    if entry.path is None:
        raise ConfigError(
            f"init_from: {ref} is the pretrained ImageNet model, not a checkpoint to fine-tune "
            "small_cnn or preact_resnet18 from."
        )
    if entry.source in ("defended", "saved defense"):
        raise ConfigError(
            f"init_from: {ref} is a model behind input transforms, not weights; start from its base model instead."
        )
    return entry.path


def load_init(ref: str) -> Classifier:
    """The model that ``ref`` names, on the CPU (a clear :class:`ConfigError` when it cannot be read)."""
    path = resolve_init_path(ref)
    try:
        model, _ = load_checkpoint(path)
    except (CheckpointError, OSError) as exc:
        raise ConfigError(f"init_from: cannot load {path}: {exc}") from None
    return model


def check_compatible(init: Classifier, model: Classifier, ref: str) -> None:
    """Raise :class:`ConfigError` unless ``init``'s weights fit ``model`` (same arch, input, classes)."""
    a, b = init.spec, model.spec
    if a.arch != b.arch or tuple(a.input_size) != tuple(b.input_size) or init.num_classes != model.num_classes:
        raise ConfigError(
            f"init_from: {ref} is a {a.arch} for {'x'.join(map(str, a.input_size))} images and "
            f"{init.num_classes} classes; the run trains a {b.arch} for {'x'.join(map(str, b.input_size))} images "
            f"and {model.num_classes} classes."
        )


def apply_init(model: Classifier, ref: str) -> Classifier:
    """A model that computes what ``ref`` computes, with ``model``'s spec (dataset, class names)
    but ``ref``'s input normalisation, which its weights were trained with."""
    init = load_init(ref)
    check_compatible(init, model, ref)
    spec = replace(model.spec, mean=init.spec.mean, std=init.spec.std, arch_kwargs=dict(init.spec.arch_kwargs))
    out = Classifier(init.net, spec)
    out.train(model.training)
    return out
