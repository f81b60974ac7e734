"""Issue 28: speed against the floor for the corruptions suite, DI/TI-FGSM and HopSkipJump, and a
transfer matrix of MI/DI/TI-FGSM between the shipped CIFAR-10 models.

    python bench/issue28_speed.py [--n 100] [--skip-transfer]

Floors (the passes an attack cannot avoid): the corruptions suite, 75 forward passes per image (one
per corruption and severity); DI/TI-FGSM, ``steps`` forward+backward passes per image, as MI-FGSM;
HopSkipJump, one forward pass per query (measured as the same number of images in batches of 256).
"""

from __future__ import annotations

import argparse
import time

import torch


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--skip-transfer", action="store_true")
    args = ap.parse_args()

    from advlens.attacks import ATTACKS
    from advlens.attacks.transfer import transfer_matrix
    from advlens.corruptions import NAMES, SEVERITIES, corrupt
    from advlens.data import load_dataset, to_float
    from advlens.data.subset import choose_images
    from advlens.evaluation.corruption_suite import evaluate_corruptions
    from advlens.zoo import load_model

    torch.set_num_threads(1)
    model = load_model("cifar10_resnet20", "cpu")
    ds = load_dataset("cifar10_samples")
    subset = choose_images(ds, args.n)
    x, y = ds.batch(subset.indices)
    x = to_float(x)

    def forwards(images: int, batch: int = 128) -> float:
        z = x[:1].expand(batch, -1, -1, -1).contiguous()
        t0 = time.perf_counter()
        with torch.no_grad():
            for s in range(0, images, batch):
                model(z[: min(batch, images - s)])
        return time.perf_counter() - t0

    # ---- corruptions
    gen = {}
    for name in NAMES:
        _, sec = timed(lambda name=name: [corrupt(x[:20], name, s) for s in SEVERITIES])
        gen[name] = sec / (20 * len(SEVERITIES)) * 1000
    print("corruption generation, ms per image:", ", ".join(f"{k} {v:.2f}" for k, v in gen.items()))
    res, total = timed(lambda: evaluate_corruptions(model, x, y, keys=subset.indices.tolist()))
    floor = forwards(75 * len(x))
    print(
        f"corruptions suite on {len(x)} images: {total:.1f} s (mCA {res.mean_accuracy() * 100:.1f}%); floor "
        f"(75 x {len(x)} forward passes) {floor:.1f} s; generation {sum(gen.values()) * 5 * len(x) / 1000:.1f} s"
    )

    # ---- DI / TI / MI-FGSM
    xb, yb = x[:64], y[:64]
    for name in ("mifgsm", "difgsm", "tifgsm"):
        torch.manual_seed(0)
        _, sec = timed(lambda name=name: ATTACKS[name](model, eps=8 / 255, steps=10)(xb, yb))
        print(f"{name}: 10 steps on 64 images {sec:.2f} s")
    z = xb.clone().requires_grad_(True)
    t0 = time.perf_counter()
    for _ in range(10):
        (g,) = torch.autograd.grad(model(z).sum(), z)
    print(f"floor (10 forward+backward passes on 64 images): {time.perf_counter() - t0:.2f} s")

    # ---- HopSkipJump
    torch.manual_seed(0)
    hsj = ATTACKS["hopskipjump"](model, steps=5)
    _, sec = timed(lambda: hsj(x[:2], y[:2]))
    q = int(hsj.queries.sum())
    print(
        f"hopskipjump: 5 iterations on 2 images, {q} queries in {sec:.2f} s; floor ({q} forward passes in "
        f"batches of 128) {forwards(q):.2f} s"
    )

    # ---- transfer matrix between the shipped CIFAR-10 models
    if args.skip_transfer:
        return
    models = {m: load_model(m, "cpu") for m in ("cifar10_resnet20", "cifar10_resnet20_fast_at")}
    for attack in ("mifgsm", "difgsm", "tifgsm"):
        torch.manual_seed(0)
        tm, sec = timed(lambda attack=attack: transfer_matrix(models, x, y, attack, eps=8 / 255, steps=10))
        cells = ", ".join(
            f"{a} -> {b}: {tm.rate[i][j] * 100:.0f}% of {tm.n[j]}"
            for i, a in enumerate(tm.names)
            for j, b in enumerate(tm.names)
        )
        print(f"transfer {attack} eps 8/255 10 steps, {len(x)} images ({sec:.0f} s): {cells}")


if __name__ == "__main__":
    main()
