"""``python -m advlens perturbations``: the saved universal perturbations and patches; and what the
``universal`` and ``patch`` commands share (their flags, the job, applying a saved one).

    python -m advlens perturbations                   # list them, with their held-out fooling rate
    python -m advlens perturbations --show NAME       # the metadata
    python -m advlens perturbations --delete NAME
    python -m advlens attack --model M --dataset D --index I --universal NAME   # apply one to an image
    python -m advlens attack --model M --image x.png --patch NAME [--row R --col C]
"""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("perturbations", help="list the saved universal perturbations and patches")
    p.add_argument("--model", help="only those made for this model")
    p.add_argument("--show", metavar="NAME", help="print one's metadata (JSON)")
    p.add_argument("--delete", metavar="NAME", help="delete one of yours")
    p.set_defaults(func=run_list)


def run_list(args) -> int:
    from ..perturbations import saved
    from . import UsageError

    try:
        if args.show:
            item = saved.load(args.show)
            print(json.dumps({k: v for k, v in item.meta.items() if k != "job"}, indent=1))
            return 0
        if args.delete:
            saved.delete(args.delete)
            print(f"deleted {args.delete}")
            return 0
    except saved.PerturbationError as exc:
        raise UsageError(str(exc)) from None
    items = saved.list_saved(args.model)
    if not items:
        print(
            "no saved perturbations; make one with `python -m advlens universal ...` or `python -m advlens patch ...`"
        )
    for item in items:
        print(("[shipped] " if item.shipped else "") + item.summary())
    return 0


# ----------------------------------------------------------------------- shared by universal and patch
def add_job_flags(p, method: str, n_default: int, heldout_default: int) -> None:
    """The flags of a perturbation job: model, images (training and held-out), target, name, --detach."""
    from ..data.subset import RULE_HELP, SUBSET_SEED

    p.add_argument("--model", help="zoo model name (see `models`)")
    p.add_argument("--dataset", help="dataset of the training images (see `datasets`)")
    p.add_argument("--split", default="train", choices=["train", "test"], help="its split (default train)")
    p.add_argument("--root", help="local folder of the dataset files")
    p.add_argument("--n", type=int, default=n_default, help=f"training images (default {n_default}): {RULE_HELP}")
    p.add_argument("--offset", type=int, default=0, help="skip the rule's first K training images")
    p.add_argument("--subset-seed", type=int, default=SUBSET_SEED, help="the stratified rule's seed")
    p.add_argument("--heldout-dataset", help="dataset of the held-out images (default: the same)")
    p.add_argument("--heldout-split", choices=["train", "test"], help="their split (default: the same)")
    p.add_argument("--heldout-root", help="local folder of the held-out dataset")
    p.add_argument(
        "--heldout-n", type=int, default=heldout_default, help=f"held-out images (default {heldout_default})"
    )
    p.add_argument(
        "--heldout-offset",
        type=int,
        help="skip the rule's first K held-out images (default: the window right after the training images "
        "when the split is the same, else 0)",
    )
    p.add_argument("--target", help="target class (index or name); default untargeted")
    p.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="NAME=VALUE", help=f"any parameter of {method}"
    )
    p.add_argument("--name", help="save it under this name (default: made from the settings)")
    p.add_argument("--replace", action="store_true", help="replace your earlier perturbation of that name")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--detach", action="store_true", help="run it as a background job (see `runs`)")
    p.add_argument("--run-id", help="be the worker of this job (resumes a cancelled or failed one)")


def build_spec(args, method: str, raw: dict):
    """A checked :class:`PerturbationSpec` from the flags; ``raw`` holds the method's own flags (text)."""
    from ..attacks.base import AttackConfigError
    from ..params import ParamError
    from ..perturbations.jobs import PerturbationConfigError, PerturbationSpec, check_spec, method_class
    from ..perturbations.saved import PerturbationError
    from . import UsageError
    from .args import class_index

    if not args.model or not args.dataset:
        raise UsageError(f"{method} needs --model and --dataset (or --run-id)")
    cls = method_class(method)
    for item in args.sets:
        if "=" not in item:
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        raw[key] = value
    params = {}
    try:
        for key, value in raw.items():
            if value is not None:
                params[key] = cls.param(key).parse(str(value))
    except (ParamError, AttackConfigError) as exc:
        raise UsageError(str(exc)) from None
    target = None
    if args.target:
        from ..zoo import load_model

        target = class_index(load_model(args.model, "cpu").class_names, args.target, "target class")
    name = args.name or default_name(method, args.model, params, target)
    spec = PerturbationSpec(
        method=method,
        model=args.model,
        dataset=args.dataset,
        name=name,
        split=args.split,
        root=args.root,
        n=args.n,
        offset=args.offset,
        subset_seed=args.subset_seed,
        heldout_dataset=args.heldout_dataset,
        heldout_split=args.heldout_split,
        heldout_root=args.heldout_root,
        heldout_n=args.heldout_n,
        heldout_offset=args.heldout_offset,
        target=target,
        params=params,
        seed=args.seed,
        replace=args.replace,
    )
    try:
        return check_spec(spec)
    except (PerturbationConfigError, PerturbationError) as exc:
        raise UsageError(str(exc)) from None


def default_name(method: str, model: str, params: dict, target: int | None) -> str:
    import time

    goal = f"-t{target}" if target is not None else ""
    return f"{method}-{model.replace('+', '_')}{goal}-{time.strftime('%Y%m%d-%H%M%S')}"[:64]


