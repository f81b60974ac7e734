"""An adversarial patch trained with expectation over transformation (Brown, Mane, Roy, Abadi and Gilmer
2017, "Adversarial Patch", arXiv 1712.09665; EOT: Athalye et al. 2018, arXiv 1707.07397).

A square patch p of ``side`` pixels (the largest square within ``area`` of the image) replaces the pixels
it covers; where it lands is random: a uniform position, a scale s in [min_scale, 1] and a rotation r in
[-max_rotation, max_rotation] degrees. The patch is trained to make the model predict the target class
t wherever it lands, on every training image (Adam on the pixels, kept in [0, 1], its rate decaying
to 0 on a cosine):

    p* = argmax_p  E_{x ~ X, (pos, s, r) ~ T} [ log P( t | A(p, x, pos, s, r) ) ]

A(p, x, ...) rotates and scales the patch inside its ``side`` x ``side`` box (bilinear; what leaves
the box is cut off), then pastes the box at an integer position: the patch never covers more than
side^2 pixels, at most ``area`` of the image. Untargeted (no target): the true class's margin is
decreased instead. ``attack(x, y, target)`` trains on the batch and returns it patched at random
placements; the patch is ``attack.patch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..params import Param
from .base import Attack, AttackConfigError, steps
from .losses import ce_objective, is_success, margin
from .resumable import Resumable


def patch_side(area: float, height: int, width: int) -> int:
    """The side of the largest square of at most ``area`` of an ``height`` x ``width`` image (>= 1)."""
    return max(1, min(height, width, math.isqrt(int(area * height * width + 1e-9))))


@dataclass
class Placement:
    """Where the patch lands on each image: the box's top-left pixel, its scale and rotation (degrees)."""

    rows: torch.Tensor  # (N,) long
    cols: torch.Tensor  # (N,) long
    scale: torch.Tensor  # (N,) float, the side's factor, <= 1
    angle: torch.Tensor  # (N,) float, degrees

    def __len__(self) -> int:
        return len(self.rows)

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("rows", "cols", "scale", "angle")}


def sample_placements(
    n: int,
    side: int,
    size: tuple[int, int],
    min_scale: float = 1.0,
    max_rotation: float = 0.0,
    generator: torch.Generator | None = None,
) -> Placement:
    """``n`` placements drawn uniformly: position (the whole box inside the image), scale, rotation."""
    h, w = size
    u = torch.rand(n, 4, generator=generator)
    return Placement(
        rows=(u[:, 0] * (h - side + 1)).long().clamp_(max=h - side),
        cols=(u[:, 1] * (w - side + 1)).long().clamp_(max=w - side),
        scale=min_scale + (1.0 - min_scale) * u[:, 2],
        angle=(2 * u[:, 3] - 1) * max_rotation,
    )


def fixed_placement(n: int, row: int, col: int, scale: float = 1.0, angle: float = 0.0) -> Placement:
    return Placement(
        rows=torch.full((n,), int(row), dtype=torch.long),
        cols=torch.full((n,), int(col), dtype=torch.long),
        scale=torch.full((n,), float(scale)),
        angle=torch.full((n,), float(angle)),
    )


def transformed_boxes(patch: torch.Tensor, placement: Placement) -> torch.Tensor:
    """(N, C + 1, side, side): each image's patch rotated and scaled in its box, premultiplied by its
    coverage alpha (the last channel, in [0, 1]; 0 outside the patch)."""
    c, side, _ = patch.shape
    n = len(placement)
    rgba = torch.cat([patch, torch.ones_like(patch[:1])]).unsqueeze(0).expand(n, -1, -1, -1)
    a = placement.angle.to(patch) * (math.pi / 180)
    k = placement.scale.to(patch)
    cos, sin = torch.cos(a) / k, torch.sin(a) / k
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, [n, c + 1, side, side], align_corners=False)
    return F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def apply_patch(x: torch.Tensor, patch: torch.Tensor, placement: Placement) -> torch.Tensor:
    """``x`` with ``patch`` (C, side, side) in [0, 1] pasted where ``placement`` says; stays in [0, 1]."""
    n, _, h, w = x.shape
    side = patch.shape[-1]
    boxes = transformed_boxes(patch.to(x), placement)
    canvas = torch.stack(
        [
            F.pad(boxes[i], (int(cc), w - side - int(cc), int(r), h - side - int(r)))
            for i, (r, cc) in enumerate(zip(placement.rows.tolist(), placement.cols.tolist()))
        ]
    )
    rgb, alpha = canvas[:, :-1], canvas[:, -1:]
    return (x * (1 - alpha) + rgb).clamp(0.0, 1.0)


