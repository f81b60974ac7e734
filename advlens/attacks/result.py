"""``run_attack``: one call from images to a full report (predictions, norms, success, trajectory)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..models.modes import eval_mode, model_device
from ..predict import CleanAndAdversarial, TopK
from .base import AttackConfigError, ProgressFn, StopFn, check_images
from .losses import is_success
from .registry import get_attack
from .trajectory import Trajectory


@dataclass
class AttackResult(CleanAndAdversarial):
    """Everything about one attack run, on the CPU. Index 0 is the only image for single images.

    ``y`` holds the labels the attack used: the given label, or the clean prediction where the
    label was unknown (-1 or None), as ``y_from_prediction`` says.
    """

    attack: str
    title: str
    params: dict
    class_names: tuple[str, ...]
    x: torch.Tensor
    x_adv: torch.Tensor
    y: torch.Tensor
    y_from_prediction: torch.Tensor
    target: torch.Tensor | None
    clean_probs: torch.Tensor
    adv_probs: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor
    success: torch.Tensor
    trajectory: Trajectory | None = None
    stopped: bool = False
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def targeted(self) -> bool:
        return self.target is not None

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean())

    def perturbation(self, index: int = 0) -> torch.Tensor:
        return self.x_adv[index] - self.x[index]

    def topk(self, which: str = "adv", k: int = 5, index: int = 0) -> TopK:
        """Top-k classes of the clean (``which='clean'``) or adversarial image ``index``."""
        if which not in {"clean", "adv"}:
            raise ValueError("which must be 'clean' or 'adv'")
        probs = (self.clean_probs if which == "clean" else self.adv_probs)[index]
        values, indices = probs.topk(min(k, probs.numel()))
        return TopK(indices.tolist(), [self.class_names[i] for i in indices.tolist()], values.tolist())

    def summary(self, index: int | None = None) -> dict:
        """A JSON-ready dict: settings and, per image, predictions, norms and success."""
        rows = range(len(self.x)) if index is None else [index]
        names = self.class_names
        images = []
        for i in rows:
            images.append(
                {
                    "label": int(self.y[i]),
                    "label_name": names[int(self.y[i])],
                    "label_from_prediction": bool(self.y_from_prediction[i]),
                    "target": None if self.target is None else int(self.target[i]),
                    "clean_pred": names[int(self.clean_pred[i])],
                    "clean_prob": float(self.clean_probs[i].max()),
                    "adv_pred": names[int(self.adv_pred[i])],
                    "adv_prob": float(self.adv_probs[i].max()),
                    "linf": float(self.linf[i]),
                    "linf_255": float(self.linf[i]) * 255.0,
                    "l2": float(self.l2[i]),
                    "success": bool(self.success[i]),
                }
            )
        return {
            "attack": self.attack,
            "title": self.title,
            "params": dict(self.params),
            "targeted": self.targeted,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 4),
            "images": images,
            **self.extra,
        }


def resolve_labels(model, x: torch.Tensor, y) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(labels, from_prediction mask, clean logits). Unknown labels (None or -1) become the clean
    prediction; ``x`` must already be on the model's device."""
    with torch.no_grad(), eval_mode(model):
        logits = model(x)
    pred = logits.argmax(1)
    if y is None:
        return pred, torch.ones_like(pred, dtype=torch.bool), logits
    t = torch.as_tensor(y, device=x.device)
    if t.is_floating_point():
        raise AttackConfigError(f"labels must be class indices, not {y!r}")
    t = t.long().reshape(-1)
    if t.numel() == 1 and len(x) > 1:
        t = t.expand(len(x))
    if t.numel() != len(x):
        raise AttackConfigError(f"got {t.numel()} labels for {len(x)} images")
    unknown = t < 0
    return torch.where(unknown, pred, t), unknown, logits


def run_attack(
    model,
    x: torch.Tensor,
    y=None,
    name: str = "pgd",
    *,
    target=None,
    record: bool = False,
    record_images: bool = False,
    max_frames: int = 200,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    **params,
) -> AttackResult:
    """Attack ``x`` (N, C, H, W in [0, 1]) with the registered attack ``name`` and report.

    ``params`` are the attack's own (engine units: L-inf budgets in [0, 1]). Bad params or inputs
    raise :class:`AttackConfigError` before any work is done.
    """
    cls = get_attack(name)
    attack = cls(
        model,
        record=record,
        record_images=record_images,
        max_frames=max_frames,
        progress=progress,
        should_stop=should_stop,
        **params,
    )
    device = model_device(model)
    x = check_images(model, x, device)
    y, from_pred, clean_logits = resolve_labels(model, x, y)
    start = time.perf_counter()
    x_adv = attack(x, y, target)
    seconds = time.perf_counter() - start
    with torch.no_grad(), eval_mode(model):
        adv_logits = model(x_adv)
    tgt = None if target is None else attack.check_inputs(x, y, target, device)[2]
    delta = (x_adv - x).flatten(1)
    return AttackResult(
        attack=cls.name,
        title=cls.title,
        params=dict(attack.config),
        class_names=tuple(model.class_names),
        x=x.cpu(),
        x_adv=x_adv.cpu(),
        y=y.cpu(),
        y_from_prediction=from_pred.cpu(),
        target=None if tgt is None else tgt.cpu(),
        clean_probs=clean_logits.softmax(1).cpu(),
        adv_probs=adv_logits.softmax(1).cpu(),
        linf=delta.abs().amax(1).cpu(),
        l2=delta.norm(dim=1).cpu(),
        success=is_success(adv_logits, y, tgt).cpu(),
        trajectory=attack.trajectory,
        stopped=attack.stopped,
        seconds=seconds,
    )


def attack_in_batches(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    name: str = "pgd",
    *,
    batch_size: int = 64,
    progress: ProgressFn | None = None,
    **params,
) -> torch.Tensor:
    """The adversarial images of a whole dataset slice, attacked ``batch_size`` at a time (bounded
    memory); ``progress(done, total)`` after each batch. Returns x_adv on the CPU."""
    if batch_size < 1:
        raise AttackConfigError("the batch size must be at least 1")
    advs = []
    for s in range(0, len(x), batch_size):
        advs.append(run_attack(model, x[s : s + batch_size], y[s : s + batch_size], name, **params).x_adv)
        if progress is not None:
            progress(min(len(x), s + batch_size), len(x))
    if not advs:
        raise AttackConfigError("there are no images to attack")
    return torch.cat(advs)
