"""The slow attacks with their defaults and with their CPU presets on EfficientNet-Lite0 and the
sample photos: time (interleaved, as a ratio), success and L2, in one process.

    python bench/cpu_presets.py [--photos chelsea,coffee,astronaut,rocket]

``--wrn`` instead times the Attack Lab's attacks as a user runs them on a RobustBench WideResNet-28-10
(issue 25: under 30 s each on the CPU): PGD with its page defaults and every attack that has a CPU
preset, with the usual preset and with the preset the page offers for this model
(:func:`advlens.attack_cost.fitted_preset`), on one CIFAR-10 sample, with the threads the Attack Lab gives one attack
(:func:`advlens.threads.interactive_plan`: 1 on a 2-core machine). The network has random weights in
RobustBench's key layout (the time does not depend on them), installed with ``fetch-model --from``
under a temporary ``ADVLENS_HOME``.

    python bench/cpu_presets.py --wrn [--threads N] [--only hopskipjump,hopskipjump_linf]
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

WRN_NAME = "rb:cifar10/Linf/Standard"  # WideResNet-28-10, inputs in [0, 1]


def install_random_wrn(folder: Path) -> None:
    """A random-weight WideResNet-28-10 in RobustBench's layout (``{'state_dict': {'module.' + key}}``),
    installed as :data:`WRN_NAME` with ``fetch-model --from`` in the ``ADVLENS_HOME`` set by the caller."""
    from advlens.cli import main as cli
    from advlens.models import build_model
    from advlens.models.robustbench import get_catalog_entry

    entry = get_catalog_entry(WRN_NAME)
    torch.manual_seed(0)
    net = build_model(entry.arch, arch_kwargs=entry.arch_kwargs, input_size=entry.input_size)
    path = folder / "wrn_28_10.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.net.state_dict().items()}}, path)
    if cli(["fetch-model", WRN_NAME, "--from", str(path)]) != 0:
        raise SystemExit("fetch-model --from failed")


def wrn_presets(threads: int | None, argv, cap_s: float = 120.0, only: set[str] | None = None) -> dict:
    """Each attack on one CIFAR-10 sample labelled with the network's own prediction, so that nothing
    is broken before the attack starts; a random-weight network's prediction barely moves, so the
    attacks that stop on success run to their last step: the worst case of each preset. A run is
    stopped at ``cap_s`` (then it is far over 30 s anyway). Images through the network are counted."""
    import os
    import tempfile

    os.environ["ADVLENS_HOME"] = tempfile.mkdtemp(prefix="advlens_bench_")
    from advlens.attacks import ATTACKS, run_attack
    from advlens.data import load_dataset
    from advlens.threads import interactive_plan, set_threads
    from advlens.zoo import load_model

    install_random_wrn(Path(os.environ["ADVLENS_HOME"]))
    n_threads = threads or interactive_plan(jobs=[])[0]
    set_threads(n_threads)
    model = load_model(WRN_NAME, "cpu")
    ds = load_dataset("cifar10_samples")
    x, _ = ds.item(0)
    x = x.unsqueeze(0) if x.dim() == 3 else x
    with torch.no_grad():
        y = int(model(x).argmax(1))
    seen = [0]
    model.register_forward_pre_hook(lambda _m, args: seen.__setitem__(0, seen[0] + args[0].shape[0]))
    from advlens.attack_cost import fitted_preset, pass_seconds

    per_pass = pass_seconds(model)
    runs = [("pgd", "page defaults", {})] if not only or "pgd" in only else []
    for n, c in ATTACKS.items():
        if c.CPU_PRESET and (not only or n in only):
            fitted, note = fitted_preset(c, model)
            runs += [(n, "usual cpu preset", dict(c.CPU_PRESET))] + ([(n, "fitted cpu preset", fitted)] if note else [])
    rows = []
    for name, label, params in runs:
        torch.manual_seed(0)
        seen[0] = 0
        t0 = time.perf_counter()
        res = run_attack(model, x, y, name, should_stop=lambda t0=t0: time.perf_counter() - t0 > cap_s, **params)
        took = time.perf_counter() - t0
        rows.append(
            {
                "attack": name,
                "settings": f"{label} {params}" if params else label,
                "seconds": round(took, 2),
                "stopped_at_cap": took > cap_s,
                "images_through_the_network": seen[0],
                "success": bool(res.success[0]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    report = {
        "model": f"{WRN_NAME} (random weights)",
        "threads": n_threads,
        "forward_backward_s": round(per_pass, 3),
        "image": ds.item_name(0),
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}))
    return {**report, **provenance("cpu_presets.py", argv)}


def main(argv=None) -> dict:
    from advlens.attacks import ATTACKS, run_attack
    from advlens.data import SAMPLE_PHOTOS, fit_image, sample_photo
    from advlens.zoo import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default=",".join(SAMPLE_PHOTOS))
    ap.add_argument("--wrn", action="store_true", help="the Attack Lab's attacks on a WideResNet-28-10 (issue 25)")
    ap.add_argument("--threads", type=int, default=None, help="with --wrn: torch threads (default: the Attack Lab's)")
    ap.add_argument("--only", default="", help="with --wrn: these attacks only (comma-separated names)")
    args = ap.parse_args(argv)
    if args.wrn:
        return wrn_presets(args.threads, argv, only=set(filter(None, args.only.split(","))))
    model = load_model("efficientnet_lite0", "cpu")
    rows = []
    for photo in args.photos.split(","):
        x = fit_image(sample_photo(photo), model.input_size).unsqueeze(0)
        for name in ("cw", "deepfool"):
            cls = ATTACKS[name]
            for label, params in (("default", {}), ("cpu preset", cls.CPU_PRESET)):
                torch.manual_seed(0)
                t0 = time.perf_counter()
                res = run_attack(model, x, SAMPLE_PHOTOS[photo], name, **params)
                rows.append(
                    {
                        "photo": photo,
                        "attack": name,
                        "settings": label,
                        "seconds": round(time.perf_counter() - t0, 2),
                        "success": bool(res.success[0]),
                        "l2": round(float(res.l2[0]), 4),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for name in ("cw", "deepfool"):
        d = sum(r["seconds"] for r in rows if r["attack"] == name and r["settings"] == "default")
        p = sum(r["seconds"] for r in rows if r["attack"] == name and r["settings"] == "cpu preset")
        ok = all(r["success"] for r in rows if r["attack"] == name and r["settings"] == "cpu preset")
        summary[name] = {"preset_to_default_time": round(p / d, 3), "preset_flips_every_photo": ok}
    report = {"rows": rows, "summary": summary, **provenance("cpu_presets.py", argv)}
    print(json.dumps(summary, indent=2))
    return report


if __name__ == "__main__":
    main()
