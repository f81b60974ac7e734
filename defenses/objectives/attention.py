"""Attention rectification and preservation (Wu et al., "Attention, Please! Adversarial Defense via
Activation Rectification and Preservation", ACM TOMM 2023, arXiv 1811.09831).

Per batch: an adversarial x_adv (Step-LL, as in the authors' code, or PGD), the differentiable
Grad-CAM of x and x_adv for the true class (:mod:`defenses.attention_loss`), and

    L = w_ce * [CE(x) + CE(x_adv)] + w_mask * L_mask + w_contrast * L_contrast

with the defaults 8, 4, 1 of the authors' code (one of their checkpoints used 8, 4, 1.6).
L_mask = -mean((p(x) - p(x_m))^2) - mean((p(x_adv) - p(x_adv_m))^2) erases the attended region
M = 1[CAM > mean CAM] and asks the prediction to change (attention preservation);
L_contrast = mean((CAM(x) - CAM(x_adv))^2) aligns the two maps (attention rectification).

Choices the paper leaves open, exposed as hyperparameters (defaults and reasons):

- ``adversary``: ``stepll`` (the authors' code; x_adv = clip(x - eps * sign(grad CE(f(x), y_LL))),
  y_LL the least likely class) or ``pgd`` (the modern variant). eps is the run's eps (MNIST 0.3,
  CIFAR 8/255 by default; the authors used about 19/255 on their colour data).
- ``second_update``: the optional second update on the twice-attacked sample
  x'' = Proj_{B(x, eps)}(A(x_adv)). The trainer takes one optimiser step per batch, so the second
  update is folded into it: the loss adds the same objective on (x, x''). To first order in the
  learning rate, two successive steps on L1 then L2 equal one step on L1 + L2. Off by default (it
  doubles the cost).
- ``cam_variant``: ``softmax`` (the training code) or ``relu`` (their analysis code);
  ``cam_normalize``: per-sample ``max`` by default, so the contrast term is on a fixed [0, 1]
  scale (a raw spatial softmax sums to 1 and makes the mean-contrast term vanish);
  ``cam_layer``: empty for the model's late conv layer (small_cnn: relu2, 14x14; PreAct-ResNet-18:
  layer4; the authors' map was 8x8, layer3 on 32x32 inputs).
- ``erase``: ``mean`` (per-channel mean of the clean batch: the authors erase in the normalised
  input space, i.e. to the dataset mean), ``grey`` or ``zero``.

After each epoch the objective measures the mean top-20% IoU between the clean and adversarial
attention maps of a fixed batch of training images (the paper's analysis metric; ~0.12 when an
attack succeeds, ~0.19 when it fails) and writes a PNG of the maps (:func:`attention_snapshot`,
:func:`snapshot_mosaic`) and a JSON of the labels, predictions and IoUs to
``<run folder>/snapshots/attention_epoch<E>.{png,json}`` (``EpochContext.folder``).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advlens.attacks.pgd import linf_bounds, project_linf_
from advlens.attribution import metrics as M
from advlens.attribution.display import enlarge, image_rgb, joint_normalize, overlay
from advlens.data import to_float
from advlens.models.modes import model_mode
from advlens.params import Param
from advlens.training.adversary import sign_ascent
from advlens.training.objectives import (
    EpochContext,
    EpochVerdict,
    Objective,
    accuracy_of,
    cross_entropy,
    no_param_grads,
    pgd_params,
    pgd_presets,
    register,
)
from defenses.attention_loss import (
    CAM_NORMALIZE,
    CAM_VARIANTS,
    ERASE_FILLS,
    attended_mask,
    attention_cam,
    contrast_loss,
    erase_attended,
    erase_fill,
    mask_loss,
)

ADVERSARIES = ("stepll", "pgd")
SNAPSHOT_DIR = "snapshots"


def step_ll(model: nn.Module, x: torch.Tensor, eps: float, train: bool | None = None) -> torch.Tensor:
    """Step-LL (Kurakin et al. 2017, arXiv 1611.01236): one eps step down the CE of the least likely class."""
    with torch.no_grad(), model_mode(model, train):
        y_ll = model(x).argmin(1)
    return sign_ascent(
        model, x, lambda z: -F.cross_entropy(z.float(), y_ll, reduction="sum"), eps, eps, 1, start="zero", train=train
    )


def pgd_ce(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int, train: bool | None = None
) -> torch.Tensor:
    """Madry's PGD on the cross-entropy from a uniform random start."""
    return sign_ascent(
        model,
        x,
        lambda z: F.cross_entropy(z.float(), y, reduction="sum"),
        eps,
        alpha,
        steps,
        start="uniform",
        train=train,
    )


