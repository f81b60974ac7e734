"""The seed defenses against a same-budget PGD-AT baseline on MNIST (issue 6).

Trains small_cnn on MNIST with the advlens trainer (the same code path as the training page):

- ``standard``: cross-entropy only;
- ``pgd_at``: Madry's PGD-AT, the baseline;
- ``attention``: attention rectification and preservation (Wu et al.), Step-LL adversary by default;
- ``attention_pgd``: the same attention terms with the baseline's PGD adversary (PGD-AT plus the
  attention losses: the paper's claim that they add to adversarial training);
- ``feature_denoise``: a small_cnn with denoising blocks, PGD-AT with the baseline's PGD;
- ``deep_defense``: Deep Defense (Yan et al.), fine-tuned from the ``standard`` model as in the paper
  (SGD, lr 5e-4, momentum 0.9, lr halved at 80% of the epochs: the authors' recipe),

every one for the same number of epochs on the same images (Deep Defense's epochs are fine-tuning
epochs on top of the standard model's). Each model is then evaluated on the same fixed test images:

- clean accuracy;
- robust accuracy at each eps of ``--eps`` (default 0.1, 0.2, 0.3) under ``--suite``: AutoAttack's
  ``standard`` suite by default (:func:`advlens.evaluation.cascade.evaluate`), ``quick``, or the
  old CE ``pgd`` (PGD-``--pgd-steps``, ``--restarts`` restarts: an upper bound), on the first
  ``--suite-size`` of the test images (the standard suite costs ~3,500 passes per robust image);
- rho_2 = mean ||r||_2 / ||x||_2 of the DeepFool perturbation (50 iterations, overshoot 0.02, from
  the model's prediction; :func:`defenses.deepfool_diff.rho2`);
- the mean top-20% IoU between the Grad-CAM (true class, default CAM layer) of each clean image and
  of its PGD adversarial image at ``--iou-eps`` (:func:`advlens.attribution.metrics.topk_iou`).

A defense "beats" PGD-AT on a metric when its paired per-image difference exceeds two standard
errors (higher is better for every metric); the script prints that verdict for each metric.

Smoke run (minutes on 2 CPU cores; numbers not meaningful)::

    python bench/seed_defenses_mnist.py --epochs 1 --train-size 256 --test-size 64 --restarts 1 \\
        --pgd-steps 10 --train-pgd-steps 5 --rho-images 32

The recorded run (bench/RESULTS.md) in two single-thread processes that share ``--cache``, then
a third that only reads the cache and reports::

    A="--epochs 1 --train-size 15000 --test-size 500 --rho-images 200 --suite standard --suite-size 100 \\
       --threads 1 --cache /tmp/seed_cache"
    python bench/seed_defenses_mnist.py $A --defenses standard,deep_defense,pgd_at --home /tmp/seed_a &
    python bench/seed_defenses_mnist.py $A --defenses attention,attention_pgd,feature_denoise --home /tmp/seed_b
    wait; python bench/seed_defenses_mnist.py $A --out bench/out/seed_defenses_mnist.json

On a GPU, the full-size comparison::

    python bench/seed_defenses_mnist.py --epochs 5 --train-size 0 --test-size 1000 --restarts 5 --device cuda \\
        --results bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import MNIST_BASE  # noqa: E402

DEFENSES = ("standard", "pgd_at", "attention", "attention_pgd", "feature_denoise", "deep_defense")
SEED_DEFENSES = ("attention", "attention_pgd", "feature_denoise", "deep_defense")
METRIC_LABELS = {"clean": "clean acc", "rho2": "rho_2 (DeepFool)", "iou": "attention IoU"}
SECTION = "## Seed defenses (issue 6)"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-root", default="/work/shared/data/mnist", help="folder with the MNIST *-ubyte.gz files")
    p.add_argument("--defenses", default=",".join(DEFENSES), help="comma-separated subset of " + ", ".join(DEFENSES))
    p.add_argument("--epochs", type=int, default=5, help="training epochs of every model (Deep Defense: fine-tuning)")
    p.add_argument("--train-size", type=int, default=0, help="training images (0: all 60000)")
    p.add_argument("--test-size", type=int, default=1000, help="fixed random test images for the evaluation")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--train-eps", type=float, default=0.3, help="eps of the training adversaries")
    p.add_argument(
        "--train-pgd-steps",
        type=int,
        default=7,
        help="PGD steps of PGD-AT and feature denoising "
        "(default: bench/train_mnist_pgd_at.py's CPU recipe, 7 x 0.06, rather than Madry's 40 x 0.01)",
    )
    p.add_argument("--train-pgd-alpha", type=float, default=0.06, help="their PGD step size")
    p.add_argument(
        "--eps-warmup",
        type=float,
        default=0.15,
        help="fraction of training over which every eps-using objective ramps its eps from 0",
    )
    p.add_argument("--attention-adversary", default="stepll", choices=("stepll", "pgd"))
    p.add_argument("--denoise-operator", default="nonlocal_embedded_gaussian")
    p.add_argument(
        "--denoise-stages",
        default="conv2",
        help="small_cnn stages followed by a block (empty: conv1,conv2); default conv2: a softmax "
        "non-local block on conv1's 28x28 map costs ~7x a whole small_cnn step on the CPU",
    )
    p.add_argument("--eps", default="0.1,0.2,0.3", help="comma-separated eval eps of PGD")
    p.add_argument(
        "--suite", default="standard", choices=("standard", "quick", "pgd"), help="the robust-accuracy attack"
    )
    p.add_argument("--suite-size", type=int, default=0, help="first test images the suite runs on (0: all)")
    p.add_argument("--pgd-steps", type=int, default=40, help="PGD steps of --suite pgd and of the IoU images")
    p.add_argument("--restarts", type=int, default=5, help="PGD random restarts of --suite pgd")
    p.add_argument(
        "--cache",
        default="",
        help="folder of per-model results: a model found there is neither trained nor evaluated again",
    )
    p.add_argument("--rho-images", type=int, default=0, help="test images for rho_2 (0: all test images)")
    p.add_argument("--iou-eps", type=float, default=0.3, help="eps of the PGD images for the attention IoU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (training and evaluation)")
    p.add_argument("--home", default="", help="ADVLENS_HOME for the runs (default: a temporary folder)")
    p.add_argument("--out", default="", help="write the results as JSON here")
    p.add_argument("--results", default="", help="replace the section '" + SECTION + "' of this markdown file")
    args = p.parse_args(argv)
    args.defenses = [d.strip() for d in args.defenses.split(",") if d.strip()]
    unknown = [d for d in args.defenses if d not in DEFENSES]
    if unknown:
        p.error(f"unknown defense(s) {', '.join(unknown)}; choose among {', '.join(DEFENSES)}")
    if "deep_defense" in args.defenses and "standard" not in args.defenses and not args.cache:
        p.error("deep_defense fine-tunes the standard model: include 'standard'")
    args.eps = [float(e) for e in args.eps.split(",") if e.strip()]
    return args


# ------------------------------------------------------------------------------------ training
def train_configs(args) -> dict[str, dict]:
    """The TrainConfig dict of each defense; the shared part makes the budgets equal."""
    common = dict(
        **MNIST_BASE,
        data_root=args.data_root,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-3,
        eps=args.train_eps,
        eps_warmup=args.eps_warmup,
        val_size=0,
        eval_size=64,
        eval_steps=5,
        test_eval=False,
        limit_train=args.train_size,
        seed=args.seed,
        device=args.device,
        log_every=20,
    )
    pgd = {"steps": args.train_pgd_steps, "alpha": args.train_pgd_alpha}
    denoise = {**pgd, "operator": args.denoise_operator, "stages": args.denoise_stages}
    attention = {
        "adversary": args.attention_adversary,
        "pgd_steps": args.train_pgd_steps,
        "pgd_alpha": args.train_pgd_alpha,
    }
    return {
        "standard": {**common, "objective": "standard"},
        "pgd_at": {**common, "objective": "pgd_at", "objective_params": pgd},
        "attention": {**common, "objective": "attention", "objective_params": attention},
        "attention_pgd": {**common, "objective": "attention", "objective_params": dict(attention, adversary="pgd")},
        "feature_denoise": {**common, "objective": "feature_denoise", "objective_params": denoise},
        # the authors' fine-tuning recipe: SGD lr 5e-4, momentum 0.9, lr x0.5 at 80% of the epochs
        "deep_defense": {
            **common,
            "objective": "deep_defense",
            "optimizer": "sgd",
            "lr": 5e-4,
            "momentum": 0.9,
            "schedule": "step",
            "step_milestones": (0.8,),
            "step_gamma": 0.5,
            "objective_params": {"rho_images": 0},
        },
    }


def train(name: str, cfg_dict: dict, log, device: str) -> tuple[torch.nn.Module, dict]:
    from advlens.models import load_checkpoint
    from advlens.training.config import TrainConfig
    from advlens.training.jobs import default_model_path, run_in_foreground

    t0 = time.time()
    rec = run_in_foreground(TrainConfig.from_dict(dict(cfg_dict, name=f"bench-{name}")), echo=False)
    if rec.status != "done":
        raise RuntimeError(f"{name}: the run {rec.id} ended {rec.status}: {rec.message}")
    path = default_model_path(rec)
    model, _ = load_checkpoint(path, map_location=device)
    info = {
        "run_id": rec.id,
        "checkpoint": str(path),
        "train_seconds": round(time.time() - t0, 1),
        "steps": rec.metrics.get("steps"),
    }
    log(f"trained {name} in {info['train_seconds']:.0f}s (run {rec.id}, {info['steps']} steps)")
    return model.eval(), info


# ---------------------------------------------------------------------------------- evaluation
def robust_correct(model, x, y, eps: float, args) -> torch.Tensor:
    """Per image, 1 when still correctly classified after --suite's attack at eps."""
    if args.suite == "pgd":
        from advlens.training.evaluate import robust_predictions

        return robust_predictions(
            model, x, y, eps, args.pgd_steps, alpha=None, restarts=args.restarts, batch_size=250
        ).float()
    from advlens.evaluation.cascade import evaluate as evaluate_suite

    ev = evaluate_suite(model, x, y, eps, args.suite, batch_size=128, seed=args.seed)
    return ev.robust.float()


