"""``python -m advlens evaluate``: robust accuracy under an attack suite, per model and budget.

    python -m advlens evaluate --model digits_small_cnn --dataset digits --eps 0.1,0.15 --suite standard
    python -m advlens evaluate --model digits_small_cnn --model run-ab12cd-pgd_at --dataset digits \\
        --eps 8/255,16/255 --n 200 --out report.json --html report.html --csv report.csv
    python -m advlens evaluate ... --detach          # queue it as a job (see `runs`)
    python -m advlens evaluate --run-id ID           # be the worker of job ID / resume it
    torchrun --nproc_per_node 2 -m advlens evaluate ... --num-images 1000   # shard the images over the ranks

The images follow the one subset rule (:mod:`advlens.data.subset`): the first ``--n`` where the
split's order is the official one (MNIST, CIFAR-10's batches, digits), a class-stratified sample with
a fixed seed otherwise (image folders, sample sets); ``--offset`` and ``--indices FILE`` choose other
images. The command prints the rule and the class counts, and warns when classes are missing. Every
line names the suite and n; the report holds the protocol, the subset and one record per image (with
its dataset index, and its file for folders). The standard suite runs
the gradient-masking checklist unless ``--no-checklist``. A defended model (``M+jpeg75``) is
attacked with BPDA and EOT by itself (``--plain`` turns them off, to watch a defense "work").
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def register(sub) -> None:
    from ..evaluation.spec import FIELDS, IMAGE_CHOICE, INTERNAL
    from .args import add_image_choice
    from .param_flags import add_param_flags

    p = sub.add_parser("evaluate", help="robust accuracy of models under an attack suite (cascade, worst case)")
    # one flag per field of EvalSpec (advlens.evaluation.spec.FIELDS); the image choice is every command's
    add_param_flags(p, FIELDS, skip=IMAGE_CHOICE + INTERNAL, defaults=True)
    p.set_defaults(checklist=None)  # not given: with the standard suite
    add_image_choice(
        p,
        ("--n", "--num-images"),
        n_help="N images (0: all): the first N where the split's order is the official one (MNIST, CIFAR-10 "
        "batches, digits), a class-stratified sample otherwise (image folders, sample sets); under torchrun write "
        "--num-images, which torchrun does not mistake for one of its options",
    )
    p.add_argument(
        "--leaderboard",
        action="store_true",
        help="reproduce RobustBench rows: rb:cifar10/... models on the first --n images of the original CIFAR-10 test "
        "set (downloaded unless --root has its batches), at the entry's eps and norm, beside the published figure",
    )
    p.add_argument("--out", help="write the report here (JSON)")
    p.add_argument("--html", help="write a self-contained HTML report here")
    p.add_argument("--csv", help="write the summary table here (CSV)")
    p.add_argument("--detach", action="store_true", help="queue the evaluation as a background job")
    p.add_argument("--run-id", help="be the worker of this evaluation job (resumes a cancelled or failed one)")
    p.set_defaults(func=run)


def build_spec(args):
    """The EvalSpec of the command line: the declared fields' flags, the image choice, the checklist
    by default with the standard suite."""
    from ..evaluation.spec import FIELDS, IMAGE_CHOICE, INTERNAL, EvalSpec
    from . import UsageError
    from .args import image_choice
    from .param_flags import given_values

    if not args.model or not args.dataset or not args.eps:
        raise UsageError("evaluate needs --model, --dataset and --eps (or --run-id)")
    values = given_values(args, FIELDS, skip=IMAGE_CHOICE + INTERNAL)
    if values.get("checklist") is None:
        values["checklist"] = values.get("suite") == "standard"
    choice = image_choice(args)
    values.update(n=choice["n"], offset=choice["offset"], indices=choice["indices"], subset_seed=choice["seed"])
    return EvalSpec(**values)


def run(args) -> int:
    from ..evaluation import jobs
    from ..evaluation.spec import EvalConfigError
    from . import UsageError
    from .args import queued_line

    if args.run_id:
        from ..jobs.store import RunStore

        store = RunStore()
        rec = store.require(args.run_id)
        if rec.kind != "evaluate":
            raise UsageError(f"run {rec.id} is a training run; use `python -m advlens train --run-id {rec.id}`")
        if rec.status == "done":
            raise UsageError(f"evaluation {rec.id} is already done")
        if rec.status in ("cancelled", "failed"):
            store.requeue(rec.id, rec.device)
        rec = jobs.execute(args.run_id, store)
        print(f"evaluation {rec.id} {rec.status}{': ' + rec.message if rec.message else ''}")
        return 0 if rec.status in ("done", "cancelled") else 1
    if getattr(args, "leaderboard", False):  # RobustBench rows: fill in the dataset, eps and norm (issue 25)
        from ..evaluation.leaderboard import leaderboard_setup

        try:
            vars(args).update(leaderboard_setup(args.model or [], args.root))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.suite == "corruptions":  # no budget, no cascade (issue 28)
        from .corruptions import run_corruptions

        return run_corruptions(args)
    try:
        spec = jobs.check_spec(build_spec(args))
    except EvalConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.detach:
        rec = jobs.submit(spec)
        print(queued_line("evaluation", rec))
        return 0
    shard, finish = _shard()
    rank0 = shard is None or shard.rank == 0
    from ..evaluation.suites import get_suite

    suite = get_suite(spec.suite)
    if rank0:
        print(f"{suite.title}, {spec.norm}, {spec.dataset} {spec.split} images ({suite.note})")
        if not spec.adaptive:
            print("plain attacks: defended models are attacked without BPDA or EOT (not a robustness figure)")
    try:
        report = jobs.run_spec(
            spec, progress=_progress if rank0 else None, shard=shard, log=print if rank0 else (lambda s: None)
        )
    except EvalConfigError as exc:
        raise UsageError(str(exc)) from None
    finally:
        finish()
    if not rank0:
        return 0
    for r in report["results"]:
        lo, hi = r["robust_interval_95"]
        print(
            f"\r{r['model']:<28s} eps {r['eps_shown']:<18s} clean {r['clean_accuracy'] * 100:6.2f}%   robust "
            f"{r['robust_accuracy'] * 100:6.2f}% [{lo * 100:.1f}, {hi * 100:.1f}]   n = {r['n']}   broken by "
            + ", ".join(f"{k} {v}" for k, v in r["broken_by_attack"].items())
        )
        if r.get("adaptations"):
            print(f"    {r['adaptations']}")
        if r.get("spread"):
            sp = r["spread"]
            print(
                f"    over {len(sp['runs'])} runs: robust {sp['mean'] * 100:.2f}% +- {sp['sd'] * 100:.2f} "
                f"(range {sp['min'] * 100:.2f} to {sp['max'] * 100:.2f}%)"
            )
        for c in r.get("checklist", []):
            print(f"    [{c['verdict']:>4s}] {c['name']}: {c['measured']}")
    if getattr(args, "leaderboard", False):
        from ..evaluation.leaderboard import leaderboard_lines

        print("\n".join(leaderboard_lines(report)))
    _write(report, args)
    return 0


def _write(report: dict, args) -> None:
    from ..evaluation.report import to_csv, to_html

    for path, text in (
        (args.out, lambda: json.dumps(report, indent=1)),
        (args.html, lambda: to_html(report)),
        (args.csv, lambda: to_csv(report)),
    ):
        if path:
            Path(path).write_text(text())
            print(f"wrote {path}")


def _shard():
    """Under torchrun (WORLD_SIZE > 1): this rank's shard and a function that ends the group."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None, lambda: None
    import torch
    import torch.distributed as dist

    from ..evaluation.cascade import Shard

    use_cuda = torch.cuda.is_available() and os.environ.get("ADVLENS_DEVICE", "") != "cpu"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if use_cuda else "gloo", init_method="env://")

    def gather(obj):
        out = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out

    return Shard(dist.get_rank(), dist.get_world_size(), gather), dist.destroy_process_group


def _progress(fraction: float) -> None:
    if sys.stderr.isatty():
        print(f"\r  {fraction * 100:5.1f}%", end="", file=sys.stderr, flush=True)