class AdversarialPatch(Resumable, Attack):
    name = "patch"
    title = "Adversarial patch (EOT)"
    paper = "Brown et al. 2017, arXiv 1712.09665"
    norm = None  # the budget is the patch's area, not a norm
    iterative = True
    PARAMS = (
        Param("area", float, 0.1, 0.001, 0.5, "", "the largest share of the image the patch covers (0.1: 10%)"),
        steps(500, 100_000, "gradient steps"),
        Param("batch_size", int, 64, 1, 1024, "", "images (each with its own placement) per step"),
        Param("lr", float, 0.05, 1e-4, 1.0, "", "Adam's learning rate on the patch's pixels"),
        Param("min_scale", float, 0.8, 0.1, 1.0, "", "smallest scale of the patch's side (EOT)"),
        Param("max_rotation", float, 20.0, 0.0, 180.0, "", "largest rotation either way, degrees (EOT)"),
    )

    def side(self, x: torch.Tensor) -> int:
        return patch_side(self.area, x.shape[-2], x.shape[-1])

    def _perturb(self, x, y, target):
        n, c, h, w = x.shape
        side = self.side(x)
        if side < 2:
            raise AttackConfigError(f"a patch of {self.area:g} of a {h}x{w} image is less than 2x2 pixels")
        param = torch.rand(c, side, side).to(x.device).requires_grad_(True)
        adam = _Adam(param, self.lr)
        state = {"patch": param, "adam_m": adam.m, "adam_v": adam.v}
        start, self.history = self.restored(state)  # history: the targeted success on each step's batch
        adam.t = start  # one Adam step per step
        for step in range(start, self.steps):
            adam.lr = self.lr * 0.5 * (1 + math.cos(math.pi * step / self.steps))  # cosine decay to 0
            idx = torch.randint(n, (min(self.batch_size, n),)).to(x.device)
            yb, tb = y[idx], target[idx] if target is not None else None
            placement = sample_placements(len(idx), side, (h, w), self.min_scale, self.max_rotation)
            with torch.enable_grad():
                xb = apply_patch(x[idx], param, placement)
                if target is None:
                    grad_x, logits, _ = self.loss_gradient(xb, lambda z, yb=yb: -margin(z, yb).clamp(min=-5.0))
                else:
                    grad_x, logits, _ = self.loss_gradient(xb, lambda z, yb=yb, tb=tb: ce_objective(z, yb, tb))
                # chain rule to the patch's pixels (a scalar: grad_outputs would import sympy on first use)
                (g,) = torch.autograd.grad((xb * grad_x).sum() / -len(idx), param)
            adam.step(g)
            self.history.append(float(is_success(logits, yb, tb).float().mean()))
            stop = self.tick(step + 1, self.steps)
            self.checkpoint(step + 1, state, self.history, force=stop)
            if stop:
                break
        self.patch = param.detach().clone()
        placement = sample_placements(n, side, (h, w), self.min_scale, self.max_rotation)
        self.placement = placement
        with torch.no_grad():
            return apply_patch(x, self.patch, placement)


class _Adam:
    """Adam (Kingma and Ba 2015) on one tensor, in place, kept in [0, 1]; torch.optim's would import
    torch._dynamo (seconds) on its first step."""

    def __init__(self, param: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.param, self.lr, self.betas, self.eps = param, lr, betas, eps
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.t = 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        self.param.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps)).clamp_(0.0, 1.0)
