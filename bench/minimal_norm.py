"""Issue 28: FMN against Foolbox's FMN, APGD-L1 and the L1 standard suite against the official
AutoAttack L1 code, and each new attack's speed against its floor, on the same model and images.

    python bench/minimal_norm.py [--n 64] [--what fmn,l1,speed] [--eps 6] [--out bench/out/minimal_norm.json]

Foolbox is a bench-only reference (it is not in requirements-test.txt); install it without its
git/requests extras, which its FMN does not use:
``pip install --no-deps --target /tmp/fbx foolbox==3.3.4 eagerpy GitPython gitdb smmap`` and pass
``--foolbox-path /tmp/fbx``. ``pyautoattack`` comes with requirements-test.txt.

- ``fmn``: median minimal norm per norm (L0, L1, L2, L-inf), ours and Foolbox's, 100 steps each,
  the same images. Foolbox 3.3.4 differs from the paper in two places, so the script also runs
  Foolbox with each fixed (``foolbox_fixed``): its L2 projection scales by norms / norms = 1 (no
  projection at all), and its L0 projection keeps eps + 1 values instead of eps.
- ``l1``: robust accuracy at ``--eps`` (L1) of APGD-CE-L1 alone (AutoAttack's settings: 100 steps,
  the 3/2/1 eps schedule, 5 restarts) and of the whole L1 standard suite, ours against
  ``AutoAttack(norm="L1", version="standard")`` (both end with L1 Square-5000).
- ``speed``: seconds per image of each new attack against its floor, the forward(-backward) passes
  it cannot avoid, timed as that many passes of the same batch through the model.
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

NORMS = ("L0", "L1", "L2", "Linf")


def _images(n):
    from advlens.data import load_dataset, to_float
    from advlens.data.subset import choose_images

    ds = load_dataset("digits", split="test")
    subset = choose_images(ds, n)
    x, y = ds.batch(subset.indices)
    return to_float(x), torch.as_tensor(y).long(), subset.rule_text()


def _norms(model, x, x_adv, y, norm):
    from advlens.attacks.fmn import lp_norm

    with torch.no_grad():
        fooled = model(x_adv).argmax(1) != y
    return torch.where(fooled, lp_norm(x_adv - x, norm), torch.tensor(float("inf")))


def _fixed_foolbox(fb, norm):
    """Foolbox's FMN class with the projection the paper describes (L2 and L0 only)."""
    import eagerpy as ep
    from foolbox.devutils import atleast_kd, flatten

    base = {"L0": fb.attacks.L0FMNAttack, "L2": fb.attacks.L2FMNAttack}[norm]

    class Fixed(base):
        def project(self, x, x0, epsilon):
            delta = flatten(x - x0)
            if norm == "L2":
                norms = ep.maximum(delta.norms.l2(axis=-1), 1e-12)
                factor = atleast_kd(ep.minimum(1, epsilon / norms), x.ndim)
                return x0 + (x - x0) * factor
            keep = torch.as_tensor(epsilon.raw).long().clamp_min(1).view(-1, 1)
            d = delta.raw
            threshold = d.abs().sort(1, descending=True).values.gather(1, keep - 1)
            return x0 + ep.astensor((d * (d.abs() >= threshold)).view(x0.shape))

    return Fixed


