"""Step-by-step records of iterative attacks.

Entry ``k`` describes the iterate an attack evaluated at its ``k``-th model call: the attack's
objective (``loss``, always "higher is stronger": cross-entropy, or -CE to the target when
targeted, for the gradient attacks; DLR for APGD-DLR; the negative logit margin for DeepFool,
C&W and Square, which crosses 0 on success), the softmax probability of the true class and of
the target class, the L-inf and L2 norms of the perturbation, and whether the sample is
adversarial. All values are CPU tensors with one value per sample, so one trajectory serves a
whole batch.

Attacks that restart (PGD, APGD) or search (C&W's binary search over c) number their entries
with ``restart`` and ``step``. A restart that runs only on the samples still unbroken leaves
the other samples NaN (and ``present`` False) in its entries. Images are optional
(``keep_images``) and kept as float16 for at most a bounded number of entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

FIELDS = ("loss", "p_true", "p_target", "linf", "l2", "success")


@dataclass(frozen=True)
class Rows:
    """What stays fixed across the entries of one attack run: the clean images ``x`` of the rows
    attacked, their labels ``y`` (and ``target``), which rows of the batch they are (``index`` of
    ``n``; all rows when None), the restart, and how many entries the whole run records at most."""

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None
    entries: int
    restart: int = 0
    index: torch.Tensor | None = None
    n: int | None = None


@dataclass
class Trajectory:
    targeted: bool = False
    keep_images: bool = False
    step: list[int] = field(default_factory=list)
    restart: list[int] = field(default_factory=list)
    loss: list[torch.Tensor] = field(default_factory=list)
    p_true: list[torch.Tensor] = field(default_factory=list)
    p_target: list[torch.Tensor] = field(default_factory=list)
    linf: list[torch.Tensor] = field(default_factory=list)
    l2: list[torch.Tensor] = field(default_factory=list)
    success: list[torch.Tensor] = field(default_factory=list)
    present: list[torch.Tensor] = field(default_factory=list)
    images: dict[int, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.step)

    @torch.no_grad()
    def record(
        self,
        rows: Rows,
        step: int,
        x_adv: torch.Tensor,
        logits: torch.Tensor,
        loss: torch.Tensor,
        success: torch.Tensor,
        image: bool = False,
    ) -> None:
        """Add one entry for the rows ``rows`` describes (their clean images, labels and place in the batch)."""
        x, y, target, index, n, restart = rows.x, rows.y, rows.target, rows.index, rows.n, rows.restart
        probs = logits.detach().float().softmax(1)
        delta = (x_adv.detach() - x).flatten(1)
        values = {
            "loss": loss.detach().float(),
            "p_true": probs.gather(1, y[:, None])[:, 0],
            "p_target": probs.gather(1, target[:, None])[:, 0]
            if target is not None
            else torch.full_like(probs[:, 0], float("nan")),
            "linf": delta.abs().amax(1),
            "l2": delta.norm(dim=1),
        }
        succ = success.detach().bool()
        if index is None:
            present = torch.ones(len(x_adv), dtype=torch.bool)
            img = x_adv.detach()
        else:
            n = int(n)
            index = index.cpu()
            present = torch.zeros(n, dtype=torch.bool)
            present[index] = True
            values = {k: _scatter(v.cpu(), index, n, float("nan")) for k, v in values.items()}
            full = torch.zeros(n, dtype=torch.bool)
            full[index] = succ.cpu()
            succ = full
            img = None
            if image and self.keep_images:
                img = torch.full((n, *x_adv.shape[1:]), float("nan"), dtype=x_adv.dtype, device=x_adv.device)
                img[index.to(x_adv.device)] = x_adv.detach()
        self.step.append(int(step))
        self.restart.append(int(restart))
        for key, value in values.items():
            getattr(self, key).append(value.cpu())
        self.success.append(succ.cpu())
        self.present.append(present)
        if image and self.keep_images and img is not None:
            self.images[len(self.step) - 1] = img.to("cpu", torch.float16)

    def stacked(self, name: str) -> torch.Tensor:
        """One field as a (T, N) tensor."""
        if name not in FIELDS and name != "present":
            raise KeyError(f"unknown trajectory field {name!r}; fields: {', '.join(FIELDS)}")
        values = getattr(self, name)
        if not values:
            return torch.empty(0, 0)
        return torch.stack(values)

    def labels(self) -> list[str]:
        """A short label per entry: 'step 3' or 'restart 2 · step 3' when there are restarts."""
        many = len(set(self.restart)) > 1
        return [f"restart {r + 1} · step {s}" if many else f"step {s}" for r, s in zip(self.restart, self.step)]

    def series(self, sample: int = 0) -> dict[str, list]:
        """Plain lists for one sample, ready to chart: entry index, label and each field."""
        out: dict[str, list] = {
            "entry": list(range(len(self))),
            "label": self.labels(),
            "step": list(self.step),
            "restart": list(self.restart),
        }
        for name in FIELDS:
            values = getattr(self, name)
            out[name] = [float(v[sample]) if name != "success" else bool(v[sample]) for v in values]
        return out

    def frames(self) -> list[int]:
        """Entry indices that carry an image."""
        return sorted(self.images)

    def image(self, entry: int, sample: int = 0) -> torch.Tensor | None:
        """The (C, H, W) float32 image of ``sample`` at ``entry``, or None when not recorded there."""
        img = self.images.get(entry)
        if img is None or not bool(self.present[entry][sample]):
            return None
        return img[sample].float()

    def nearest_frame(self, entry: int) -> int | None:
        """The recorded image entry closest to ``entry`` (images may be kept every k steps)."""
        frames = self.frames()
        if not frames:
            return None
        return min(frames, key=lambda f: (abs(f - entry), -f))


def _scatter(values: torch.Tensor, index: torch.Tensor, n: int, fill: float) -> torch.Tensor:
    out = torch.full((n,), fill, dtype=values.dtype)
    out[index] = values
    return out
