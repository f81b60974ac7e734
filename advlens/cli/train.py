"""``python -m advlens train`` and ``python -m advlens runs``: training runs from the command line.

    python -m advlens train --config cfg.json
    python -m advlens train --objective pgd_at --dataset digits --epochs 3 --eps 0.3
    python -m advlens train --config cfg.json --detach          # queue it and return
    torchrun --nproc_per_node 2 -m advlens train --config cfg.json   # DistributedDataParallel
    python -m advlens train --run-id ID                          # be the worker of run ID / resume it
    python -m advlens runs [--cancel ID | --resume ID]

Flags override the config file; fields set by neither take the dataset's recommended values
(:func:`advlens.training.config.recommended_for_dataset`), then the defaults of ``TrainConfig``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import fields

from .args import linf_eps

# flag -> (config key, type, help)
_FLAGS: list[tuple[str, str, type, str]] = [
    ("--objective", "objective", str, "training objective (see `python -m advlens objectives`)"),
    ("--dataset", "dataset", str, "digits, mnist, fashion_mnist, cifar10 or folder"),
    ("--data-root", "data_root", str, "local folder with the dataset's files (or the image folder)"),
    ("--arch", "arch", str, "small_cnn or preact_resnet18"),
    ("--epochs", "epochs", int, "epochs"),
    ("--batch-size", "batch_size", int, "global batch size"),
    ("--optimizer", "optimizer", str, "sgd or adam"),
    ("--lr", "lr", float, "(peak) learning rate"),
    ("--momentum", "momentum", float, "SGD momentum"),
    ("--weight-decay", "weight_decay", float, "weight decay"),
    ("--schedule", "schedule", str, "constant, step, cosine, onecycle or cyclic"),
    ("--eps", "eps", linf_eps, "L-inf budget: 8/255 or 0.0314 (0.3 for MNIST)"),
    ("--eps-warmup", "eps_warmup", float, "ramp eps up from 0 over this fraction of training"),
    ("--crop-padding", "crop_padding", int, "random crop padding in pixels (0: none)"),
    ("--val-size", "val_size", int, "images held out of the training split"),
    ("--eval-size", "eval_size", int, "size of the fixed held-out evaluation batch"),
    ("--eval-steps", "eval_steps", int, "PGD steps for the robust accuracy during training"),
    ("--eval-every", "eval_every", int, "also evaluate every N steps"),
    ("--seed", "seed", int, "random seed"),
    ("--device", "device", str, "auto, cpu, cuda or cuda:N"),
    ("--max-steps", "max_steps", int, "stop after N optimiser steps"),
    ("--checkpoint-every", "checkpoint_every", int, "also checkpoint every N steps"),
    ("--log-every", "log_every", int, "log training scalars every N steps"),
    ("--limit-train", "limit_train", int, "use a seeded random subset of N training images"),
    ("--init-from", "init_from", str, "start from these weights: a zoo model name or a checkpoint path"),
    ("--name", "name", str, "a name for the run"),
]


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model (standard or adversarial training) as a tracked run")
    p.add_argument("--config", help="a JSON training configuration (e.g. a run's config.json)")
    p.add_argument("--run-id", help="be the worker of this existing run (resumes a cancelled or failed one)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue a cancelled or failed run from its checkpoint")
    p.add_argument("--detach", action="store_true", help="queue the run in a background process and return")
    for flag, key, kind, text in _FLAGS:
        p.add_argument(flag, dest=f"cfg_{key}", type=kind, default=None, help=text)
    p.add_argument("--flip", dest="cfg_flip", action="store_true", default=None, help="random horizontal flips")
    p.add_argument("--no-flip", dest="cfg_flip", action="store_false", help="no flips")
    p.add_argument(
        "--download",
        dest="cfg_download",
        action="store_true",
        default=None,
        help="download the dataset when it is not cached",
    )
    p.add_argument("--no-amp", dest="cfg_amp", action="store_false", default=None, help="no mixed precision")
    p.add_argument(
        "--no-test-eval",
        dest="cfg_test_eval",
        action="store_false",
        default=None,
        help="skip the final test-set accuracy",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an objective hyperparameter (repeatable), e.g. --param beta=6",
    )
    p.set_defaults(func=run_train)

    r = sub.add_parser("runs", help="list training runs; cancel or resume one")
    r.add_argument("--cancel", metavar="RUN_ID", help="ask a queued or running run to stop")
    r.add_argument("--resume", metavar="RUN_ID", help="continue a cancelled or failed run in the background")
    r.add_argument("--show", metavar="RUN_ID", help="print one run's record and log tail")
    r.set_defaults(func=run_runs)

    o = sub.add_parser("objectives", help="list the training objectives and their hyperparameters")
    o.set_defaults(func=run_objectives)


def _parse_value(text: str):
    from ..safe_json import loads_limited

    try:  # bounded: 100,000 nested brackets in a --param are text, never a RecursionError
        return loads_limited(text, "--param", 10_000)
    except ValueError:
        return text


def build_config(args):
    """The TrainConfig of the command line: file < dataset recommendations < flags."""
    from ..training.config import ConfigError, TrainConfig, recommended_for_dataset
    from . import UsageError

    base: dict = {}
    if args.config:
        from ..safe_files import read_small_file
        from ..safe_json import loads_limited
        from ..training.config import MAX_CONFIG_BYTES

        try:  # both reads check the file's type and size first (never /dev/zero or a pipe)
            base = TrainConfig.from_json_file(args.config).to_dict()
            text = read_small_file(args.config, MAX_CONFIG_BYTES)
            explicit = set(loads_limited(text, args.config, MAX_CONFIG_BYTES))
        except (ConfigError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    else:
        explicit = set()
    flags = {}
    for f in fields(TrainConfig):
        v = getattr(args, f"cfg_{f.name}", None)
        if v is not None:
            flags[f.name] = v
    params = dict(base.get("objective_params", {}))
    for item in args.param:
        if "=" not in item:
            raise UsageError(f"--param takes KEY=VALUE, not {item!r}")
        k, v = item.split("=", 1)
        params[k.strip()] = _parse_value(v.strip())
    dataset = flags.get("dataset", base.get("dataset", "digits"))
    merged = TrainConfig().to_dict()
    merged.update({k: v for k, v in recommended_for_dataset(dataset).items() if k not in explicit})
    merged.update({k: v for k, v in base.items() if k in explicit})
    merged.update(flags)
    merged["objective_params"] = params
    try:
        return TrainConfig.from_dict(merged)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def run_train(args) -> int:
    from ..training import jobs
    from ..training.config import ConfigError
    from . import UsageError

    run_id = args.run_id or args.resume
    try:
        if run_id:
            if args.detach:
                rec = jobs.resume(run_id)
                print(
                    f"run {rec.id} queued to resume (worker pid {rec.pid}); watch it with "
                    f"`python -m advlens runs --show {rec.id}`"
                )
                return 0
            rec = jobs.run_existing(run_id)
        else:
            cfg = build_config(args)
            if args.detach:
                rec = jobs.submit(cfg)
                print(f"run {rec.id} {rec.status} (worker pid {rec.pid}); log: {rec.log_path}")
                return 0
            rec = jobs.run_in_foreground(cfg)
    except (ConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return 0 if rec.status in ("done", "cancelled") else 1
    if rec.status == "done":
        acc = rec.metrics.get("test_accuracy")
        extra = f", test accuracy {acc * 100:.2f}%" if isinstance(acc, float) else ""
        print(f"run {rec.id} done{extra}; the model is {rec.zoo_name} in the zoo ({rec.final_path})")
        return 0
    print(f"run {rec.id} {rec.status}: {rec.message}")
    return 0 if rec.status == "cancelled" else 1


def _fmt_age(t: float | None) -> str:
    if not t:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def run_runs(args) -> int:
    from ..training import jobs
    from ..training.store import RunStore, read_log_tail
    from . import UsageError

    store = RunStore()
    store.reap_dead()
    try:
        if args.cancel:
            rec = jobs.cancel(args.cancel, store)
            print(f"run {rec.id}: cancel requested ({rec.status})")
            return 0
        if args.resume:
            if store.require(args.resume).kind == "evaluate":
                from ..evaluation import jobs as eval_jobs

                rec = eval_jobs.resume(args.resume, store)
            elif store.require(args.resume).kind == "perturbation":
                from ..perturbations import jobs as pert_jobs

                rec = pert_jobs.resume(args.resume, store)
            else:
                rec = jobs.resume(args.resume, store)
            print(f"run {rec.id}: {rec.status} (worker pid {rec.pid})")
            return 0
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.show:
        rec = store.require(args.show)
        print(json.dumps({k: v for k, v in rec.__dict__.items() if k != "config"}, indent=2, default=str))
        print(read_log_tail(rec.log_path, 20))
        return 0
    runs = store.list_runs(kind=None)
    if not runs:
        print("no runs yet; start one with `python -m advlens train ...` or on the Training page")
        return 0
    print(
        f"{'id':<8s} {'kind':<8s} {'status':<10s} {'objective':<10s} {'dataset':<14s} {'arch':<16s} {'progress':>9s} "
        f"{'created':<16s} message"
    )
    for r in runs:
        prog = f"{r.step}/{r.total_steps}" if r.total_steps else ""
        if r.kind in ("evaluate", "perturbation") and r.total_steps:
            prog = f"{r.progress * 100:.0f}%"
        print(
            f"{r.id:<8s} {r.kind:<8s} {r.status:<10s} {r.objective:<10s} {r.dataset:<14s} {r.arch:<16s} {prog:>9s} "
            f"{_fmt_age(r.created_at):<16s} {r.message[:60]}"
        )
    return 0


def run_objectives(args) -> int:
    from ..training.objectives import list_objectives

    for cls in list_objectives():
        print(f"{cls.name:<10s} {cls.title} — {cls.source}")
        for h in cls.hyperparams:
            print(f"    {h.name:<14s} default {h.format(h.default):<16s} {h.help}")
    return 0
