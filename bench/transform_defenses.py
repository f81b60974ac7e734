"""Input-transform defenses under plain and adaptive attacks (issue 13's acceptance table).

For each defense (``M+jpeg75``, ``M+bits3``, ``M+median3``, ``M+rrp0.1``) and the bare model M, on
the first ``--n`` test images: robust accuracy under plain PGD (the gradient goes through the defended
model as it is: zero through a non-differentiable transform) and under PGD with BPDA, plus EOT over
``--eot`` draws for random transforms. Same eps, steps, step size and seed for every row.

    python bench/transform_defenses.py [--model digits_small_cnn] [--dataset digits] [--n 360]
        [--eps 0.1] [--attack pgd|apgd_ce] [--steps 40] [--eot 10] [--out bench/out/transform_defenses.json]

PGD and APGD-CE here are cross-entropy attacks: their robust accuracies are upper bounds. The standard suite's adaptive figure
for a defense is ``python -m advlens evaluate --model M+jpeg75 --suite standard``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import provenance  # noqa: E402

DEFENSES = ("jpeg75", "bits3", "median3", "rrp0.1")


def robust_accuracy(model, x, y, attack, eps, steps, seed, batch=120, **adaptive) -> tuple[float, float]:
    from advlens.attacks import ATTACKS

    t0 = time.perf_counter()
    correct = 0
    for s in range(0, len(x), batch):
        torch.manual_seed(seed + s)
        xb, yb = x[s : s + batch], y[s : s + batch]
        x_adv = ATTACKS[attack](model, eps=eps, steps=steps, **adaptive)(xb, yb)
        with torch.no_grad():
            correct += int((model(x_adv).argmax(1) == yb).sum())
    return correct / len(x), time.perf_counter() - t0


def main(argv=None) -> dict:
    from advlens.budget import format_linf, parse_linf
    from advlens.data import load_dataset, to_float
    from advlens.data.subset import choose_images
    from advlens.models.defended import is_random, needs_bpda
    from advlens.zoo import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="digits_small_cnn")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--root")
    ap.add_argument("--n", type=int, default=360)
    ap.add_argument("--eps", default="0.1")
    ap.add_argument("--attack", default="pgd", choices=("pgd", "apgd_ce"))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--eot", type=int, default=10)
    ap.add_argument("--defenses", default=",".join(DEFENSES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    eps = parse_linf(args.eps)
    ds = load_dataset(args.dataset, split="test", root=args.root)
    subset = choose_images(ds, args.n)  # the one subset rule (first n of an official order, else stratified)
    print(subset.describe())
    x, y = ds.batch(subset.indices)
    x = to_float(x)
    rows = []
    bare = None
    for token in ["", *args.defenses.split(",")]:
        name = f"{args.model}+{token}" if token else args.model
        model = load_model(name, "cpu")
        torch.manual_seed(args.seed)
        with torch.no_grad():
            clean = float((model(x).argmax(1) == y).float().mean())
        plain, plain_s = robust_accuracy(model, x, y, args.attack, eps, args.steps, args.seed)
        adaptive = {}
        if needs_bpda(model):
            adaptive["bpda"] = True
        if is_random(model):
            adaptive["eot"] = args.eot
        if adaptive:
            adapt, adapt_s = robust_accuracy(model, x, y, args.attack, eps, args.steps, args.seed, **adaptive)
        else:
            adapt, adapt_s = plain, plain_s
        bare = adapt if bare is None else bare
        row = {
            "model": name,
            "clean": clean,
            "plain": plain,
            "adaptive": " + ".join(k.upper() if v is True else f"EOT-{v}" for k, v in adaptive.items()) or "(none)",
            "adaptive_acc": adapt,
            "adaptive_minus_bare_points": (adapt - bare) * 100,
            "seconds_plain": round(plain_s, 1),
            "seconds_adaptive": round(adapt_s, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    what = f"PGD-{args.steps}, step 2.5*eps/{args.steps}" if args.attack == "pgd" else f"APGD-CE-{args.steps}"
    setting = f"{what}, random start, 1 restart, eps {format_linf(eps)}, n = {len(x)}"
    print(f"\n{args.model} on {args.dataset}, {setting}:\n")
    print("| model | clean | plain | adaptive options | adaptive | adaptive - bare | time plain / adaptive |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['model']}` | {r['clean'] * 100:.1f}% | {r['plain'] * 100:.1f}% | {r['adaptive']} | "
            f"{r['adaptive_acc'] * 100:.1f}% | {r['adaptive_minus_bare_points']:+.1f} | "
            f"{r['seconds_plain']} s / {r['seconds_adaptive']} s |"
        )
    report = {"setting": setting, "rows": rows, **provenance("transform_defenses.py", argv)}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
