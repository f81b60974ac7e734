"""``python -m advlens patch``: an adversarial patch trained with EOT over position, scale and rotation (a job).

    python -m advlens patch --model cifar10_resnet20 --dataset folder --root /tmp/cifar10-jpeg --n 2000 \\
        --heldout-dataset cifar10_samples --heldout-split test --heldout-n 100 --target bird --area 0.1 \\
        --steps 2000 --name resnet20-bird-patch [--detach]
    python -m advlens patch --run-id ID

Trains a square patch covering at most --area of the image so that the model predicts --target wherever
the patch lands, measures the targeted success on held-out images (one random placement each) with a 95%
interval, and saves it (``attack --patch NAME`` pastes it on an image).
"""

from __future__ import annotations


def register(sub) -> None:
    from .perturbation import add_job_flags

    p = sub.add_parser("patch", help="an adversarial patch trained with EOT (a job)")
    add_job_flags(p, "patch", 2000, 500)
    p.add_argument("--area", type=float, help="the largest share of the image the patch covers (default 0.1)")
    p.add_argument("--steps", type=int, help="gradient steps (default 500)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="images per step (default 64)")
    p.add_argument("--min-scale", dest="min_scale", type=float, help="smallest scale of its side (default 0.8)")
    p.add_argument("--max-rotation", dest="max_rotation", type=float, help="largest rotation, degrees (default 20)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .perturbation import run_job_command

    raw = {k: getattr(args, k) for k in ("area", "steps", "batch_size", "min_scale", "max_rotation")}
    return run_job_command(args, "patch", raw)
