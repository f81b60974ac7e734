"""Loop state that a long attack saves as it goes and picks up again: the universal perturbation and
the patch run for minutes as background jobs, and a stopped or killed job continues from its last state.

An attack that mixes in :class:`Resumable` calls :meth:`Resumable.restored` once before its loop and
:meth:`Resumable.checkpoint` after each step. The state holds the step, the history, the loop's tensors
and the CPU random generator, so a resumed run draws what the uninterrupted run would have drawn and
ends with the same result. Who keeps the state is the caller's business: it sets ``resume_state`` (what
it read back) and ``save_state`` (a callable that writes one), see :mod:`advlens.perturbations.state`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


class Resumable:
    resume_state: dict | None = None  # set by the caller: the state to continue from
    save_state: Callable[[dict], None] | None = None  # set by the caller: writes a state
    save_every_s: float = 5.0  # at most one save per this many seconds (0: every step)
    _saved_at: float = 0.0

    def restored(self, tensors: dict[str, torch.Tensor]) -> tuple[int, list[float]]:
        """Copy a saved state into ``tensors`` (in place) and the random generator; (step, history).
        (0, []) when there is none or it does not fit (another shape: a changed spec)."""
        state = self.resume_state
        if not state:
            return 0, []
        saved = state.get("tensors", {})
        if set(saved) != set(tensors) or any(saved[k].shape != t.shape for k, t in tensors.items()):
            return 0, []
        with torch.no_grad():
            for k, t in tensors.items():
                t.copy_(saved[k].to(t.device, t.dtype))
        torch.set_rng_state(state["rng"])
        return int(state["step"]), list(state.get("history", []))

    def checkpoint(self, step: int, tensors: dict[str, torch.Tensor], history: list[float], force=False) -> None:
        """Hand the state after ``step`` steps to ``save_state``, at most once per ``save_every_s``
        (``force``: now, e.g. when the loop was asked to stop)."""
        if self.save_state is None:
            return
        now = time.monotonic()
        if not force and now - self._saved_at < self.save_every_s:
            return
        self._saved_at = now
        self.save_state(
            {
                "step": step,
                "history": list(history),
                "tensors": {k: t.detach().cpu().clone() for k, t in tensors.items()},
                "rng": torch.get_rng_state(),
            }
        )
