"""``python -m advlens cam`` and ``python -m advlens analyze``: the attention lens from the command line.

    python -m advlens cam --model efficientnet_lite0 --image chelsea --eps 2/255 --out cam.png
    python -m advlens cam --model digits_small_cnn --image digits:12 --eps 0.12 --method gradcam++
    python -m advlens analyze --model digits_small_cnn --dataset digits --n 360 --eps 0.12 --steps 20

``cam`` attacks one image with PGD L-inf and prints the attention-shift metrics (and writes the
clean | adversarial | difference panel as a PNG). ``analyze`` runs the seed paper's analysis over a
dataset (:mod:`advlens.attribution.analysis`): attack every image, compute both maps and the metrics,
and compare successful with failed attacks. Budgets are given as ``0.12`` ([0, 1] units) or ``30/255``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..budget import format_linf
from .args import add_image_choice, linf_eps

ATTACK_CHOICES = ("pgd", "fgsm", "mifgsm", "apgd_ce")


def _common(p) -> None:
    p.add_argument("--model", required=True, help="zoo model name (see `models`) or a checkpoint path")
    p.add_argument("--attack", default="pgd", choices=ATTACK_CHOICES, help="attack (default pgd, L-inf)")
    p.add_argument("--eps", type=linf_eps, default=8 / 255, help="L-inf budget: 8/255 or 0.0314 (default 8/255)")
    p.add_argument("--steps", type=int, default=10, help="attack iterations (default 10; ignored by fgsm)")
    p.add_argument(
        "--method",
        default="gradcam",
        help="gradcam, gradcam++, layercam, saliency, integrated_gradients, smoothgrad (default gradcam)",
    )
    p.add_argument("--layer", default=None, help="layer for CAM methods (default: the model's CAM layer)")
    p.add_argument("--target", default="true", help="true, clean_pred, adv_pred, own_pred or a class index")
    p.add_argument("--k", type=float, default=20.0, help="top-k%% region for IoU and faithfulness (default 20)")
    p.add_argument("--threshold", type=float, default=0.5, help="scatter threshold, fraction of max (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the attack's random start")


def register(sub) -> None:
    p = sub.add_parser("cam", help="attack one image and compare its clean and adversarial attention maps")
    _common(p)
    p.add_argument(
        "--image",
        required=True,
        help="an image file, a sample photo (chelsea, coffee, ...) or DATASET:INDEX (e.g. digits:12)",
    )
    p.add_argument(
        "--label",
        type=int,
        default=None,
        help="true class index (default: from the dataset, the sample photo, else the clean prediction)",
    )
    p.add_argument("--out", default=None, help="write the clean | adversarial | difference panel to this PNG")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_cam)
    p = sub.add_parser("analyze", help="attention shift over a dataset, successful vs failed attacks")
    _common(p)
    p.add_argument("--dataset", default="digits", help="dataset name (default digits)")
    p.add_argument("--split", default="test", help="split (default test)")
    p.add_argument("--root", default=None, help="local folder with the dataset's files (MNIST: the .gz files)")
    add_image_choice(p)
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--all-images", action="store_true", help="keep images the model misclassifies when clean")
    p.add_argument("--json-out", default=None, help="write the per-image metrics and summary as JSON")
    p.add_argument("--html", default=None, help="write the distribution plot as a standalone HTML file")
    p.set_defaults(func=run_analyze)


def _p(p: float) -> str:
    """A p-value for people: below float64's range it prints as '<1e-300', not '0'."""
    return "<1e-300" if p == 0 else f"{p:.2g}"


def _target(text: str):
    return int(text) if text.lstrip("-").isdigit() else text


def _attack_params(args) -> dict:
    from . import UsageError

    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    params = {"eps": args.eps}
    if args.attack != "fgsm":
        params["steps"] = args.steps
    return params


