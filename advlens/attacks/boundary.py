"""The smallest step onto a hyperplane inside the [0, 1] box, in L-inf and in L2 (for FAB).

For each row: points t, normals w (both (m, D)) and offsets b (m,), find the d of least norm with
w . (t + d) = b and 0 <= t + d <= 1. Flip the signs so that the change needed, c = b - w . t, is
>= 0; then both problems have a one-parameter family of candidates whose reach w . d grows with
the parameter, and bisection finds the smallest parameter that reaches c:

- L-inf: d_i(r) = sign(w_i) min(r, room_i), room_i the distance to the box wall that w_i points
  to; reach(r) = sum_i |w_i| min(r, room_i), r in [0, 1].
- L2 (the KKT conditions): d_i(l) = clip(l w_i, -t_i, 1 - t_i) for l >= 0; l starts at the
  unconstrained solution c / |w|^2 (a lower bound: clipping only loses reach).

When the box cannot reach the plane, the answer is the box corner that comes closest (r = 1,
l at its top). FAB overshoots the plane by 5%, so a relative precision of 1e-7 is plenty.
"""

from __future__ import annotations

import math

import torch

ITERATIONS = 26  # halvings: the L-inf radius to 1.5e-8, the log of the L2 multiplier to 4e-7
L2_SPAN = 40 * math.log(2.0)  # the L2 multiplier is searched in [c / |w|^2, 2^40 c / |w|^2]


def _oriented(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
    c = b - (w * t).sum(1)
    sign = torch.where(c >= 0, 1.0, -1.0).to(t.dtype)
    return w * sign[:, None], c.abs()


def _bisect(reach, need: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The smallest parameter in [lo, hi] whose reach is >= need (hi when none is), per row."""
    for _ in range(ITERATIONS):
        mid = 0.5 * (lo + hi)
        ok = reach(mid) >= need
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    return hi


def project_linf(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ws, need = _oriented(t, w, b)
    room = torch.where(ws > 0, 1.0 - t, t).masked_fill_(ws == 0, 0.0)
    size = ws.abs()

    def reach(r):
        return (size * torch.minimum(room, r[:, None])).sum(1)

    r = _bisect(reach, need, torch.zeros_like(need), torch.ones_like(need))
    return ws.sign() * torch.minimum(room, r[:, None])


def project_l2(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ws, need = _oriented(t, w, b)
    lo_box, hi_box = -t, 1.0 - t

    def step(log_l):
        return torch.clamp(log_l.exp()[:, None] * ws, lo_box, hi_box)

    def reach(log_l):
        return (ws * step(log_l)).sum(1)

    start = (need / (ws * ws).sum(1).clamp_min(1e-30)).clamp_min(1e-30).log()
    log_l = _bisect(reach, need, start, start + L2_SPAN)
    return step(log_l)