def run_job_command(args, method: str, raw: dict) -> int:
    """``universal``/``patch``: be a job's worker (--run-id), queue one (--detach), or run it here."""
    from ..jobs.store import RunStore
    from ..perturbations import jobs
    from ..perturbations.saved import PerturbationError
    from . import UsageError
    from .args import queued_line

    if args.run_id:
        store = RunStore()
        rec = store.require(args.run_id)
        if rec.kind != jobs.KIND:
            raise UsageError(f"run {rec.id} is not a perturbation job (it is a {rec.kind} run)")
        if rec.status == "done":
            raise UsageError(f"job {rec.id} is already done")
        if rec.status in ("cancelled", "failed"):
            store.requeue(rec.id, rec.device)
        rec = jobs.execute(args.run_id, store)
        print(f"job {rec.id} {rec.status}{': ' + rec.message if rec.message else ''}")
        return 0 if rec.status in ("done", "cancelled") else 1
    spec = build_spec(args, method, raw)
    if args.detach:
        rec = jobs.submit(spec)
        print(queued_line(f"{method} job", rec, f", saved as {spec.name} when done"))
        return 0
    try:
        meta = jobs.run_spec(spec, progress=_progress, log=print)
    except (jobs.PerturbationConfigError, PerturbationError) as exc:
        raise UsageError(str(exc)) from None
    print()
    held = meta["heldout"]
    lo, hi = held["interval_95"]
    print(
        f"{spec.name}: held-out {held['rate'] * 100:.1f}% [{lo * 100:.1f}, {hi * 100:.1f}] (95% Clopper-Pearson), "
        f"n = {held['n']}: {held['protocol']}"
    )
    return 0


def _progress(fraction: float) -> None:
    import sys

    if sys.stderr.isatty():
        print(f"\r  {fraction * 100:5.1f}%", end="", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ applying one to an image (attack)
def add_apply_flags(p) -> None:
    """``attack --universal NAME`` / ``--patch NAME`` (with ``--row/--col/--scale/--angle`` for a patch)."""
    g = p.add_argument_group("saved perturbations (instead of --attack)")
    g.add_argument("--universal", metavar="NAME", help="add a saved universal perturbation (see `perturbations`)")
    g.add_argument("--patch", metavar="NAME", help="paste a saved patch (see `perturbations`)")
    g.add_argument("--row", type=int, help="patch: top row of its box (default: a random placement, --seed)")
    g.add_argument("--col", type=int, help="patch: left column of its box")
    g.add_argument("--scale", type=float, default=1.0, help="patch: scale of its side, <= 1 (default 1)")
    g.add_argument("--angle", type=float, default=0.0, help="patch: rotation in degrees (default 0)")


def apply_saved(args) -> int:
    """Apply a saved perturbation to one image and print both top-5s and its held-out fooling rate."""
    import torch

    from ..attacks.patch import fixed_placement
    from ..data import encode_png
    from ..perturbations import saved
    from ..perturbations.measure import perturb
    from ..predict import predict_proba
    from ..zoo import load_model
    from . import UsageError
    from .args import load_input

    name = args.universal or args.patch
    try:
        item = saved.load(name)
    except saved.PerturbationError as exc:
        raise UsageError(str(exc)) from None
    wanted = "universal" if args.universal else "patch"
    if item.kind != wanted:
        raise UsageError(f"{name} is a {item.kind}; use --{item.kind} {name}")
    if not args.model:
        args.model = item.model
    model = load_model(args.model)
    if not args.image and not args.dataset:
        raise UsageError("give an image: --image FILE or --dataset NAME --index I")
    x, label, title, _ = load_input(args, model)
    placement = None
    if item.kind == "patch":
        side, (h, w) = item.tensor.shape[-1], x.shape[-2:]
        if args.row is not None or args.col is not None:
            row, col = args.row or 0, args.col or 0
            if not (0 <= row <= h - side and 0 <= col <= w - side):
                raise UsageError(
                    f"the {side}x{side} patch must lie inside the image: --row and --col from 0 to "
                    f"{h - side} and {w - side}"
                )
            if not (0.1 <= args.scale <= 1.0):
                raise UsageError("--scale must lie in [0.1, 1]")
            placement = fixed_placement(1, row, col, args.scale, args.angle)
    try:
        x_adv = perturb(item.kind, item.tensor, item.meta, x, placement, seed=args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    probs = predict_proba(model, torch.cat([x, x_adv]))
    names = model.class_names
    print(f"{args.model} on {title}, {item.summary()}")
    if item.model != getattr(model, "zoo_name", args.model):
        print(f"note: {name} was made for {item.model}; here it is applied to {args.model} (a transfer)")
    for what, p in (("clean", probs[0]), ("perturbed", probs[1])):
        top = torch.topk(p, min(args.top, len(names)))
        print(f"  {what:<10s} " + ", ".join(f"{names[i]} {v * 100:.1f}%" for v, i in zip(top.values, top.indices)))
    pred = int(probs[1].argmax())
    if item.target is not None:
        print(f"target {names[item.target]}: {'reached' if pred == item.target else 'not reached'}")
    elif label >= 0:
        print(f"fooled: {'yes' if pred != label else 'no'} (true class {names[label]})")
    if args.out:
        from pathlib import Path

        Path(args.out).write_bytes(encode_png(x_adv[0]))
        print(f"saved {args.out}")
    return 0
