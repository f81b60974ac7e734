"""HopSkipJump, a decision-based attack, L2 and L-inf (Chen, Jordan and Wainwright 2020, arXiv 1904.02144).

The attack sees only the model's top-1 label, through a :class:`LabelOracle` that counts one query
per image evaluated (it never reads a logit or a gradient). It is a minimal-norm attack: it starts
from an adversarial point (uniform noise blended toward x by binary search) and shrinks the distance
to x while staying adversarial. Each iteration t (the paper's Algorithm 2):

1. binary search on the segment (L2) or the L-inf box (L-inf) between x and the current point, to
   threshold theta (theta = gamma / d^{3/2} for L2, gamma / d^2 for L-inf), onto the boundary;
2. estimate the boundary's normal there from B_t = min(B_0 sqrt(t), B_max) label queries at
   random unit directions u_b (Gaussian for L2, uniform for L-inf) at radius delta_t:
   g = mean_b (phi_b - mean phi) u_b, phi_b = +-1 adversarial or not (delta_1 = 0.1, then
   sqrt(d) theta dist_{t-1} for L2, d theta dist_{t-1} for L-inf);
3. step along g (sign(g) for L-inf) by xi = dist / sqrt(t), halved until adversarial (the
   geometric step-size search).

Recording (``record=True``) keeps one entry per iteration: its ``step`` is the number of queries
image 0 has used so far (so the Attack Lab's trajectory reads queries against distance), the loss
is minus the distance (higher is stronger), and the probabilities are those of the label the
attack saw (1 for the predicted class): the attack never sees more. ``self.queries`` holds each
image's total, ``self.query_curve`` the (queries, distance) points of every image, ``self.no_start``
the images for which none of the ``start_draws`` noise draws was adversarial (they are returned
unchanged; the trajectory carries both).
"""

from __future__ import annotations

import math

import torch

from .base import Attack, Param, steps

LINF, L2 = "Linf", "L2"