def _load_image(spec: str, model):
    """(x (1, C, H, W), label or -1, title) from a file, a sample photo or DATASET:INDEX."""
    from ..data import SAMPLE_PHOTOS, fit_image, load_dataset, load_upload, sample_photo
    from . import UsageError

    path = Path(spec)
    if path.is_file():
        return (
            load_upload(path.read_bytes(), model.input_size, name=path.name, invert_if_light=model.input_size[0] == 1),
            -1,
            path.name,
        )
    if spec in SAMPLE_PHOTOS:
        label = SAMPLE_PHOTOS[spec] if len(model.class_names) == 1000 else -1
        return fit_image(sample_photo(spec), model.input_size).unsqueeze(0), label, spec
    if ":" in spec:
        name, _, index = spec.partition(":")
        if not index.isdigit():
            raise UsageError(f"--image {spec!r}: the index after ':' must be a whole number")
        ds = load_dataset(name, split="test")
        x, y = ds.item(int(index))
        if tuple(x.shape[1:]) != tuple(model.input_size):
            raise UsageError(f"{name} images are {tuple(x.shape[1:])}, the model expects {tuple(model.input_size)}")
        same = tuple(ds.class_names) == tuple(model.class_names)
        return x, (y if same else -1), ds.item_name(int(index))
    raise UsageError(f"--image {spec!r} is not a file, a sample photo ({', '.join(SAMPLE_PHOTOS)}) or DATASET:INDEX")


