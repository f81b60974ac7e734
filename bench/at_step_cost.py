"""The cost of one adversarial-training step against k+1 clean training steps.

A PGD-k adversarial-training step (:mod:`defenses.objectives.pgd_at`, through the same objective
call, backward and optimiser step as the trainer) does k attack iterations (forward + gradient
with respect to the input) and one training step (forward + backward + optimiser). The reference
is k+1 standard training steps on the same batch. Target: ratio <= 1.15 (the attack iterations
must cost no more than training steps).

    python bench/at_step_cost.py                         # small_cnn, batch 128, k = 7 and 10
    python bench/at_step_cost.py --arch preact_resnet18 --batch 64 --k 7 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from advlens.models import build_model
from advlens.training.config import TrainConfig
from advlens.training.objectives import StepContext, get_objective
from bench.report import cpu_model  # noqa: E402


def make_model(arch: str, device: torch.device):
    if arch == "small_cnn":
        return build_model("small_cnn").to(device), (1, 28, 28)
    return build_model(arch).to(device), (3, 32, 32)


def step_time(
    objective_name: str, params: dict, arch: str, batch: int, device: torch.device, eps: float, warmup: int, iters: int
) -> float:
    """Median seconds of one trainer step (objective loss + backward + SGD step)."""
    torch.manual_seed(0)
    model, shape = make_model(arch, device)
    model.train()
    cfg = TrainConfig(objective=objective_name, eps=eps, dataset="digits" if shape[0] == 1 else "cifar10")
    objective = get_objective(objective_name)(params, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    ctx = StepContext(step=0, epoch=0, total_steps=1, eps=eps, num_classes=10, attack_model=model, device=device)
    times = []
    for i in range(warmup + iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, _ = objective.loss(model, x, y, ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="small_cnn")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--k", type=int, nargs="+", default=[7, 10])
    ap.add_argument("--iters", type=int, default=10, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="repeat the whole comparison; report the median ratio")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    eps = 0.3 if args.arch == "small_cnn" else 8 / 255
    rows = []
    for k in args.k:
        ratios, at_s, clean_s = [], [], []
        for _ in range(args.repeats):
            clean = step_time("standard", {}, args.arch, args.batch, device, eps, args.warmup, args.iters)
            at = step_time(
                "pgd_at",
                {"steps": k, "alpha": eps / 4},
                args.arch,
                args.batch,
                device,
                eps,
                args.warmup,
                max(2, args.iters // 2),
            )
            ratios.append(at / ((k + 1) * clean))
            at_s.append(at)
            clean_s.append(clean)
        rows.append(
            {
                "k": k,
                "clean_step_ms": 1000 * statistics.median(clean_s),
                "at_step_ms": 1000 * statistics.median(at_s),
                "ratio_at_vs_k_plus_1_clean": statistics.median(ratios),
            }
        )
    report = {
        "arch": args.arch,
        "batch": args.batch,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "date": date.today().isoformat(),
        "rows": rows,
    }
    print(json.dumps(report, indent=2))
    print(
        f"\n| k | clean step | PGD-k AT step | AT / (k+1) clean |  ({args.arch}, batch {args.batch}, {device}, "
        f"{report['threads']} threads)"
    )
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['k']} | {r['clean_step_ms']:.1f} ms | {r['at_step_ms']:.1f} ms | "
            f"{r['ratio_at_vs_k_plus_1_clean']:.3f} |"
        )


if __name__ == "__main__":
    main()
