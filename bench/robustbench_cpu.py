"""WideResNet-28-10 (the RobustBench CIFAR-10 workhorse) on the CPU: PGD-10 at batch 1 and one
Grad-CAM, against their floor (issue 25).

The floor of PGD-10 is 10 forward passes with a backward pass to the input (no weight gradients)
plus one forward (the final prediction), timed on the same model and image; the floor of Grad-CAM at
the default layer (``net.relu``, followed only by pooling and the linear layer) is one forward pass,
since its backward pass crosses only that linear layer. Random weights: the time does not depend on them. The best of ``--repeats`` runs.

    python bench/robustbench_cpu.py --threads 1 [--arch wide_resnet --depth 28 --width 10]
"""

from __future__ import annotations

import argparse
import time

import torch


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--arch", default="wide_resnet")
    ap.add_argument("--depth", type=int, default=28)
    ap.add_argument("--width", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from advlens.attacks import run_attack
    from advlens.attribution.cam import gradcam
    from advlens.models import build_model

    torch.manual_seed(0)
    model = build_model(args.arch, arch_kwargs={"depth": args.depth, "width": args.width}).eval()
    x = torch.rand(1, 3, 32, 32)
    y = model(x).argmax(1)

    model.requires_grad_(False)  # what the attacks do: gradients with respect to the input only

    def fwd_bwd():
        xi = x.clone().requires_grad_(True)
        torch.autograd.grad(torch.nn.functional.cross_entropy(model(xi), y), xi)

    def fwd():
        with torch.no_grad():
            model(x)

    fwd_bwd()  # warm up
    t_fb, t_f = best(fwd_bwd, args.repeats), best(fwd, args.repeats)
    t_pgd = best(lambda: run_attack(model, x, y, "pgd", eps=8 / 255, steps=10, restarts=1), args.repeats)
    t_cam = best(lambda: gradcam(model, x, y), args.repeats)
    floor_pgd, floor_cam = 10 * t_fb + t_f, t_f
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.arch} depth {args.depth} width {args.width} ({n / 1e6:.1f}M parameters), {args.threads} thread(s)")
    print(f"forward {t_f * 1e3:.0f} ms, forward+backward {t_fb * 1e3:.0f} ms")
    print(f"PGD-10, batch 1: {t_pgd:.2f} s, floor {floor_pgd:.2f} s ({t_pgd / floor_pgd:.2f}x)")
    print(
        f"Grad-CAM (default layer {model.default_cam_layer()}): {t_cam:.3f} s, floor {floor_cam:.3f} s "
        f"({t_cam / floor_cam:.2f}x)"
    )


if __name__ == "__main__":
    main()