def robust_label(args) -> str:
    if args.suite == "pgd":
        return f"PGD-{args.pgd_steps} x {args.restarts} acc (upper bound)"
    return f"{args.suite} suite acc"


def attention_iou(model, x, y, eps: float, steps: int, batch_size: int = 250) -> torch.Tensor:
    """Per image: top-20% IoU of the true-class Grad-CAM of x and of its PGD image.

    NaN where either map is all zero (Grad-CAM's ReLU left no attention, e.g. a collapsed
    network): the IoU of two empty maps would read as a perfect 1.
    """
    from advlens.attacks import PGD
    from advlens.attribution import compute_map
    from advlens.attribution.metrics import topk_iou

    device = next(model.parameters()).device
    out = []
    for s in range(0, len(x), batch_size):
        xb, yb = x[s : s + batch_size].to(device), y[s : s + batch_size].to(device)
        xa = PGD(model, eps=eps, steps=steps)(xb, yb)
        maps = compute_map(model, torch.cat([xb, xa]), "gradcam", None, torch.cat([yb, yb]))
        iou = topk_iou(maps[: len(xb)], maps[len(xb) :], 20.0)
        alive = (maps[: len(xb)].flatten(1).amax(1) > 0) & (maps[len(xb) :].flatten(1).amax(1) > 0)
        out.append(torch.where(alive, iou, torch.full_like(iou, float("nan"))))
    return torch.cat(out)