def bench_fmn(model, reference, x, y, steps):
    import foolbox as fb

    from advlens.attacks import ATTACKS

    fmodel = fb.PyTorchModel(reference, bounds=(0, 1))
    classes = {"L0": fb.attacks.L0FMNAttack, "L1": fb.attacks.L1FMNAttack, "L2": fb.attacks.L2FMNAttack}
    classes["Linf"] = fb.attacks.LInfFMNAttack
    rows = []
    for norm in NORMS:
        row = {"norm": norm, "steps": steps}
        torch.manual_seed(0)
        t0 = time.perf_counter()
        ours = ATTACKS["fmn_" + norm.lower()](model, steps=steps)(x, y)
        row["ours_seconds"] = round(time.perf_counter() - t0, 2)
        mine = _norms(model, x, ours, y, norm)
        row.update(ours_median=float(mine.median()), ours_found=int(torch.isfinite(mine).sum()))
        variants = {"foolbox": classes[norm]}
        if norm in ("L0", "L2"):
            variants["foolbox_fixed"] = _fixed_foolbox(fb, norm)
        for key, cls in variants.items():
            t0 = time.perf_counter()
            adv = cls(steps=steps)(fmodel, x, fb.criteria.Misclassification(y), epsilons=None)[0]
            theirs = _norms(model, x, adv, y, norm)
            row[f"{key}_seconds"] = round(time.perf_counter() - t0, 2)
            row[f"{key}_median"] = float(theirs.median())
            row[f"{key}_found"] = int(torch.isfinite(theirs).sum())
            row[f"ratio_to_{key}"] = round(row["ours_median"] / max(row[f"{key}_median"], 1e-12), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def bench_l1(model, reference, x, y, eps):
    from pyautoattack import AutoAttack
    from pyautoattack.autopgd_base import APGDAttack

    from advlens.attacks import ATTACKS
    from advlens.evaluation import evaluate

    rows = []
    torch.manual_seed(0)
    t0 = time.perf_counter()
    ours = ATTACKS["apgd_ce_l1"](model, eps=eps, steps=100, restarts=5)(x, y)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = APGDAttack(reference, norm="L1", eps=eps, n_iter=100, n_restarts=5, seed=0, use_largereps=True)
    theirs = theirs.perturb(x, y)
    theirs_s = time.perf_counter() - t0
    with torch.no_grad():
        a, b = (int((model(v).argmax(1) == y).sum()) for v in (ours, theirs))
    rows.append(
        {"what": "apgd_ce_l1 x5 restarts", "eps": eps, "n": len(x), "ours_robust": a, "official_robust": b}
        | {"ours_seconds": round(ours_s, 1), "official_seconds": round(theirs_s, 1)}
    )
    print(json.dumps(rows[-1]), flush=True)
    t0 = time.perf_counter()
    result = evaluate(model, x, y, eps, "standard", norm="L1", batch_size=500)
    ours_s = time.perf_counter() - t0
    aa = AutoAttack(reference, norm="L1", eps=eps, version="standard", device="cpu", seed=0)
    aa.logger.debug = aa.logger.info = lambda *a, **k: None
    t0 = time.perf_counter()
    adv = aa.run_standard_evaluation(x, y, batch_size=500)
    adv = adv[0] if isinstance(adv, tuple) else adv
    theirs_s = time.perf_counter() - t0
    with torch.no_grad():
        b = int((model(adv).argmax(1) == y).sum())
    rows.append(
        {"what": "L1 standard suite", "eps": eps, "n": len(x), "ours_robust": int(result.robust.sum())}
        | {"official_robust": b, "broken_by_ours": result.broken_counts(), "protocol": result.protocol()}
        | {"ours_seconds": round(ours_s, 1), "official_seconds": round(theirs_s, 1)}
    )
    print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_speed(model, x, y):
    """Each attack's time per image and its floor: the passes it cannot avoid, timed directly."""
    from advlens.attacks import ATTACKS

    def passes(k, backward):
        t0 = time.perf_counter()
        for _ in range(k):
            z = x.clone().requires_grad_(backward)
            out = model(z)
            if backward:
                torch.autograd.grad(out.sum(), z)
        return time.perf_counter() - t0

    cases = [
        ("fmn_l2", {"steps": 100}, 100, True),
        ("fmn_l1", {"steps": 100}, 100, True),
        ("fmn_l0", {"steps": 100}, 100, True),
        ("fmn_linf", {"steps": 100}, 100, True),
        ("apgd_ce_l1", {"eps": 6.0, "steps": 100}, 101, True),  # 3 phases: one extra start pass each
        ("apgd_ce", {"eps": 0.1, "steps": 100}, 101, True),  # the L-inf APGD, for comparison
        ("sparse_rs", {"eps": 5, "steps": 300}, 300, False),  # a budget few digits fall to: all queries spent
        # one target, one run: every iteration is one forward-backward and one forward pass of all images
        ("fab_t_l1", {"eps": 6.0, "steps": 100, "targets": 1}, (100, 100), True),
        ("square_l1", {"eps": 1.0, "steps": 300}, 300, False),  # a budget no digit falls to: 300 forwards
        ("square_l2", {"eps": 0.2, "steps": 300}, 300, False),  # the L2 Square, for comparison
    ]
    rows = []
    with torch.no_grad():
        passes(3, False)
    for name, params, k, backward in cases:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        ATTACKS[name](model, **params)(x, y)
        seconds = time.perf_counter() - t0
        k, extra = k if isinstance(k, tuple) else (k, 0)  # (forward-backward passes, forward passes)
        floor = passes(k, backward) if backward else _no_grad(passes, k)
        floor += _no_grad(passes, extra) if extra else 0.0
        rows.append({"attack": name, "params": params, "passes": k, "forward_passes": extra})
        rows[-1]["seconds"] = round(seconds, 2)
        rows[-1] |= {"floor_seconds": round(floor, 2), "ratio": round(seconds / floor, 2), "images": len(x)}
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _no_grad(fn, *a):
    with torch.no_grad():
        return fn(*a, False)


def main(argv=None) -> dict:
    from advlens.zoo import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--what", default="fmn,l1,speed")
    ap.add_argument("--eps", type=float, default=6.0, help="the L1 budget of the l1 comparison")
    ap.add_argument("--steps", type=int, default=100, help="FMN steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--foolbox-path", help="a folder holding foolbox (pip install --target)")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.foolbox_path:
        sys.path.insert(0, args.foolbox_path)
    x, y, images = _images(args.n)
    model = load_model("digits_small_cnn", "cpu")
    reference = load_model("digits_small_cnn", "cpu").eval()  # the references leave gradients behind
    report = {"model": "digits_small_cnn", "dataset": "digits", "images": images, "n": len(x)}
    what = args.what.split(",")
    if "fmn" in what:
        report["fmn"] = bench_fmn(model, reference, x, y, args.steps)
    if "l1" in what:
        report["l1"] = bench_l1(model, reference, x, y, args.eps)
    if "speed" in what:
        report["speed"] = bench_speed(model, x[:16], y[:16])
    report |= provenance("minimal_norm.py", argv)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
