"""Randomized smoothing on MNIST (issue 13): certified accuracy, a consistency check, and the speed
of one certificate against its floor.

1. Train a Gaussian-augmented small_cnn on MNIST (objective ``gaussian_aug``, sigma 0.25) through the
   real trainer, or take ``--model``.
2. Certify the first ``--images`` test images (Cohen et al.: n0 = 100, n = 10,000, alpha = 0.001) and
   give the certified accuracy at each L2 radius of ``--radii``.
3. Consistency: on the first ``--check`` certified-correct images, attack the *smoothed* classifier
   with L2 PGD and EOT over the noise (``M+noise0.25`` with ``eot``) at 99% of the certified radius;
   PREDICT (n = 10,000) must never return another class there. The same attack at twice the radius
   shows that it is not toothless.
4. Speed: certifying one image (n0 + n = 10,100 passes) against the floor, 10,000 forward passes of
   the base model over a batch of noisy copies made beforehand; interleaved, the median of ``--repeats``.

    python bench/smoothing_mnist.py --home /tmp/smooth_home --out bench/out/smoothing_mnist.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import MNIST_BASE, provenance, run_and_time  # noqa: E402

DEFAULT_ROOT = ROOT.parent / "shared" / "data" / "mnist"


def train(args):
    from advlens.training.config import TrainConfig

    cfg = TrainConfig(
        objective="gaussian_aug",
        objective_params={"sigma": args.sigma},
        **MNIST_BASE,
        data_root=args.data_root,
        epochs=args.epochs,
        batch_size=128,
        lr=2e-3,
        val_size=1000,
        eval_size=500,
        seed=args.seed,
        name=f"bench: MNIST Gaussian augmentation sigma {args.sigma}",
    )
    rec, seconds = run_and_time(cfg)
    return rec.final_path, seconds, rec.id


def consistency(model, x, y, certs, sigma, count, steps, eot, seed):
    from advlens.attacks import ATTACKS
    from advlens.models.defended import DefendedClassifier
    from advlens.smoothing import ABSTAIN, predict
    from advlens.transforms import parse_chain

    noisy = DefendedClassifier(model, parse_chain(f"noise{sigma:g}"))
    chosen = [i for i, c in enumerate(certs) if c.prediction == int(y[i]) and c.radius > 0][:count]
    flipped_below = flipped_double = abstained = 0
    for i in chosen:
        c = certs[i]
        label = torch.tensor([c.prediction])
        for scale in (0.99, 2.0):
            torch.manual_seed(seed + i)
            x_adv = ATTACKS["pgd_l2"](noisy, eps=scale * c.radius, steps=steps, eot=eot)(x[i : i + 1], label)
            got = predict(model, x_adv[0], sigma, n=10_000)
            if scale < 1:
                flipped_below += got not in (c.prediction, ABSTAIN)
                abstained += got == ABSTAIN
            else:
                flipped_double += got not in (c.prediction, ABSTAIN)
    return {
        "images": len(chosen),
        "attack": f"PGD-L2-{steps} with EOT over {eot} noise draws on the smoothed classifier",
        "flipped_below_radius": flipped_below,
        "abstained_below_radius": abstained,
        "flipped_at_twice_radius": flipped_double,
    }


def speed(model, x, sigma, repeats):
    from advlens.smoothing import certify

    noisy = x[None] + sigma * torch.randn(1000, *x.shape)

    def floor():
        with torch.no_grad():
            for _ in range(10):
                model(noisy).argmax(1)

    floors, certs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        floor()
        floors.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        certify(model, x, sigma, n0=100, n=10_000)
        certs.append(time.perf_counter() - t0)
    f, c = statistics.median(floors), statistics.median(certs)
    return {"floor_s": round(f, 3), "certify_s": round(c, 3), "ratio": round(c / f, 3), "repeats": repeats}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=str(DEFAULT_ROOT))
    ap.add_argument("--model", help="a trained checkpoint (skips training)")
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--offset", type=int, default=0, help="start at this test image (to certify in parts)")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--radii", default="0,0.25,0.5,0.75,1.0")
    ap.add_argument("--check", type=int, default=50, help="certified images for the consistency check")
    ap.add_argument("--check-steps", type=int, default=20)
    ap.add_argument("--check-eot", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--home")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.home:
        os.environ["ADVLENS_HOME"] = args.home
    torch.set_num_threads(args.threads)
    from advlens.data import load_dataset, to_float
    from advlens.data.subset import choose_images
    from advlens.smoothing import ABSTAIN, certified_accuracy, certify
    from advlens.zoo import load_model

    train_s, run_id = 0.0, None
    path = args.model
    if path is None:
        path, train_s, run_id = train(args)
    model = load_model(str(path), "cpu")
    test = load_dataset("mnist", "test", root=args.data_root)
    subset = choose_images(test, args.images, offset=args.offset)  # MNIST: the first ones, official order
    x, y = test.batch(subset.indices)
    x = to_float(x)
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    certs = []
    for i in range(len(x)):
        certs.append(certify(model, x[i], args.sigma, 100, args.n))
        if (i + 1) % 50 == 0:
            print(f"certified {i + 1}/{len(x)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    certify_s = time.perf_counter() - t0
    radii = [float(r) for r in args.radii.split(",")]
    acc = certified_accuracy(certs, y.tolist(), radii)
    report = {
        "run_id": run_id,
        "checkpoint": str(path),
        "sigma": args.sigma,
        "train_seconds": round(train_s, 1),
        "clean_accuracy_base": clean,
        "images": len(x),
        "offset": args.offset,
        "n0": 100,
        "n": args.n,
        "alpha": 0.001,
        "certified_accuracy": {f"{r:g}": a for r, a in zip(radii, acc)},
        "abstained": sum(c.prediction == ABSTAIN for c in certs),
        "certify_seconds": round(certify_s, 1),
        "certificates": [{"label": int(y[i]), **c.to_dict()} for i, c in enumerate(certs)],
    }
    print(json.dumps({k: v for k, v in report.items() if k != "certificates"}), flush=True)
    if args.check > 0:
        report["consistency"] = consistency(
            model, x, y, certs, args.sigma, args.check, args.check_steps, args.check_eot, args.seed
        )
        print(json.dumps(report["consistency"]), flush=True)
    if args.repeats > 0:
        report["speed"] = speed(model, x[0], args.sigma, args.repeats)
        print(json.dumps(report["speed"]), flush=True)
    report.update(provenance("smoothing_mnist.py", argv))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
