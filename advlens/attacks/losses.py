"""Per-sample objectives that attacks ascend, and the success test.

Every function returns one value per sample (shape ``(N,)``); attacks sum them before taking
the gradient, which leaves the per-sample gradients unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_objective(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Untargeted: CE(z, y), to be increased. Targeted: -CE(z, t), i.e. increase log p_t."""
    if target is None:
        return F.cross_entropy(logits, y, reduction="none")
    return -F.cross_entropy(logits, target, reduction="none")


def other_max(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """max_{i != label} z_i for each sample."""
    masked = logits.scatter(1, label[:, None], float("-inf"))
    return masked.amax(1)


def margin(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """How far the sample is from success; the attack succeeds once this is below 0.

    Untargeted: z_y - max_{i != y} z_i. Targeted: max_{i != t} z_i - z_t.
    """
    if target is None:
        return logits.gather(1, y[:, None])[:, 0] - other_max(logits, y)
    return other_max(logits, target) - logits.gather(1, target[:, None])[:, 0]


def dlr_objective(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """The Difference of Logits Ratio loss of Croce and Hein (2020), to be increased.

    Untargeted: -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12).
    Targeted:   -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12),
    where z_pi1 >= z_pi2 >= ... are the sorted logits. It is invariant to shifting and scaling
    the logits, which defeats attacks on the softmax scale.
    """
    z_sorted = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y[:, None])[:, 0]
    if target is None:
        return -(z_y - other_max(logits, y)) / (z_sorted[:, 0] - z_sorted[:, 2] + 1e-12)
    z_t = logits.gather(1, target[:, None])[:, 0]
    return -(z_y - z_t) / (z_sorted[:, 0] - 0.5 * (z_sorted[:, 2] + z_sorted[:, 3]) + 1e-12)


def is_success(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Untargeted: the prediction is not y. Targeted: the prediction is t."""
    pred = logits.argmax(1)
    return pred != y if target is None else pred == target
