"""Issue 28 acceptance: a universal perturbation on the shipped digits model and a targeted patch on the shipped
CIFAR-10 ResNet-20, each trained on one set of images and measured on held-out ones (n and a 95%
Clopper-Pearson interval), through the same job code as ``python -m advlens universal|patch``.

    python bench/universal_patch.py universal            # digits_small_cnn, eps 0.2, held out: the 360 test digits
    python bench/universal_patch.py patch --root /tmp/cifar/cifar10-jpeg   # cifar10_resnet20, held out: cifar10_samples
    python bench/universal_patch.py ... --ship             # also store it in assets/perturbations (the lessons use it)

Results go to bench/out/universal_patch-<which>.json; the figures are in bench/RESULTS.md (issue 28).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advlens.perturbations import jobs, saved  # noqa: E402


def universal_spec(args) -> jobs.PerturbationSpec:
    return jobs.PerturbationSpec(
        method="universal",
        model="digits_small_cnn",
        dataset="digits",
        split="train",
        n=0,  # all 1,437 training digits
        heldout_split="test",
        heldout_n=0,  # all 360 test digits
        name=args.name or "digits-universal-0.2",
        params={"eps": 0.2, "steps": args.steps or 10, "batch_size": 128},
        replace=True,
    )


def patch_spec(args) -> jobs.PerturbationSpec:
    return jobs.PerturbationSpec(
        method="patch",
        model="cifar10_resnet20",
        dataset="folder",
        root=args.root,
        split="train",
        n=args.n or 5000,  # a class-stratified sample of the JPEG copy's training images
        heldout_dataset="cifar10_samples",
        heldout_split="test",
        heldout_n=100,
        target=args.target,
        name=args.name or "cifar10-bird-patch",
        params={"area": 0.1, "steps": args.steps or 2000, "batch_size": 64, "lr": args.lr},
        replace=True,
    )


def floor_seconds(spec: jobs.PerturbationSpec, meta: dict) -> float:
    """The passes the method cannot avoid, timed on the same images and model: one forward and backward
    pass per training image and epoch (universal) or per batch image and step (patch)."""
    from advlens.zoo import load_model

    model = load_model(spec.model, "cpu")
    p = spec.params
    batch = p["batch_size"]
    x = torch.rand(batch, *model.input_size, requires_grad=True)
    torch.autograd.grad(model(x).sum(), x)  # warm up (input gradients only: nothing left on the model)
    t0 = time.time()
    reps = 5
    for _ in range(reps):
        (g,) = torch.autograd.grad(model(x).logsumexp(1).sum(), x)
    per_batch = (time.time() - t0) / reps
    if spec.method == "universal":
        return per_batch * meta["train_images_used"] / batch * p["steps"]
    return per_batch * p["steps"]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("which", choices=["universal", "patch"])
    p.add_argument("--root", default="/tmp/cifar/cifar10-jpeg", help="the unpacked CIFAR-10 JPEG copy")
    p.add_argument("--steps", type=int)
    p.add_argument("--n", type=int)
    p.add_argument(
        "--target",
        type=int,
        default=2,
        help="patch target class (default 2, bird: the class an untargeted patch drives most images to)",
    )
    p.add_argument("--lr", type=float, default=0.1, help="patch: Adam's initial rate (cosine decay)")
    p.add_argument("--name")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ship", action="store_true", help="store the result in assets/perturbations")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    spec = universal_spec(args) if args.which == "universal" else patch_spec(args)
    t0 = time.time()
    last = [0.0]

    def progress(f: float) -> None:
        if time.time() - last[0] > 30:
            last[0] = time.time()
            print(f"  {f * 100:5.1f}% after {time.time() - t0:.0f} s", flush=True)

    meta = jobs.run_spec(spec, progress=progress, log=print, device="cpu")
    seconds = time.time() - t0
    floor = floor_seconds(spec, meta)
    item = saved.load(spec.name)
    if args.ship:
        saved.save(spec.name, spec.method, item.tensor, item.meta, replace=True, folder=saved.SHIPPED_DIR)
        print(f"shipped as {saved.SHIPPED_DIR / spec.name}.safetensors")
    out = {
        "spec": spec.to_dict(),
        "heldout": meta["heldout"],
        "history": meta["history"][-20:],
        "seconds": round(seconds, 1),
        "floor_seconds": round(floor, 1),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)",
        "date": time.strftime("%Y-%m-%d"),
    }
    path = ROOT / "bench" / "out" / f"universal_patch-{args.which}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    held = meta["heldout"]
    lo, hi = held["interval_95"]
    print(
        f"{spec.name}: {held['rate'] * 100:.1f}% [{lo * 100:.1f}, {hi * 100:.1f}] of n = {held['n']} held-out images "
        f"({held['protocol']}); {seconds:.0f} s, floor {floor:.0f} s; wrote {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
