"""Attack throughput against the floor and captum: ``python bench/attacks.py`` (prints markdown).

For each model the floor is what any PGD-k must at least do: (k + 1) forward+backward passes of
the bare model (gradient of the summed cross-entropy with respect to the input), timed in the
same run, interleaved with the attacks so that CPU contention hits all of them alike. Reported:
the median time of several repeats after a warm-up, images per second, and the ratio to the
floor (target for PGD: <= 1.15), from the medians and, less sensitive to bursts of load from
other processes, from the fastest repeats. captum's ``captum.robust.PGD`` runs the same attack (eps, steps,
step size, random start). Last, the latency of one PGD-10 + prediction on EfficientNet-Lite0 at
224x224 (one photo, ``run_attack``), the way the Attack Lab page runs it.

``--quick`` shrinks batches and repeats for a smoke test; the table then is not comparable.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advlens.attacks import FGSM, PGD, run_attack  # noqa: E402
from advlens.data import load_digits, load_sample_photos  # noqa: E402
from advlens.models import build_model  # noqa: E402
from advlens.zoo import load_model  # noqa: E402

EPS = 8 / 255
STEPS = 10


def floor_run(model, x, y, passes: int) -> None:
    """``passes`` forward+backward passes of the bare model, gradient w.r.t. the input only."""
    for _ in range(passes):
        xr = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xr), y, reduction="sum")
        torch.autograd.grad(loss, xr)


def sync() -> None:
    """Wait for queued GPU work, so that a timer measures it (a no-op on the CPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def bench_model(label: str, model, x, y, repeats: int) -> list[dict]:
    from captum.robust import PGD as CaptumPGD

    model.eval()
    captum = CaptumPGD(model, lambda out, t: F.cross_entropy(out, t, reduction="none"), 0.0, 1.0)
    alpha = 2.5 * EPS / STEPS
    runs = {
        f"floor: {STEPS + 1} fwd+bwd": lambda: floor_run(model, x, y, STEPS + 1),
        f"advlens PGD-{STEPS}": lambda: PGD(model, eps=EPS, steps=STEPS)(x, y),
        f"captum PGD-{STEPS}": lambda: captum.perturb(x, EPS, alpha, STEPS, y, norm="Linf", random_start=True),
        "advlens FGSM": lambda: FGSM(model, eps=EPS)(x, y),
    }
    floor_run(model, x, y, 1)  # warm-up: allocator, oneDNN kernels
    FGSM(model, eps=EPS)(x, y)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(timed(fn))
    floor_times = times[f"floor: {STEPS + 1} fwd+bwd"]
    per_pass = statistics.median(floor_times) / (STEPS + 1)
    per_pass_min = min(floor_times) / (STEPS + 1)
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        passes = 2 if name.endswith("FGSM") else STEPS + 1  # the floor of a k-step attack is k + 1 passes
        rows.append(
            {
                "model": label,
                "batch": len(x),
                "method": name,
                "median_s": med,
                "repeats": len(ts),
                "img_per_s": len(x) / med,
                "vs_floor": med / (per_pass * passes),
                "vs_floor_min": min(ts) / (per_pass_min * passes),
            }
        )
    return rows


def bench_lite0(repeats: int) -> dict:
    model = load_model("efficientnet_lite0", device="cpu")
    photos = load_sample_photos()
    i = photos.item_names.index("chelsea")
    x, y = photos.batch([i])
    run_attack(model, x, y, "pgd", eps=2 / 255, steps=1)  # warm-up
    ts, passes, ok = [], [], []
    for seed in range(repeats):  # a bare pass, then the attack: contention hits both alike
        passes.append(timed(lambda: floor_run(model, x, y, 1)))
        torch.manual_seed(seed)
        start = time.perf_counter()
        res = run_attack(model, x, y, "pgd", eps=2 / 255, steps=STEPS)
        ts.append(time.perf_counter() - start)
        ok.append(bool(res.success[0]))
    return {
        "median_s": statistics.median(ts),
        "repeats": repeats,
        "success": sum(ok),
        "per_pass_s": statistics.median(passes),
    }


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"load average {load:.1f} at the start"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny batches and one repeat (smoke test)")
    ap.add_argument("--repeats", type=int, default=5, help="repeats for small_cnn (default 5)")
    ap.add_argument("--preact-repeats", type=int, default=2, help="repeats for preact_resnet18 (default 2)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
    torch.manual_seed(0)
    b_small, b_pre = (32, 8) if args.quick else (256, 128)
    reps_small, reps_pre, reps_lite = (1, 1, 1) if args.quick else (args.repeats, args.preact_repeats, 3)
    started = time.perf_counter()
    print(f"Machine: {machine()}\n")
    digits = load_digits("test")
    xs, ys = digits.batch(torch.arange(b_small) % len(digits))
    small = load_model("digits_small_cnn", device="cpu")
    rows = bench_model("small_cnn (digits_small_cnn)", small, xs, ys, reps_small)
    pre = build_model("preact_resnet18")  # random init: speed does not depend on the weights
    xp, yp = torch.rand(b_pre, 3, 32, 32), torch.randint(0, 10, (b_pre,))
    rows += bench_model("preact_resnet18 (random init)", pre, xp, yp, reps_pre)
    print("| model | batch | method | median s | repeats | images/s | x floor (median) | x floor (min) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['batch']} | {r['method']} | {r['median_s']:.3f} | {r['repeats']} | "
            f"{r['img_per_s']:.1f} | {r['vs_floor']:.2f} | {r['vs_floor_min']:.2f} |"
        )
    lite = bench_lite0(reps_lite)
    print(
        f"\nEfficientNet-Lite0, 1 image 224x224: PGD-{STEPS} (eps 2/255) + clean and adversarial prediction "
        f"(`run_attack`): median {lite['median_s']:.2f} s over {lite['repeats']} runs "
        f"(floor: {STEPS + 1} x {lite['per_pass_s']:.3f} s = {(STEPS + 1) * lite['per_pass_s']:.2f} s); "
        f"flipped the prediction in {lite['success']}/{lite['repeats']} runs."
    )
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
    ).stdout.strip()
    date = time.strftime("%Y-%m-%d", time.gmtime())
    print(f"\nTotal {time.perf_counter() - started:.0f} s; git {rev or '?'}; date {date}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
