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


def register(sub) -> None:
    from ..training.config import FIELDS
    from .param_flags import add_param_flags

    p = sub.add_parser("train", help="train a model (standard or adversarial training) as a tracked run")
    p.add_argument("--config", help="a JSON training configuration (e.g. a run's config.json)")
    p.add_argument("--run-id", help="be the worker of this existing run (resumes a cancelled or failed one)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue a cancelled or failed run from its checkpoint")
    p.add_argument("--detach", action="store_true", help="queue the run in a background process and return")
    group = p.add_argument_group(
        "training configuration",
        "one flag per field of the configuration; flags override --config, and fields set by neither take "
        "the dataset's recommended values, then the defaults below",
    )
    add_param_flags(group, FIELDS, "cfg_")
    p.set_defaults(func=run_train)

    r = sub.add_parser("runs", help="list training runs; cancel or resume one")
    r.add_argument("--cancel", metavar="RUN_ID", help="ask a queued or running run to stop")
    r.add_argument("--resume", metavar="RUN_ID", help="continue a cancelled or failed run in the background")
    r.add_argument("--show", metavar="RUN_ID", help="print one run's record and log tail")
    r.set_defaults(func=run_runs)

    o = sub.add_parser("objectives", help="list the training objectives and their hyperparameters")
    o.set_defaults(func=run_objectives)


def build_config(args):
    """The TrainConfig of the command line: file < dataset recommendations < flags. A dict field's
    ``KEY=VALUE`` flags (``--param``, ``--arch-option``) add to the file's dict."""
    from ..params import ParamError
    from ..training.config import FIELDS, ConfigError, TrainConfig, recommended_for_dataset
    from . import UsageError
    from .param_flags import given_values

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
    try:
        flags = given_values(args, FIELDS, "cfg_")
    except ParamError as exc:
        raise UsageError(str(exc)) from None
    for prm in FIELDS:
        if prm.kind is dict and prm.name in flags:
            flags[prm.name] = {**base.get(prm.name, {}), **flags[prm.name]}
    dataset = flags.get("dataset", base.get("dataset", "digits"))
    merged = TrainConfig().to_dict()
    merged.update({k: v for k, v in recommended_for_dataset(dataset).items() if k not in explicit})
    merged.update({k: v for k, v in base.items() if k in explicit})
    merged.update(flags)
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
    from ..jobs.store import RunStore, read_log_tail
    from ..training import jobs
    from . import UsageError

    store = RunStore()
    store.reap_dead()
    try:
        if args.cancel:
            rec = jobs.cancel(args.cancel, store)
            print(f"run {rec.id}: cancel requested ({rec.status})")
            return 0
        if args.resume:  # any kind of job: advlens.jobs resumes it with its kind
            from ..jobs import api

            rec = api.resume(args.resume, store)
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
    labels: dict[str, str] = {}
    print(
        f"{'id':<8s} {'kind':<8s} {'status':<10s} {'objective':<10s} {'dataset':<14s} {'arch':<16s} {'progress':>9s} "
        f"{'created':<16s} message"
    )
    for r in runs:
        prog = f"{r.step}/{r.total_steps}" if r.total_steps else ""
        if r.kind != "train" and r.total_steps:
            prog = f"{r.progress * 100:.0f}%"
        what, model = _what_and_model(r, labels)
        print(
            f"{r.id:<8s} {r.kind:<8s} {r.status:<10s} {what[:10]:<10s} {r.dataset:<14s} {model[:16]:<16s} {prog:>9s} "
            f"{_fmt_age(r.created_at):<16s} {r.message[:60]}"
        )
    return 0


def _what_and_model(r, labels: dict[str, str]) -> tuple[str, str]:
    """The "objective" and "arch" columns of ``runs``: a training run's objective and architecture;
    for another kind the fields its ``describe`` stored in ``meta`` (the suite or method, else the
    kind's label; the model, or the models)."""
    if r.kind == "train":
        return r.objective, r.arch
    meta = r.meta
    what = meta.get("suite") or meta.get("method")
    if not what:
        if r.kind not in labels:
            from ..jobs.kinds import kind_of

            try:
                labels[r.kind] = kind_of(r).label
            except Exception:  # a kind this version does not know: its name
                labels[r.kind] = r.kind
        what = labels[r.kind]
    models = meta.get("models")
    model = meta.get("model") or (", ".join(map(str, models)) if isinstance(models, list) else str(models or ""))
    return str(what), str(model)


def run_objectives(args) -> int:
    from ..training.objectives import list_objectives

    for cls in list_objectives():
        print(f"{cls.name:<10s} {cls.title} — {cls.source}")
        for h in cls.hyperparams:
            print(f"    {h.name:<14s} default {h.format(h.default):<16s} {h.help}")
    return 0
