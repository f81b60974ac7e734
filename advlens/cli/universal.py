"""``python -m advlens universal``: a universal adversarial perturbation over a dataset (a job).

    python -m advlens universal --model digits_small_cnn --dataset digits --eps 0.2 --steps 10 --n 1437 \\
        --heldout-split test --heldout-n 360 --name digits-uap-0.2 [--detach]
    python -m advlens universal --run-id ID      # be the worker of job ID / start a cancelled one again

Trains one L-inf perturbation on the training images (the subset rule picks them: --n, --offset), measures
its fooling rate on held-out images (by default the next window of the same split) with a 95% interval,
and saves it (``python -m advlens perturbations`` lists them; ``attack --universal NAME`` applies one).
"""

from __future__ import annotations


def register(sub) -> None:
    from .args import linf_eps
    from .perturbation import add_job_flags

    p = sub.add_parser("universal", help="a universal adversarial perturbation over a dataset (a job)")
    add_job_flags(p, "universal", 1000, 500)
    p.add_argument("--eps", type=linf_eps, help="L-inf budget: 8/255 or 0.0314 (default 0.1)")
    p.add_argument("--steps", type=int, help="epochs over the training images (default 10)")
    p.add_argument("--step-size", dest="step_size", type=linf_eps, help="step per batch (default eps / 10)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="images per step (default 128)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .perturbation import run_job_command

    raw = {k: getattr(args, k) for k in ("eps", "steps", "step_size", "batch_size")}
    return run_job_command(args, "universal", raw)