def evaluate(model, x, y, args, log) -> dict[str, torch.Tensor]:
    """Per-image values of every metric (accuracies as 0/1)."""
    from defenses.deepfool_diff import deepfool_ratios

    torch.manual_seed(args.seed + 1)
    per: dict[str, torch.Tensor] = {}
    device = next(model.parameters()).device
    with torch.no_grad():
        per["clean"] = torch.cat(
            [
                (model(x[s : s + 500].to(device)).argmax(1).cpu() == y[s : s + 500]).float()
                for s in range(0, len(x), 500)
            ]
        )
    n_suite = args.suite_size or len(x)
    for eps in args.eps:
        t0 = time.time()
        per[f"pgd@{eps:g}"] = robust_correct(model, x[:n_suite], y[:n_suite], eps, args)
        log(f"  {args.suite} at eps {eps:g}: {float(per[f'pgd@{eps:g}'].mean()):.4f} ({time.time() - t0:.0f} s)")
    n_rho = args.rho_images or len(x)
    per["rho2"] = deepfool_ratios(model, x[:n_rho], max_iter=50, overshoot=0.02, candidates=10)["ratio"]
    per["iou"] = attention_iou(model, x, y, args.iou_eps, args.pgd_steps)
    log(
        "  "
        + ", ".join(f"{k} {float(v.nanmean()):.4f}" for k, v in per.items())
        + f" (IoU over {int((~torch.isnan(per['iou'])).sum())} images with non-empty maps)"
    )
    return per