def run_cam(args) -> int:
    import cv2
    import numpy as np
    import torch

    from ..attacks import AttackConfigError, run_attack
    from ..attribution import LayerError, attention_view
    from ..attribution.display import diverging_rgb, enlarge, image_rgb, overlay
    from ..zoo import load_model
    from . import UsageError

    model = load_model(args.model)
    x, label, title = _load_image(args.image, model)
    if args.label is not None:
        label = args.label
    params = _attack_params(args)
    torch.manual_seed(args.seed)
    try:
        res = run_attack(model, x, label, args.attack, **params)
        view = attention_view(
            model,
            res.x,
            res.x_adv,
            res.y,
            method=args.method,
            layer=args.layer,
            target=_target(args.target),
            k_percent=args.k,
            threshold=args.threshold,
            probs=(res.clean_probs, res.adv_probs),
        )
    except (AttackConfigError, LayerError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    names = model.class_names
    cp, ap = int(view.clean_pred[0]), int(view.adv_pred[0])
    rows = view.table(0)
    if args.out:
        ov_c = overlay(image_rgb(res.x), view.clean_norm[0].numpy())
        ov_a = overlay(image_rgb(res.x_adv), view.adv_norm[0].numpy())
        diff = diverging_rgb(view.diff[0].numpy(), float(view.diff_limit[0]))
        gap = np.full((ov_c.shape[0], 4, 3), 255, np.uint8)
        panel = enlarge(np.concatenate([ov_c, gap, ov_a, gap, diff], axis=1), 224)
        if not cv2.imwrite(args.out, cv2.cvtColor(panel, cv2.COLOR_RGB2BGR)):
            raise UsageError(f"could not write {args.out}")
    if args.json:
        print(
            json.dumps(
                {
                    "image": title,
                    "label": int(res.y[0]),
                    "clean_pred": names[cp],
                    "adv_pred": names[ap],
                    "attack": args.attack,
                    "params": params,
                    "method": args.method,
                    "layer": view.layer,
                    "metrics": {k: float(v[0]) for k, v in view.metrics.items()},
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{title}: {names[cp]} ({float(view.clean_probs[0, cp]) * 100:.1f}%) -> {names[ap]} "
        f"({float(view.adv_probs[0, ap]) * 100:.1f}%) under {args.attack} eps {format_linf(params['eps'])}"
    )
    print(f"{args.method} at {view.layer or 'input'}, target {args.target}")
    for r in rows:
        vals = [r["clean"], r["adversarial"], r["clean vs adversarial"]]
        print(f"  {r['metric']:<44s} " + "  ".join("        " if v is None else f"{v:8.4f}" for v in vals))
    if view.empty_note(0):  # nan above: say which map is empty and what shows something
        print(f"  nan: not computed, {view.empty_note(0)} (try another --layer, or --method layercam)")
    if args.out:
        print(f"wrote {args.out}")
    return 0


def run_analyze(args) -> int:
    import torch

    from ..attacks import AttackConfigError, attack_in_batches
    from ..attribution import LayerError
    from ..attribution.analysis import analyze_attention_shift, distribution_figure, summarize, verdict
    from ..data import load_dataset
    from ..zoo import load_model
    from . import UsageError
    from .args import choose, image_choice, print_subset

    model = load_model(args.model)
    ds = load_dataset(args.dataset, split=args.split, root=args.root)
    if tuple(ds.shape) != tuple(model.input_size):
        raise UsageError(f"{args.dataset} images are {ds.shape}, the model expects {tuple(model.input_size)}")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    subset = choose(ds, image_choice(args))
    n = len(subset)
    x, y = ds.batch(subset.indices)
    params = _attack_params(args)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    try:
        x_adv = attack_in_batches(model, x, y, args.attack, batch_size=args.batch_size, **params)
        t_attack = time.perf_counter() - t0
        a = analyze_attention_shift(
            model,
            x,
            y,
            x_adv,
            method=args.method,
            layer=args.layer,
            target=_target(args.target),
            k_percent=args.k,
            threshold=args.threshold,
            batch_size=args.batch_size,
            only_correct=not args.all_images,
        )
    except (AttackConfigError, LayerError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    t_total = time.perf_counter() - t0
    rows = summarize(a)
    v = verdict(a)
    eps_txt = format_linf(params["eps"])
    print(
        f"{args.model} on {args.dataset} {args.split}: N={n} images, {a.n_clean_wrong} misclassified clean "
        f"{'(kept)' if args.all_images else '(left out)'}; {args.attack} eps {eps_txt}"
        f"{'' if args.attack == 'fgsm' else f', {args.steps} steps'}; {args.method} at {a.settings['layer']}, "
        f"target {args.target}, top-{args.k:g}%, threshold {args.threshold:g}"
    )
    print_subset(subset)
    print(f"attack success {a.n_success} / {a.n_success + a.n_failure}; attack {t_attack:.1f} s, total {t_total:.1f} s")
    print("| metric | success mean | success median | failure mean | failure median | p (Mann-Whitney) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['label']} | {r['success_mean']:.4f} | {r['success_median']:.4f} | {r['failure_mean']:.4f} | "
            f"{r['failure_median']:.4f} | {_p(r['p_value'])} |"
        )
    print("verdict: " + ", ".join(f"{k}={v[k]:.3g}" if isinstance(v[k], float) else f"{k}={v[k]}" for k in v))
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {
                    "model": args.model,
                    "dataset": args.dataset,
                    "split": args.split,
                    "n": n,
                    "subset": subset.to_dict(),
                    "attack": args.attack,
                    "params": params,
                    "settings": {
                        k: (str(val) if not isinstance(val, (int, float, str, type(None))) else val)
                        for k, val in a.settings.items()
                    },
                    "n_success": a.n_success,
                    "n_failure": a.n_failure,
                    "n_clean_wrong": a.n_clean_wrong,
                    "summary": rows,
                    "verdict": v,
                    "indices": a.indices.tolist(),
                    "dataset_indices": subset.indices[torch.as_tensor(a.indices, dtype=torch.long)].tolist(),
                    "success": a.success.tolist(),
                    "metrics": {k: [None if val != val else float(val) for val in arr] for k, arr in a.metrics.items()},
                },
                indent=1,
            )
        )
        print(f"wrote {args.json_out}")
    if args.html:
        distribution_figure(a).write_html(args.html, include_plotlyjs=True)
        print(f"wrote {args.html}")
    return 0
