"""Latency of the full attention view for one image, against the floor of its own passes.

    python bench/attention.py [--repeats 5] [--models efficientnet_lite0,digits_small_cnn] [--json out.json]

*Full view*: ``run_attack`` (PGD L-inf, 10 steps) then ``attention_view`` (Grad-CAM of the clean and
adversarial image through captum, shared-scale normalisation, every metric including the
faithfulness test), as the Attention page runs it.

*Floor*: the same number of forward/backward passes on the bare model, with no captum, hooks,
bookkeeping or metrics: 10 x (forward + input-gradient backward) for the attack, then
2 x (forward + backward) for the two CAMs.

Runs alternate floor and full view so that a busy machine slows both alike; after a warm-up,
the median of the repeats is reported (and min/min, which a busy machine distorts least).
Target: full view within 1.5x of the floor.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.report import cpu_model  # noqa: E402

STEPS = 10


def example(model):
    from advlens.data import fit_image, load_digits, sample_photo

    if model.input_size[0] == 3:
        return fit_image(sample_photo("chelsea"), model.input_size).unsqueeze(0), 285, 2 / 255, "chelsea"
    x, y = load_digits("test").item(0)
    return x, y, 0.12, "digits test #0"


def floor_passes(model, x, y, eps):
    """10 attack steps and 2 CAM passes, bare: forward + backward to the input, nothing else."""
    yt = torch.tensor([y], device=x.device)
    x_adv = x.clone()
    for _ in range(STEPS):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), yt)
        (g,) = torch.autograd.grad(loss, x_adv)
        x_adv = (x_adv.detach() + eps / 4 * g.sign()).clamp(0, 1)
    for img in (x, x_adv):
        img = img.detach().requires_grad_(True)
        score = model(img)[0, y]
        torch.autograd.grad(score, img)


def full_view(model, x, y, eps):
    from advlens.attacks import run_attack
    from advlens.attribution import attention_view

    res = run_attack(model, x, y, "pgd", eps=eps, steps=STEPS)
    return attention_view(
        model, res.x, res.x_adv, res.y, method="gradcam", target="true", probs=(res.clean_probs, res.adv_probs)
    )


def bench_model(name: str, repeats: int, device: str = "cpu") -> dict:
    from advlens.zoo import load_model
    from bench.attacks import timed

    model = load_model(name, device=device)
    x, y, eps, title = example(model)
    x = x.to(device)
    torch.manual_seed(0)
    for _ in range(2):  # warm-up: allocator, captum imports, first-call overheads
        floor_passes(model, x, y, eps)
        full_view(model, x, y, eps)
    floors, fulls = [], []
    kept = {}
    for _ in range(repeats):
        floors.append(timed(lambda: floor_passes(model, x, y, eps)))
        fulls.append(timed(lambda: kept.update(view=full_view(model, x, y, eps))))
    view = kept["view"]
    f, v = statistics.median(floors), statistics.median(fulls)
    return {
        "model": name,
        "device": device,
        "image": title,
        "input": "x".join(map(str, model.input_size)),
        "eps": eps,
        "floor_s": f,
        "full_s": v,
        "ratio": v / f,
        "ratio_min": min(fulls) / min(floors),
        "floor_all": floors,
        "full_all": fulls,
        "iou": float(view.metrics["iou"][0]),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--models", default="efficientnet_lite0,digits_small_cnn")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = [bench_model(m.strip(), args.repeats) for m in args.models.split(",") if m.strip()]
    env = {
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(
        f"CPU {env['cpu']}, {env['threads']} torch threads, torch {env['torch']}, {env['date']}, "
        f"bench took {env['seconds']} s"
    )
    print("| model | input | image | floor (median) | full view (median) | full / floor | min full / min floor |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['input']} | {r['image']} | {r['floor_s'] * 1000:.0f} ms | "
            f"{r['full_s'] * 1000:.0f} ms | {r['ratio']:.2f}x | {r['ratio_min']:.2f}x |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
