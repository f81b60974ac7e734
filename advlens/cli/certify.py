"""``python -m advlens certify``: certified L2 radii by randomized smoothing (Cohen et al. 2019).

    python -m advlens certify --model M --sigma 0.25 --n 10000 --images 100 --out certify.json
    python -m advlens certify --model M --dataset mnist --root ../shared/data/mnist --sigma 0.25 --images 500
    python -m advlens certify --model M --sigma 0.25 --images 500 --detach   # as a job (see `runs`)

For each of ``--images`` images of the split (the one subset rule, :mod:`advlens.data.subset`: the
first K in an official order, a class-stratified sample otherwise; ``--offset``, ``--indices FILE``): the smoothed classifier's certified class
(or an abstention) and its certified L2 radius; then the certified accuracy (certified, correct and
with a radius of at least r) at each radius of ``--radii``. ``--n0`` noisy samples choose the
class, ``--n`` estimate its probability, at confidence 1 - ``--alpha``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    from .args import add_image_choice

    p = sub.add_parser("certify", help="certified L2 radii of a model by randomized smoothing (Cohen et al.)")
    p.add_argument("--model", required=True, help="zoo model name or checkpoint (the base classifier)")
    p.add_argument("--sigma", required=True, type=float, help="noise level (train the base model at the same sigma)")
    p.add_argument("--dataset", help="dataset name (default: the model's own)")
    p.add_argument("--split", default="test", choices=["test", "train"])
    p.add_argument("--root", help="local folder of the dataset files")
    add_image_choice(
        p,
        ("--images",),
        n_default=100,
        n_help="K images (default 100): the first K where the split's order is the official one, a "
        "class-stratified sample otherwise (image folders, sample sets)",
        dest="images",
    )
    p.add_argument("--n", type=int, default=10_000, help="estimation samples per image (default 10,000)")
    p.add_argument("--n0", type=int, default=100, help="selection samples per image (default 100)")
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability (default 0.001)")
    p.add_argument("--radii", default="0,0.25,0.5,0.75,1.0", help="radii for the certified accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the certificates and the accuracies here (JSON)")
    p.add_argument("--device", default="auto", help="the job's device with --detach: auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--detach", action="store_true", help="certify as a background job: progress, cancel and resume in `runs`"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..data import load_dataset
    from ..params import MAX_ITEMS
    from ..smoothing import ABSTAIN, certified_accuracy, certify, check_settings
    from ..zoo import get_entry, is_checkpoint_path, load_model
    from . import UsageError
    from .args import choose, image_choice, print_subset

    choice = image_choice(args, "images")
    try:
        check_settings(args.sigma, args.n, args.n0, args.alpha)
        radii = [float(r) for r in args.radii.split(",") if r.strip()]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not 1 <= args.images <= 100_000 and choice["indices"] is None:
        raise UsageError("--images must be between 1 and 100,000")
    if any(r < 0 for r in radii) or not radii:
        raise UsageError("--radii must be non-negative numbers, comma-separated")
    if len(radii) > MAX_ITEMS:
        raise UsageError(f"--radii takes at most {MAX_ITEMS} radii, not {len(radii):,}")
    dataset = args.dataset or (None if is_checkpoint_path(args.model) else get_entry(args.model).dataset)
    if not dataset or dataset == "?":
        raise UsageError("say which images to certify: --dataset NAME")
    if args.detach:
        return detach(args, dataset, choice, radii)
    model = load_model(args.model)
    ds = load_dataset(dataset, split=args.split, root=args.root)
    subset = choose(ds, choice)
    k = len(subset)
    x, y = ds.batch(subset.indices)
    if tuple(x.shape[1:]) != tuple(model.input_size):
        raise UsageError(f"{dataset} images are {tuple(x.shape[1:])}; the model expects {tuple(model.input_size)}")
    from ..data import to_float

    x = to_float(x)
    torch.manual_seed(args.seed)
    names = model.class_names
    print(
        f"randomized smoothing of {getattr(model, 'zoo_name', args.model)}: sigma {args.sigma}, n0 {args.n0}, "
        f"n {args.n}, alpha {args.alpha}"
    )
    print_subset(subset)
    certs = []
    for i in range(k):
        c = certify(model, x[i], args.sigma, args.n0, args.n, args.alpha)
        certs.append(c)
        truth = int(y[i])
        if c.prediction == ABSTAIN:
            what = "abstain"
        else:
            verdict = "correct" if c.prediction == truth else f"WRONG (true {names[truth]})"
            what = f"{names[c.prediction]:<10s} radius {c.radius:.3f} {verdict}"
        print(f"  image {int(subset.indices[i]):5d}: {what}   p_A >= {c.p_lower:.4f}   {c.seconds:.2f} s", flush=True)
    acc = certified_accuracy(certs, y.tolist(), radii)
    print(f"certified accuracy (n = {k}):")
    for r, a in zip(radii, acc):
        print(f"  radius {r:g}: {a * 100:.1f}%")
    abstained = sum(c.prediction == ABSTAIN for c in certs)
    print(f"abstained on {abstained} of {k}; {sum(c.seconds for c in certs):.1f} s in all")
    if args.out:
        report = {
            "model": getattr(model, "zoo_name", args.model),
            "dataset": dataset,
            "split": args.split,
            "sigma": args.sigma,
            "n0": args.n0,
            "n": args.n,
            "alpha": args.alpha,
            "seed": args.seed,
            "subset": subset.to_dict(),
            "images": [
                {"index": i, **subset.image_name(i), "label": int(y[i]), **c.to_dict()} for i, c in enumerate(certs)
            ],
            "certified_accuracy": [{"radius": r, "accuracy": a} for r, a in zip(radii, acc)],
            "abstained": abstained,
            "command": " ".join(["python -m advlens", *sys.argv[1:]]),
        }
        Path(args.out).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.out}")
    return 0


def detach(args, dataset: str, choice: dict, radii: list[float]) -> int:
    """``--detach``: queue the certification as a job (:mod:`advlens.certify`) and return."""
    from ..certify import CertifyConfigError, CertifySpec, submit
    from . import UsageError
    from .args import queued_line

    spec = CertifySpec(
        model=args.model,
        dataset=dataset,
        sigma=args.sigma,
        images=args.images,
        offset=choice["offset"],
        indices=[int(i) for i in choice["indices"]] if choice["indices"] is not None else None,
        subset_seed=choice["seed"],
        split=args.split,
        root=args.root,
        n=args.n,
        n0=args.n0,
        alpha=args.alpha,
        radii=radii,
        seed=args.seed,
        device=args.device,
    )
    try:
        rec = submit(spec)
    except CertifyConfigError as exc:
        raise UsageError(str(exc)) from None
    print(queued_line("certification", rec))
    return 0