def compare(per: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Paired difference (defense - baseline) per metric, its standard error and the verdict."""
    out = {}
    for k, v in per.items():
        d = v - base[k]
        d = d[~torch.isnan(d)]  # images with a value for both models
        n = len(d)
        se = float(d.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
        diff = float(d.mean()) if n else float("nan")
        verdict = "tie"
        if n > 1 and se > 0 and abs(diff) > 2 * se:
            verdict = "better" if diff > 0 else "worse"
        elif n > 1 and se == 0 and diff != 0:
            verdict = "better" if diff > 0 else "worse"
        out[k] = {"diff": diff, "se": se, "verdict": verdict, "images": n}
    return out


# ---------------------------------------------------------------------------------- reporting
ROBUST_LABEL = "PGD acc"  # set from --suite by main()


def label(k: str) -> str:
    return METRIC_LABELS.get(k, k.replace("pgd@", f"{ROBUST_LABEL} @ eps "))


def fmt(k: str, v: float) -> str:
    return f"{v:.4f}" if k in ("rho2", "iou") else f"{100 * v:.1f}%"


def report(results: dict, args, settings: dict) -> str:
    names = list(results["models"])
    keys = list(next(iter(results["models"].values()))["metrics"])
    lines = [
        f"| model | {' | '.join(label(k) for k in keys)} | IoU images | train time |",
        "|---" * (len(keys) + 3) + "|",
    ]
    for n in names:
        r = results["models"][n]
        lines.append(
            f"| {n} | "
            + " | ".join(fmt(k, r["metrics"][k]) for k in keys)
            + f" | {r['iou_images']} | {r['train']['train_seconds']:.0f} s |"
        )
    verdicts = []
    for n in names:
        if n not in SEED_DEFENSES or "pgd_at" not in results["models"]:
            continue
        cmp = results["models"][n]["vs_pgd_at"]
        better = [label(k) for k, c in cmp.items() if c["verdict"] == "better"]
        worse = [label(k) for k, c in cmp.items() if c["verdict"] == "worse"]
        if better:
            head = f"**{n} beats the PGD-AT baseline on {', '.join(better)}**"
        else:
            head = f"**{n} does not beat the PGD-AT baseline on any metric**"
        tail = f"; worse on {', '.join(worse)}" if worse else ""
        if cmp["clean"]["verdict"] == "worse" and {"rho2", "iou"} & {
            k for k, c in cmp.items() if c["verdict"] == "better"
        }:
            tail += (
                ". Its clean accuracy is significantly lower, so its rho_2 / IoU gains do not show robustness "
                "(a degenerate classifier also has a large DeepFool distance and flat, stable maps)"
            )
        detail = ", ".join(f"{label(k)} {c['diff']:+.4f} ± {2 * c['se']:.4f}" for k, c in cmp.items())
        verdicts.append(f"- {head}{tail} (paired difference vs PGD-AT ± 2 s.e.: {detail}).")
    notes = []
    if "deep_defense" in results["models"]:
        notes.append(
            f"deep_defense is fine-tuned from the standard model (the paper's protocol), so it trained for "
            f"{args.epochs} + {args.epochs} epochs; its clean accuracy is not a same-budget comparison."
        )
    return "\n".join(lines + [""] + verdicts + [""] + notes + [f"Settings: {json.dumps(settings)}"])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_section(path: Path, body: str) -> None:
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    start = text.find(SECTION)
    block = f"{SECTION}\n\n{body.strip()}\n"
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + block + (text[nxt:] if nxt >= 0 else "")
    path.write_text(text)


def standard_checkpoint(results: dict, cache: Path | None) -> str:
    """The standard model's checkpoint, which Deep Defense fine-tunes (this run's, or the cache's)."""
    if "standard" in results["models"]:
        return results["models"]["standard"]["train"]["checkpoint"]
    if cache is not None and (cache / "standard.pt").is_file():
        return torch.load(cache / "standard.pt", weights_only=True)["train"]["checkpoint"]
    raise SystemExit("deep_defense fine-tunes the standard model: train 'standard' first (same --cache)")


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    home = Path(args.home).expanduser() if args.home else Path(tempfile.mkdtemp(prefix="advlens_seed_bench_"))
    os.environ["ADVLENS_HOME"] = str(home)
    from advlens.data import load_dataset, to_float
    from advlens.training.config import TrainConfig

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    log(f"runs in {home}")
    test = load_dataset("mnist", split="test", root=args.data_root)
    g = torch.Generator().manual_seed(args.seed + 2)
    idx = torch.randperm(len(test), generator=g)[: args.test_size].sort().values
    x, y = to_float(test.pixels[idx]), test.labels[idx].long()
    cfgs = train_configs(args)
    device = TrainConfig(device=args.device).resolved_device()
    global ROBUST_LABEL
    ROBUST_LABEL = robust_label(args)
    results: dict = {"models": {}}
    t_start = time.time()
    cache = Path(args.cache) if args.cache else None
    for name in DEFENSES:
        if name not in args.defenses:
            continue
        cached = cache / f"{name}.pt" if cache else None
        if cached is not None and cached.is_file():
            results["models"][name] = torch.load(cached, weights_only=True)
            log(f"{name}: read from {cached}")
            continue
        cfg = cfgs[name]
        if name == "deep_defense":
            init = standard_checkpoint(results, cache)
            cfg = dict(cfg, init_from=init)
        log(f"training {name} ...")
        model, info = train(name, cfg, log, device)
        log(f"evaluating {name} on {len(x)} test images ...")
        t0 = time.time()
        per = evaluate(model, x, y, args, log)
        results["models"][name] = {
            "train": info,
            "eval_seconds": round(time.time() - t0, 1),
            "per_image": per,
            "metrics": {k: float(v.nanmean()) for k, v in per.items()},
            "iou_images": int((~torch.isnan(per["iou"])).sum()),
        }
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.save(results["models"][name], cached)
    if "pgd_at" in results["models"]:
        base = results["models"]["pgd_at"]["per_image"]
        for name, r in results["models"].items():
            if name != "pgd_at":
                r["vs_pgd_at"] = compare(r["per_image"], base)
    settings = {
        "epochs": args.epochs,
        "train_images": args.train_size or 60000,
        "test_images": len(x),
        "train_eps": args.train_eps,
        "eps_warmup": args.eps_warmup,
        "train_pgd": f"{args.train_pgd_steps}x{args.train_pgd_alpha:g}",
        "robust": (
            f"PGD-{args.pgd_steps}, step 2.5*eps/steps, {args.restarts} restart(s) (an upper bound)"
            if args.suite == "pgd"
            else f"{args.suite} suite (advlens.evaluation), L-inf, seed {args.seed}"
        ),
        "robust_images": args.suite_size or len(x),
        "rho2": f"DeepFool-50, overshoot 0.02, {args.rho_images or len(x)} images",
        "iou": f"Grad-CAM top-20% IoU, PGD-{args.pgd_steps} at eps {args.iou_eps:g}",
        "attention_adversary": args.attention_adversary,
        "denoise_operator": args.denoise_operator,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "threads": args.threads,
        "device": device,
    }
    text = report(results, args, settings)
    total = time.time() - t_start
    print("\n" + text + f"\n\nTotal {total / 60:.1f} min.")
    machine = f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}" + (
        f", {torch.cuda.get_device_name(0)}" if device.startswith("cuda") else ", no GPU used"
    )
    if args.results:
        cmd = "python bench/seed_defenses_mnist.py " + " ".join(sys.argv[1:] if argv is None else argv)
        write_section(
            Path(args.results),
            f"Machine: {machine}. Date: {date.today().isoformat()}. "
            f"Total {total / 60:.1f} min. Command: `{cmd}`\n\n{text}",
        )
        log(f"wrote the section to {args.results}")
    if args.out:
        serial = {n: {k: v for k, v in r.items() if k != "per_image"} for n, r in results["models"].items()}
        Path(args.out).write_text(json.dumps({"settings": settings, "models": serial, "machine": machine}, indent=2))
        log(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
