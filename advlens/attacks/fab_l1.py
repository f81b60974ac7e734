"""FAB-T in L1 (Croce and Hein 2020, arXiv 1907.02044), the third attack of AutoAttack's L1
standard version. The algorithm is :class:`advlens.attacks.fab.FABT`'s; only the norm changes:

- the step onto the linearised boundary is the least-L1 one inside the box: reaching
  w . d = c at the smallest sum |d_i| is a fractional knapsack, so the coordinates move, the
  largest |w_i| first, all the way to their box wall until the plane is reached
  (:func:`project_l1`);
- sizes are L1 norms, and the closest point found is projected onto the eps-L1-ball and the box
  (:func:`advlens.attacks.apgd_l1.project_l1_box`).
"""

from __future__ import annotations

import torch

from .apgd_l1 import l1_eps, project_l1_box
from .boundary import _oriented
from .fab import FABT


def project_l1(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row, the d of least L1 norm with w . (t + d) = b and 0 <= t + d <= 1 (the box corner
    that comes closest when the box cannot reach the plane)."""
    ws, need = _oriented(t, w, b)
    room = torch.where(ws > 0, 1.0 - t, t).masked_fill_(ws == 0, 0.0)
    size = ws.abs()
    order = size.argsort(1, descending=True)
    s, r = size.gather(1, order), room.gather(1, order)
    gain = s * r
    before = gain.cumsum(1) - gain  # what the larger coordinates reach at their walls
    move = torch.minimum(((need[:, None] - before) / s.clamp_min(1e-30)).clamp_min(0.0), r)
    return torch.zeros_like(t).scatter_(1, order, move) * ws.sign()


class FABTL1(FABT):
    name = "fab_t_l1"
    title = "FAB-T (L1)"
    norm = "L1"
    PARAMS = (l1_eps(),) + FABT.PARAMS[1:]

    @staticmethod
    def size(d: torch.Tensor) -> torch.Tensor:
        return d.flatten(1).abs().sum(1)

    @staticmethod
    def project(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return project_l1(t, w, b)

    def random_start(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn_like(x)
        return x + 0.5 * float(self.eps) * noise / self.size(noise).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))

    def clip_to_ball(self, point: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (x + project_l1_box(x, point - x, float(self.eps))).clamp_(0.0, 1.0)
