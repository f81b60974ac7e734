"""Transfer attacks: MI-FGSM with input diversity (DI) and translation invariance (TI).

- **DI** (Xie et al. 2019, "Improving Transferability of Adversarial Examples with Input
  Diversity", arXiv 1803.06978): at each step, with probability p, the gradient is taken at a
  randomly transformed input: the image shrunk to a random side r in [rate * H, H) and zero-padded
  at a random place back to H x W (the size-preserving form that torchattacks uses; the paper
  enlarges 299 to 330). The model keeps its input size.
- **TI** (Dong et al. 2019, "Evading Defenses to Transferable Adversarial Examples by
  Translation-Invariant Attacks", arXiv 1904.02884): the gradient is convolved with a Gaussian
  kernel (side k, radius 3 sigma, per channel) before the update, which approximates the gradient
  of an ensemble of translated images.

Both sit on MI-FGSM (Dong et al. 2018, arXiv 1710.06081), as in the papers (M-DI2-FGSM; TI-DIM):
g <- mu g + grad / ||grad||_1, x <- clip_[x-eps, x+eps] ∩ [0,1] (x + alpha sign(g)), alpha = eps /
steps. ``decay`` 0 gives the momentum-free forms, ``diversity_prob`` 0 turns DI off, ``kernel_size``
1 turns TI off. They are meant to be crafted on a surrogate and applied to another model
(:func:`advlens.attacks.transfer.transfer_matrix`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Attack, Param, linf_eps, linf_step_size, steps
from .losses import ce_objective
from .pgd import linf_bounds, project_linf_
from .trajectory import Rows


def diverse_input(x: torch.Tensor, rate: float, prob: float) -> torch.Tensor:
    """DI's transform: with probability ``prob`` shrink to a random side in [rate * H, H) and pad back."""
    if prob <= 0 or float(torch.rand(())) >= prob:
        return x
    h, w = x.shape[-2:]
    low = max(1, int(h * rate))
    if low >= h:
        return x
    side = int(torch.randint(low, h, ()))
    side_w = max(1, round(side * w / h))
    small = F.interpolate(x, size=(side, side_w), mode="nearest")
    top = int(torch.randint(0, h - side + 1, ()))
    left = int(torch.randint(0, w - side_w + 1, ()))
    return F.pad(small, (left, w - side_w - left, top, h - side - top), value=0.0)


def gaussian_kernel(size: int, channels: int, device) -> torch.Tensor:
    """TI's kernel: a size x size Gaussian (the side spans +-3 sigma), normalised, one per channel."""
    r = torch.linspace(-3.0, 3.0, size, device=device)
    g = torch.exp(-(r**2) / 2)
    k = g[:, None] * g[None, :]
    k = k / k.sum()
    return k.expand(channels, 1, size, size).contiguous()


def smooth_gradient(grad: torch.Tensor, size: int) -> torch.Tensor:
    if size <= 1:
        return grad
    k = gaussian_kernel(size, grad.shape[1], grad.device)
    return F.conv2d(grad, k, padding=size // 2, groups=grad.shape[1])


class DIFGSM(Attack):
    name = "difgsm"
    title = "DI-MI-FGSM (input diversity, transfer)"
    paper = "Xie et al. 2019, arXiv 1803.06978 (with MI-FGSM, Dong et al. 2018)"
    norm = "Linf"
    iterative = True
    PARAMS = (
        linf_eps(),
        steps(10),
        linf_step_size(auto="eps / steps"),
        Param("decay", float, 1.0, 0.0, 10.0, "", "momentum decay mu (0: DI2-FGSM without momentum)"),
        Param("diversity_prob", float, 0.5, 0.0, 1.0, "", "probability of the random resize-and-pad at each step"),
        Param("resize_rate", float, 0.9, 0.5, 1.0, "", "the smallest side of the random resize, as a fraction"),
        Param("kernel_size", int, 1, 1, 31, "", "TI: side of the Gaussian smoothing the gradient (1: off)"),
    )

    def check_config(self) -> None:
        if self.kernel_size % 2 == 0:
            from .base import AttackConfigError

            raise AttackConfigError("kernel_size must be odd")

    def _perturb(self, x, y, target):
        eps = float(self.eps)
        alpha = self.step_size if self.step_size is not None else eps / self.steps
        lo, hi = linf_bounds(x, torch.full((), eps, device=x.device))
        momentum = torch.zeros_like(x)
        x_adv = x.clone()
        rows = Rows(x, y, target, self.steps + 1)
        for t in range(self.steps):
            x_adv.requires_grad_(True)
            logits = self.model(diverse_input(x_adv, self.resize_rate, self.diversity_prob))
            loss = ce_objective(logits, y, target)
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            x_adv.requires_grad_(False)
            self.record_step(rows, t, x_adv, logits, loss)
            with torch.no_grad():
                grad = smooth_gradient(grad, self.kernel_size)
                l1 = grad.abs().flatten(1).mean(1).clamp_min_(1e-12).view(-1, 1, 1, 1)
                momentum.mul_(self.decay).add_(grad / l1)
                x_adv.add_(momentum.sign(), alpha=alpha)
                project_linf_(x_adv, lo, hi)
            if self.tick(t + 1, self.steps):
                break
        if self.trajectory is not None:
            with torch.no_grad():
                logits = self.model(x_adv)
            self.record_step(rows, self.steps, x_adv, logits, ce_objective(logits, y, target), last=True)
        return x_adv


class TIFGSM(DIFGSM):
    name = "tifgsm"
    title = "TI-DI-MI-FGSM (translation invariance, transfer)"
    paper = "Dong et al. 2019, arXiv 1904.02884 (with DI, Xie et al. 2019, and MI-FGSM)"
    PARAMS = DIFGSM.PARAMS[:-1] + (
        Param("kernel_size", int, 5, 1, 31, "", "side of the Gaussian smoothing the gradient (odd; 1: off)"),
    )
