"""``python -m advlens attack``: attack one image and print the clean and adversarial top-5.

    python -m advlens attack --model digits_small_cnn --dataset digits --index 3 --attack pgd --eps 32/255
    python -m advlens attack --model efficientnet_lite0 --image cat.jpg --attack apgd_ce --eps 2/255 \\
        --target "tiger cat" --out adv.png

L-inf budgets and step sizes (``--eps``, ``--step-size``) read as everywhere in advlens: ``8/255`` or
``0.0314`` (:mod:`advlens.budget`); L2 ones are plain numbers. ``--set NAME=VALUE`` sets any other parameter of the attack (``--list`` shows them).
``--out`` writes the adversarial image as a lossless PNG and the settings beside it as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..budget import format_linf
from ..params import ParamError
from .args import class_index, load_input

SHORTCUTS = (
    ("eps", "eps"),
    ("steps", "steps"),
    ("step_size", "step_size"),
    ("restarts", "restarts"),
    ("bpda", "bpda"),
    ("eot", "eot"),
)


def register(sub) -> None:
    from ..attacks import ATTACKS
    from .perturbation import add_apply_flags

    p = sub.add_parser(
        "attack",
        help="attack one image and print the clean and adversarial top-5",
        description="Attack one image; L-inf budgets are 8/255 or 0.0314.",
    )
    p.add_argument("--model", help="zoo model name (see `models`) or a checkpoint path")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", help="PNG, JPEG, WebP or BMP file")
    src.add_argument("--dataset", help="dataset name (see `datasets`), with --index")
    p.add_argument("--index", type=int, help="item of --dataset")
    p.add_argument("--split", default="test", choices=["test", "train"], help="split of --dataset (default test)")
    p.add_argument("--root", help="local folder of the dataset files (datasets that are not offline)")
    p.add_argument("--label", help="true class of --image (index or name; default: the clean prediction)")
    p.add_argument("--resize", action="store_true", help="resize --image instead of centre-cropping it")
    p.add_argument("--attack", default="pgd", help=f"one of: {', '.join(ATTACKS)} (default pgd)")
    p.add_argument("--eps", help="budget: 8/255 or 0.0314 for L-inf attacks, a number for L2 ones")
    p.add_argument("--steps", type=int, help="iterations (queries for square)")
    p.add_argument("--step-size", dest="step_size", help="step size, written like --eps")
    p.add_argument("--restarts", type=int, help="random restarts (pgd, pgd_l2, apgd_*)")
    p.add_argument("--target", help="target class (index or name); default untargeted")
    p.add_argument(
        "--bpda",
        action="store_const",
        const="1",
        help="BPDA through a defended model's non-differentiable transforms (pgd, pgd_l2, apgd_*)",
    )
    p.add_argument("--eot", type=int, help="EOT: average each gradient over N random draws (pgd, pgd_l2, apgd_*)")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other attack parameter, e.g. --set decay=0.9 (L-inf values as 2/255 or 0.0078)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--top", type=int, default=5, help="classes to print (default 5)")
    p.add_argument("--out", help="write the adversarial image here (PNG) and the settings beside it (.json)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--list", action="store_true", help="list the attacks and their parameters, then exit")
    add_apply_flags(p)  # --universal NAME, --patch NAME: a saved perturbation instead of an attack
    p.set_defaults(func=run)


def run(args) -> int:
    from ..attacks import AttackConfigError
    from . import UsageError

    if args.list:
        return list_attacks()
    if args.universal or args.patch:  # a saved universal perturbation or patch instead of an attack
        from .perturbation import apply_saved

        return apply_saved(args)
    try:
        return _run(args)
    except AttackConfigError as exc:
        raise UsageError(str(exc)) from None


def list_attacks() -> int:
    from ..attacks import ATTACKS

    for name, cls in ATTACKS.items():
        print(f"{name:<10s} {cls.title} ({cls.paper})")
        for prm in cls.params():
            print(f"    {prm.name:<13s} default {prm.format(prm.default):<16s} {prm.help}")
    return 0


def parse_params(cls, args) -> dict:
    """CLI values (text, read by each parameter's own parser) -> engine params, validated."""
    from . import UsageError

    raw: dict[str, object] = {}
    for flag, name in SHORTCUTS:
        value = getattr(args, flag)
        if value is None:
            continue
        if name not in {p.name for p in cls.params()}:
            raise UsageError(
                f"{cls.name} has no {name.replace('_', '-')} parameter; "
                f"it takes: {', '.join(p.name for p in cls.params())}"
            )
        raw[name] = value
    for item in args.sets:
        if "=" not in item:
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        raw[key] = value
    params = {}
    for key, value in raw.items():
        prm = cls.param(key)  # unknown names raise AttackConfigError
        try:
            params[key] = prm.parse(value if isinstance(value, str) else str(value))
        except ParamError as exc:
            raise UsageError(str(exc)) from None
    return cls.validate_params(params)


def _run(args) -> int:
    import torch

    from ..attacks import get_attack, run_attack
    from ..data import encode_png
    from ..zoo import load_model
    from . import UsageError

    if not args.model:
        raise UsageError("--model is required (see `python -m advlens models`)")
    if not args.image and not args.dataset:
        raise UsageError("give an image: --image FILE or --dataset NAME --index I")
    if args.top < 1:
        raise UsageError("--top must be at least 1")
    cls = get_attack(args.attack)
    params = parse_params(cls, args)
    model = load_model(args.model)
    x, label, title, source = load_input(args, model)
    target = class_index(model.class_names, args.target, "target class") if args.target else None
    torch.manual_seed(args.seed)
    progress = _progress if sys.stderr.isatty() and cls.iterative else None
    res = run_attack(model, x, label, cls.name, target=target, progress=progress, **params)
    if progress is not None:
        print(file=sys.stderr)
    settings = {
        "model": getattr(model, "zoo_name", args.model),
        "image": source,
        "title": title,
        "attack": cls.name,
        "params": params,
        "params_display": {p.name: p.format(params[p.name]) for p in cls.params()},
        "target": target,
        "seed": args.seed,
    }
    summary = res.summary(0)
    report = {
        **settings,
        "result": summary["images"][0],
        "seconds": summary["seconds"],
        "clean_top": [dict(zip(("class", "prob"), r)) for r in res.topk("clean", args.top).as_rows()],
        "adv_top": [dict(zip(("class", "prob"), r)) for r in res.topk("adv", args.top).as_rows()],
    }
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() != ".png":
            raise UsageError(f"--out must end in .png (lossless), got {out.name}")
        report["png"] = png_check(model, res)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(encode_png(res.x_adv[0]))
        out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(res, cls, params, settings, args.top)
        if args.out:
            png = report["png"]
            print(
                f"saved {args.out} (8-bit: predicted {png['pred']}, success {'yes' if png['success'] else 'no'}, "
                f"L-inf {format_linf(png['linf'])}) and {Path(args.out).with_suffix('.json')}"
            )
    return 0


def png_check(model, res) -> dict:
    """The saved PNG holds 8-bit pixels: does the rounded image still fool the model?"""
    from ..attacks.losses import is_success
    from ..predict import predict_proba

    x8 = (res.x_adv[:1] * 255).round() / 255
    probs = predict_proba(model, x8)
    target = None if res.target is None else res.target[:1]
    linf = float((x8 - res.x[:1]).abs().max())
    return {
        "success": bool(is_success(probs, res.y[:1], target)[0]),
        "pred": res.class_names[int(probs.argmax(1)[0])],
        "linf": linf,
        "bits": 8,
        "note": "the PNG stores pixels rounded to 1/255; these numbers describe the saved file",
    }


def _progress(step: int, total: int) -> None:
    print(f"\r  step {step}/{total}", end="", file=sys.stderr, flush=True)


def print_report(res, cls, params, settings, top: int) -> None:
    shown = ", ".join(f"{p.name}={p.format(params[p.name])}" for p in cls.params())
    names = res.class_names
    y = int(res.y[0])
    label = f"{names[y]} ({'clean prediction' if bool(res.y_from_prediction[0]) else 'label'})"
    print(f"{settings['model']} on {settings['title']}, true class {label}")
    goal = f"targeted at {names[int(res.target[0])]}" if res.targeted else "untargeted"
    print(f"attack {cls.title} [{goal}]: {shown}")
    clean, adv = res.topk("clean", top).as_rows(), res.topk("adv", top).as_rows()
    print(f"  {'clean':<38s} adversarial")
    for i, ((cn, cp), (an, ap)) in enumerate(zip(clean, adv), 1):
        print(f"  {i}. {cn[:24]:<24s} {cp * 100:6.2f}%    {i}. {an[:24]:<24s} {ap * 100:6.2f}%")
    linf = float(res.linf[0])
    print(f"L-inf {format_linf(linf)}   L2 {float(res.l2[0]):.4f}   time {res.seconds:.2f}s")
    before, after = names[int(res.clean_pred[0])], names[int(res.adv_pred[0])]
    verdict = "yes" if bool(res.success[0]) else "no"
    print(f"success: {verdict} (prediction {before} -> {after}){' [stopped early]' if res.stopped else ''}")