def into_ball(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Proj_{B_inf(x, eps) ∩ [0,1]^d}(x_adv)."""
    eps_t = torch.full((len(x),) + (1,) * (x.ndim - 1), float(eps), device=x.device, dtype=x.dtype)
    return project_linf_(x_adv.clone(), *linf_bounds(x, eps_t))


_CAM_VARIANT_HELP = "attention map: spatial softmax (training code) or ReLU (analysis code) of sum_k alpha_k A^k"


@register
class AttentionRectification(Objective):
    name = "attention"
    title = "Attention rectification and preservation (Wu et al.)"
    formula = (
        r"w_{ce}\big[\mathrm{CE}(x) + \mathrm{CE}(x')\big] + w_{m}\,\mathcal{L}_{mask} + w_{c}\,"
        r"\mathcal{L}_{contrast},\quad \mathcal{L}_{mask} = -\overline{(p(x) - p(x_m))^2}"
        r" - \overline{(p(x') - p(x'_m))^2},\quad x_m = (1-M)\odot x + M\odot v,\;"
        r" M = \mathbb{1}[\mathrm{CAM} > \overline{\mathrm{CAM}}],\quad"
        r" \mathcal{L}_{contrast} = \overline{(\mathrm{CAM}(x) - \mathrm{CAM}(x'))^2}"
    )
    source = (
        "Wu, Zhang, Zhang, Chen, Zhao, Fan, Cao, Lin: Attention, Please! Adversarial Defense via Activation "
        "Rectification and Preservation (ACM TOMM 2023), arXiv 1811.09831"
    )
    hyperparams = (
        Param("w_ce", float, 8.0, 0.0, 1000.0, help="weight of CE(x) + CE(x_adv)"),
        Param("w_mask", float, 4.0, 0.0, 1000.0, help="weight of the mask (attention-preservation) term"),
        Param("w_contrast", float, 1.0, 0.0, 1000.0, help="weight of the contrast term (one authors' run: 1.6)"),
        Param("adversary", str, "stepll", help="Step-LL (the authors' code) or PGD", choices=ADVERSARIES),
        *pgd_params("pgd_steps", "pgd_alpha", "PGD (adversary = pgd)"),
        Param("second_update", bool, False, help="also train on the twice-attacked x'' = A(x_adv), same step"),
        Param("cam_layer", str, "", help="Grad-CAM layer (empty: the model's late conv layer)"),
        Param("cam_variant", str, "softmax", help=_CAM_VARIANT_HELP, choices=CAM_VARIANTS),
        Param("cam_normalize", str, "max", help="per-sample normalisation of the map", choices=CAM_NORMALIZE),
        Param(
            "erase", str, "mean", help="fill of the erased region: batch mean, mid-grey or zero", choices=ERASE_FILLS
        ),
        Param("snapshot_size", int, 8, 0, 64, help="fixed-batch images whose maps are saved after each epoch (0: off)"),
    )
    presets = pgd_presets("pgd_steps", "pgd_alpha")
    extra_plots = {
        "Attention terms": ("train/mask", "train/contrast"),
        "Training accuracy: clean vs adversarial": ("train/acc", "train/acc_adv"),
        "Attention IoU, clean vs adversarial (fixed batch)": ("attention/iou",),
    }

    notes = (
        "Each step adds to the adversary a Grad-CAM pass with `create_graph=True` on the clean and "
        "adversarial batch, a forward pass on the erased images, and a double-backward pass. After each "
        "epoch the clean and adversarial maps of a fixed batch are saved to the run's `snapshots/` folder "
        "and their top-20% IoU is logged as `attention/iou`."
    )

    # ------------------------------------------------------------------------------- adversary
    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, train: bool | None = None) -> torch.Tensor:
        """x_adv from the configured adversary, in the eps-ball around ``x``."""
        if self.adversary == "pgd":
            return pgd_ce(model, x, y, self.eps, self.pgd_alpha, self.pgd_steps, train=train)
        return step_ll(model, x, self.eps, train=train)

    def cam_layer_of(self, model: nn.Module, bare: nn.Module) -> str:
        """The Grad-CAM layer name for ``model`` (a DistributedDataParallel wrapper gets ``module.``)."""
        name = self.cam_layer or bare.default_cam_layer()
        return name if model is bare else f"module.{name}"

    # ------------------------------------------------------------------------------------ loss
    def pair_loss(
        self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, layer: str
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective on one (x, x_adv) pair; the clean and adversarial batches share each pass."""
        n = len(x)
        both = torch.cat([x, x_adv])
        cam = attention_cam(model, both, torch.cat([y, y]), layer, self.cam_variant, self.cam_normalize)
        logits = cam.logits.float()
        ce = cross_entropy(logits[:n], y) + cross_entropy(logits[n:], y)
        masked = erase_attended(both, attended_mask(cam.maps), erase_fill(x, self.erase))
        p = logits.softmax(1)
        p_masked = model(masked).float().softmax(1)
        l_mask = mask_loss(p[:n], p_masked[:n], p[n:], p_masked[n:])
        l_contrast = contrast_loss(cam.maps[:n].float(), cam.maps[n:].float())
        loss = self.w_ce * ce + self.w_mask * l_mask + self.w_contrast * l_contrast
        return loss, {
            "ce": ce.detach(),
            "mask": l_mask.detach(),
            "contrast": l_contrast.detach(),
            "acc": accuracy_of(logits[:n], y),
            "acc_adv": accuracy_of(logits[n:], y),
        }

    def loss(self, model, x, y, ctx):
        layer = self.cam_layer_of(model, ctx.attack_model)
        x_adv = self.attack(ctx.attack_model, x, y)
        loss, scalars = self.pair_loss(model, x, x_adv, y, layer)
        if self.second_update:
            x_adv2 = into_ball(self.attack(ctx.attack_model, x_adv, y), x, self.eps)
            loss2, scalars2 = self.pair_loss(model, x, x_adv2, y, layer)
            loss = loss + loss2
            scalars["acc_adv2"] = scalars2["acc_adv"]
        return loss, scalars

    # ------------------------------------------------------------------------------- snapshots
    def on_epoch_end(self, ctx: EpochContext) -> EpochVerdict | None:
        if self.snapshot_size <= 0:
            return None
        x, y = ctx.guard_batch
        x = to_float(x[: self.snapshot_size].to(ctx.device))
        y = y[: self.snapshot_size].to(ctx.device)
        snap = attention_snapshot(
            ctx.model,
            x,
            y,
            lambda m, xb, yb: self.attack(m, xb, yb, train=False),
            layer=self.cam_layer or None,
            variant=self.cam_variant,
            normalize=self.cam_normalize,
        )
        metrics = {
            "attention/iou": float(snap["iou"].mean()),
            "attention/acc_adv": float((snap["pred_adv"] == snap["y"]).float().mean()),
        }
        if ctx.folder is not None:
            path = save_snapshot(snap, Path(ctx.folder) / SNAPSHOT_DIR, ctx.epoch)
            ctx.log(f"attention snapshot: mean clean/adversarial IoU {metrics['attention/iou']:.3f} -> {path.name}")
        return EpochVerdict(metrics=metrics)


def attention_snapshot(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack=None,
    x_adv: torch.Tensor | None = None,
    layer: str | None = None,
    variant: str = "softmax",
    normalize: str = "max",
    k_percent: float = 20.0,
) -> dict:
    """The clean and adversarial attention maps of a batch, as training sees them, for display.

    ``attack(model, x, y) -> x_adv`` makes the adversarial images (or pass ``x_adv``). Runs in eval
    mode (the previous mode is restored). Returns CPU tensors: ``x``, ``x_adv``, ``y``, ``maps_clean``
    and ``maps_adv`` (N, H, W) as the loss sees them, ``norm_clean``/``norm_adv`` on one shared
    scale per image (:func:`advlens.attribution.display.joint_normalize`), ``pred_clean``,
    ``pred_adv``, and ``iou``: the top-``k_percent`` IoU of the two maps per image
    (:func:`advlens.attribution.metrics.topk_iou`).
    """
    if x_adv is None:
        if attack is None:
            raise ValueError("attention_snapshot needs x_adv or an attack")
        x_adv = attack(model, x, y)
    n = len(x)
    with model_mode(model, False), no_param_grads(model):
        cam = attention_cam(model, torch.cat([x, x_adv]), torch.cat([y, y]), layer, variant, normalize)
    maps = cam.maps.detach().float().cpu()
    pred = cam.logits.detach().argmax(1).cpu()
    (norm_clean, norm_adv), _, _ = joint_normalize(maps[:n], maps[n:])
    return {
        "x": x.detach().cpu(),
        "x_adv": x_adv.detach().cpu(),
        "y": y.detach().cpu(),
        "maps_clean": maps[:n],
        "maps_adv": maps[n:],
        "norm_clean": norm_clean,
        "norm_adv": norm_adv,
        "pred_clean": pred[:n],
        "pred_adv": pred[n:],
        "iou": M.topk_iou(maps[:n], maps[n:], k_percent),
    }


def snapshot_mosaic(snap: dict, tile: int = 84, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """One RGB uint8 picture: a column per image; rows: clean image, clean map, adversarial image, adversarial map.

    The two maps of an image share one colour scale. A red frame marks an adversarial prediction
    that differs from the label.
    """
    rows = []
    n = len(snap["y"])
    for i in range(n):
        wrong = int(snap["pred_adv"][i]) != int(snap["y"][i])
        col = [
            image_rgb(snap["x"][i]),
            overlay(snap["x"][i], snap["norm_clean"][i], alpha, colormap),
            image_rgb(snap["x_adv"][i]),
            overlay(snap["x_adv"][i], snap["norm_adv"][i], alpha, colormap),
        ]
        col = [cv2.resize(enlarge(c, tile), (tile, tile), interpolation=cv2.INTER_NEAREST) for c in col]
        if wrong:
            col[2] = cv2.rectangle(col[2].copy(), (0, 0), (tile - 1, tile - 1), (220, 30, 30), 3)
        rows.append(np.concatenate(col, axis=0))
    pad = np.full((4 * tile, 2, 3), 255, np.uint8)
    parts = []
    for c in rows:
        parts += [c, pad]
    return np.concatenate(parts[:-1], axis=1) if parts else np.zeros((4 * tile, 0, 3), np.uint8)


def save_snapshot(snap: dict, folder: Path, epoch: int) -> Path:
    """Write ``attention_epoch<E>.png`` (the mosaic) and ``.json`` (labels, predictions, IoU) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"attention_epoch{epoch + 1:03d}"
    png = stem.with_suffix(".png")
    cv2.imwrite(str(png), cv2.cvtColor(snapshot_mosaic(snap), cv2.COLOR_RGB2BGR))
    stem.with_suffix(".json").write_text(
        json.dumps(
            {
                "epoch": epoch + 1,
                "labels": snap["y"].tolist(),
                "pred_clean": snap["pred_clean"].tolist(),
                "pred_adv": snap["pred_adv"].tolist(),
                "iou": [round(float(v), 4) for v in snap["iou"]],
            },
            indent=1,
        )
    )
    return png
