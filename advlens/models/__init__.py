"""Model zoo: architectures, checkpoints and the catalogue of ready-to-use models."""

from .base import Classifier, ModelSpec
from .checkpoint import CheckpointError, load_checkpoint, load_checkpoint_upload, save_checkpoint
from .registry import ARCHITECTURES, build_model, get_architecture, list_architectures

__all__ = [
    "ARCHITECTURES",
    "CheckpointError",
    "Classifier",
    "ModelSpec",
    "build_model",
    "get_architecture",
    "list_architectures",
    "load_checkpoint",
    "load_checkpoint_upload",
    "save_checkpoint",
]