class LabelOracle:
    """The model as HopSkipJump may use it: images in, top-1 labels out, one query per image."""

    def __init__(self, model, n: int, device):
        self._model = model
        self.queries = torch.zeros(n, dtype=torch.long, device=device)

    @torch.no_grad()
    def labels(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The labels of ``x`` (clipped to [0, 1]); ``rows[i]`` is the attacked image ``x[i]`` belongs to."""
        self.queries += torch.bincount(rows, minlength=len(self.queries))
        return self._model(x.clamp(0.0, 1.0)).argmax(1)


class HopSkipJump(Attack):
    name = "hopskipjump"
    title = "HopSkipJump (L2, label-only)"
    paper = "Chen et al. 2020, arXiv 1904.02144"
    norm = None  # minimal-norm: it reports the distance it reaches
    distance = L2
    iterative = True
    uses_gradients = False
    CPU_PRESET = {"steps": 10, "max_evals": 300}
    PARAMS = (  # 10 iterations (about 2,400 queries) for a live run; the paper runs 40 and more
        steps(10, 1000, "iterations (each: a binary search, a gradient estimate, a step search)"),
        Param("init_evals", int, 100, 1, 100_000, "", "label queries of the first gradient estimate (B_0)"),
        Param("max_evals", int, 10_000, 1, 100_000, "", "at most this many queries per gradient estimate"),
        Param("gamma", float, 1.0, 1e-6, 1000.0, "", "binary-search threshold factor (theta = gamma / d^1.5)"),
        Param("batch_size", int, 256, 1, 100_000, "", "images sent to the model at once"),
        Param(
            "start_draws",
            int,
            200,
            10,
            10_000,
            "",
            "noise draws per image for an adversarial starting point (half uniform, half around the image)",
        ),
    )

    # ----- the oracle's view ------------------------------------------------------------------
    def _adversarial(self, z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        out = []
        for s in range(0, len(z), self.batch_size):
            r = rows[s : s + self.batch_size]
            lab = self._oracle.labels(z[s : s + self.batch_size], r)
            out.append(lab != self._y[r] if self._target is None else lab == self._target[r])
        return torch.cat(out)

    def _dist(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = (a - b).flatten(1)
        return d.norm(dim=1) if self.distance == L2 else d.abs().amax(1)

    def _project(self, x: torch.Tensor, xa: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        a = alpha.view(-1, 1, 1, 1)
        if self.distance == L2:
            return (1 - a) * x + a * xa
        return torch.minimum(torch.maximum(xa, x - a), x + a)

    def _binary_search(self, x, xa, rows, theta):
        """Onto the boundary between x (not adversarial) and xa (adversarial), to the threshold."""
        if self.distance == L2:
            high = torch.ones(len(x), device=x.device)
            thr = torch.full_like(high, theta)
        else:
            high = self._dist(xa, x)
            thr = torch.clamp(high * theta, max=theta)
        low = torch.zeros_like(high)
        while True:
            todo = ((high - low) / thr > 1).nonzero()[:, 0]
            if todo.numel() == 0:
                break
            mid = (high[todo] + low[todo]) / 2
            adv = self._adversarial(self._project(x[todo], xa[todo], mid), rows[todo])
            high[todo] = torch.where(adv, mid, high[todo])
            low[todo] = torch.where(adv, low[todo], mid)
        return self._project(x, xa, high)

    def _initial(self, x, rows):
        """Uniform noise until adversarial (the first half of ``start_draws`` per image, 10 per call; then
        Gaussian noise around x with a sigma growing from 0.05 to 25.6: a model may give all uniform noise
        one label), blended toward x by binary search (to 0.001)."""
        n = len(x)
        start = x.clone()
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        draws = 10  # candidates per image and call; the first adversarial one is kept (one query each)
        rounds = max(2, math.ceil(self.start_draws / draws))
        uniform = rounds // 2
        for r in range(rounds):
            todo = (~found).nonzero()[:, 0]
            if todo.numel() == 0:
                break
            base = x[todo].repeat_interleave(draws, 0)
            if r < uniform:
                noise = torch.rand_like(base)
            else:  # a model may label all uniform noise one class: then noise around x, growing
                grow = 9 * (r - uniform) / max(rounds - uniform - 1, 1)  # 0 .. 9 doublings
                noise = (base + 0.05 * 2**grow * torch.randn_like(base)).clamp_(0.0, 1.0)
            adv = self._adversarial(noise, rows[todo].repeat_interleave(draws)).view(-1, draws)
            hit = adv.any(1)
            first = adv.float().argmax(1)
            pick = torch.arange(len(todo), device=x.device) * draws + first
            start[todo[hit]] = noise[pick[hit]]
            found[todo[hit]] = True
        idx = found.nonzero()[:, 0]
        if idx.numel():
            low = torch.zeros(len(idx), device=x.device)
            high = torch.ones_like(low)
            while bool((high - low > 0.001).any()):
                todo = (high - low > 0.001).nonzero()[:, 0]
                mid = (high[todo] + low[todo]) / 2
                blend = (1 - mid.view(-1, 1, 1, 1)) * x[idx[todo]] + mid.view(-1, 1, 1, 1) * start[idx[todo]]
                adv = self._adversarial(blend, rows[idx[todo]])
                high[todo] = torch.where(adv, mid, high[todo])
                low[todo] = torch.where(adv, low[todo], mid)
            h = high.view(-1, 1, 1, 1)
            start[idx] = (1 - h) * x[idx] + h * start[idx]
        return start, found

    def _gradient(self, xb, rows, delta, evals):
        """The estimated boundary normal at each boundary point ``xb`` (unit norm), ``evals`` queries each;
        the probes of several images go to the model together (about 4 batches' worth at a time)."""
        grads = torch.empty_like(xb)
        group = max(1, (4 * self.batch_size) // evals)
        for s in range(0, len(xb), group):
            idx = torch.arange(s, min(s + group, len(xb)), device=xb.device)
            k = len(idx)
            shape = (k, evals, *xb.shape[1:])
            if self.distance == L2:
                u = torch.randn(shape, device=xb.device)
            else:
                u = torch.rand(shape, device=xb.device) * 2 - 1
            u = u / u.flatten(2).norm(dim=2).clamp_min(1e-12).view(k, evals, 1, 1, 1)
            base = xb[idx][:, None]
            dl = delta[idx].view(k, 1, 1, 1, 1)
            z = (base + dl * u).clamp_(0.0, 1.0)
            u = (z - base) / dl
            f = self._adversarial(z.flatten(0, 1), rows[idx].repeat_interleave(evals)).float().view(k, evals) * 2 - 1
            mean = f.mean(1, keepdim=True)
            weight = torch.where(mean.abs() == 1.0, mean.expand_as(f), f - mean)  # all one side: +-mean(u)
            g = (weight.view(k, evals, 1, 1, 1) * u).mean(1)
            grads[idx] = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return grads

    def _step_search(self, xb, rows, update, dist, t):
        """xi = dist / sqrt(t), halved until xb + xi * update is adversarial (at most 30 halvings)."""
        eps = dist / math.sqrt(t)
        ok = torch.zeros(len(xb), dtype=torch.bool, device=xb.device)
        for _ in range(30):
            todo = (~ok).nonzero()[:, 0]
            if todo.numel() == 0:
                break
            cand = xb[todo] + eps[todo].view(-1, 1, 1, 1) * update[todo]
            adv = self._adversarial(cand, rows[todo])
            ok[todo[adv]] = True
            eps[todo[~adv]] /= 2
        eps = torch.where(ok, eps, torch.zeros_like(eps))
        return (xb + eps.view(-1, 1, 1, 1) * update).clamp_(0.0, 1.0)

    def _confirm(self, x, xa, rows):
        """A point found on the boundary can fall on the wrong side when the model is asked again in
        another batch (float rounding): check each once more and, where needed, move it a little
        farther from x (by 0.1%, 1%, 10%) until adversarial. One query per image and try."""
        moved = xa.clone()
        live = (xa != x).flatten(1).any(1).nonzero()[:, 0]
        for push in (0.0, 0.001, 0.01, 0.1):
            if live.numel() == 0:
                break
            cand = (x[live] + (1 + push) * (xa[live] - x[live])).clamp_(0.0, 1.0)
            adv = self._adversarial(cand, rows[live])
            moved[live[adv]] = cand[adv]
            live = live[~adv]
        return moved

    # ----- the loop -----------------------------------------------------------------------------
    def _record(self, x, y, target, xa, t):
        if self.trajectory is None:
            return
        from .trajectory import Rows

        known = self._found  # adversarial points: the attack knows only that their label is not y (or is t)
        logits = torch.zeros(len(x), self.num_classes, device=x.device)
        logits[torch.arange(len(x)), y] = 1.0  # not adversarial: the true label
        if bool(known.any()):
            wrong = (y[known] + 1) % self.num_classes if target is None else target[known]
            logits[known] = 0.0
            logits[known.nonzero()[:, 0], wrong] = 1.0  # some other label than y (or the target)
        logits = logits * 50.0
        q0 = int(self._oracle.queries[0])
        self.record_step(Rows(x, y, target, self.steps + 1), q0, xa, logits, -self._dist(xa, x), last=t == self.steps)

    def _perturb(self, x, y, target):
        n = len(x)
        d = x[0].numel()
        theta = self.gamma / (d * math.sqrt(d)) if self.distance == L2 else self.gamma / d**2
        rows = torch.arange(n, device=x.device)
        self._oracle = LabelOracle(self.model, n, x.device)
        self._y, self._target = y, target
        clean_adv = self._adversarial(x, rows)  # already misclassified: nothing to do
        xa, found = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
        todo = (~clean_adv).nonzero()[:, 0]
        if todo.numel():
            xa[todo], found[todo] = self._initial(x[todo], rows[todo])
        self._found = found | clean_adv
        live = found.nonzero()[:, 0]
        curve = [[] for _ in range(n)]
        if live.numel():
            before = self._dist(xa[live], x[live])
            xa[live] = self._binary_search(x[live], xa[live], rows[live], theta)
            for i in range(n):
                curve[i].append((int(self._oracle.queries[i]), float(self._dist(xa[i : i + 1], x[i : i + 1]))))
            self._record(x, y, target, xa, 0)
            for t in range(1, self.steps + 1):
                if self.tick(t, self.steps):
                    break
                xl, xb, rl = x[live], xa[live], rows[live]
                dist = self._dist(xb, xl)
                if t == 1:
                    delta = torch.full_like(dist, 0.1)
                else:
                    delta = (math.sqrt(d) if self.distance == L2 else d) * theta * before
                evals = int(min(self.init_evals * math.sqrt(t), self.max_evals))
                grad = self._gradient(xb, rl, delta, evals)
                update = grad if self.distance == L2 else grad.sign()
                stepped = self._step_search(xb, rl, update, dist, t)
                before = self._dist(stepped, xl)
                xa[live] = self._binary_search(xl, stepped, rl, theta)
                for i in live.tolist():
                    curve[i].append((int(self._oracle.queries[i]), float(self._dist(xa[i : i + 1], x[i : i + 1]))))
                self._record(x, y, target, xa, t)
        xa = self._confirm(x, xa, rows)
        for i in found.nonzero()[:, 0].tolist():  # the confirmed point ends each image's curve
            curve[i].append((int(self._oracle.queries[i]), float(self._dist(xa[i : i + 1], x[i : i + 1]))))
        self.queries = self._oracle.queries.cpu()
        self.query_curve = curve
        self.no_start = (~found & ~clean_adv).cpu()  # images no noise draw made adversarial: left as they were
        if self.trajectory is not None:
            self.trajectory.queries = self.queries  # type: ignore[attr-defined]
            self.trajectory.no_start = self.no_start  # type: ignore[attr-defined]
        del self._oracle, self._y, self._target
        return xa


class HopSkipJumpLinf(HopSkipJump):
    name = "hopskipjump_linf"
    title = "HopSkipJump (L-inf, label-only)"
    distance = LINF
    PARAMS = HopSkipJump.PARAMS[:3] + (
        Param("gamma", float, 1.0, 1e-6, 1000.0, "", "binary-search threshold factor (theta = gamma / d^2)"),
        *HopSkipJump.PARAMS[4:],
    )
