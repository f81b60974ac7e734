"""L1 Square: ours (``square_l1``) against the official one (pyautoattack 0.2.0 ``SquareAttack(norm="L1")``),
the same settings, model and images: robust images and time.

    OMP_NUM_THREADS=1 python bench/square_l1_agreement.py

``digits_small_cnn``, the first 64 digits test images, 1,000 queries, p_init 0.8, the schedule not
rescaled, seed 0, L1 eps 6 and 10 (the figures in bench/RESULTS.md, issue 28).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from pyautoattack.square import SquareAttack

    from advlens.attacks import ATTACKS
    from advlens.data import load_dataset, to_float
    from advlens.zoo import load_model

    torch.set_num_threads(1)
    model = load_model("digits_small_cnn", "cpu")
    x, y = load_dataset("digits").batch(range(64))
    x = to_float(x)
    for eps in (6.0, 10.0):
        torch.manual_seed(0)
        t0 = time.perf_counter()
        ours = ATTACKS["square_l1"](model, eps=eps, steps=1000, rescale=False)(x, y)
        ours_s = time.perf_counter() - t0
        official = SquareAttack(
            lambda z: model(z), norm="L1", eps=eps, n_queries=1000, p_init=0.8, resc_schedule=False, seed=0
        )
        t0 = time.perf_counter()
        theirs = official.perturb(x, y)
        theirs_s = time.perf_counter() - t0
        with torch.no_grad():
            a, b = (int((model(v).argmax(1) == y).sum()) for v in (ours, theirs))
        l1 = float((ours - x).flatten(1).abs().sum(1).max())
        print(
            f"eps {eps:g}: robust ours {a}/64 ({ours_s:.1f} s, largest L1 {l1:.4f}), official {b}/64 ({theirs_s:.1f} s)"
        )


if __name__ == "__main__":
    main()
