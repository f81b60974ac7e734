"""Attribution lens: where a classifier looks, and how an attack moves it.

* :mod:`.maps` — one API, ``compute_map(model, x, method, layer, target) -> (N, H, W)``, over
  Grad-CAM / Grad-CAM++ / LayerCAM (:mod:`.cam`) and Saliency / Integrated Gradients / SmoothGrad (:mod:`.saliency`);
  :func:`.cam.differentiable_gradcam` for training through the attention map.
* :mod:`.empty` — which map is empty (all zero), why, and the settings checked to show something.
* :mod:`.display` — shared-scale normalisation, OpenCV colormap overlays, signed difference maps.
* :mod:`.metrics` — attention-shift metrics (top-k% IoU, correlations, centre-of-mass shift,
  scatter, attended area, faithfulness).
* :mod:`.view` — the clean-vs-adversarial attention view of one batch.
* :mod:`.analysis` — the seed paper's analysis over a dataset, split by attack success.
* :mod:`.features` — forward hooks, top-N channel grids, per-layer divergence across depth.
"""

from .cam import DifferentiableCam, differentiable_gradcam, gradcam, gradcam_plus_plus, layercam
from .empty import EmptyMap, check_maps, empty_maps, explain_empty
from .hooks import LayerError, inference_guard, layer_choices, record_outputs, resolve_layer
from .maps import METHODS, compute_map, get_method
from .targets import TARGET_KINDS, TARGET_LABELS, resolve_targets
from .view import AttentionView, attention_view

__all__ = [
    "METHODS",
    "TARGET_KINDS",
    "TARGET_LABELS",
    "AttentionView",
    "DifferentiableCam",
    "EmptyMap",
    "LayerError",
    "attention_view",
    "check_maps",
    "compute_map",
    "differentiable_gradcam",
    "empty_maps",
    "explain_empty",
    "get_method",
    "gradcam",
    "gradcam_plus_plus",
    "inference_guard",
    "layercam",
    "layer_choices",
    "record_outputs",
    "resolve_layer",
    "resolve_targets",
]
