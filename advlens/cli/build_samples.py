"""``python -m advlens build-samples``: rebuild the shipped sample images (``assets/samples``).

The first ten test images of each class of MNIST (``../shared/data/mnist``) and of the CIFAR-10
JPEG copy (``../shared/data/cifar10-jpeg.tar.gz``, unpacked once into ``$ADVLENS_HOME/cache``).
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("build-samples", help="rebuild the 100 MNIST and 100 CIFAR-10 sample images in assets/samples")
    p.add_argument("--mnist-root", default=None, help="the MNIST folder (default: ../shared/data/mnist)")
    p.add_argument("--cifar-root", default=None, help="the unpacked CIFAR-10 image folder (default: the shared tar)")
    p.add_argument("--out", default=None, help="output folder (default: the project's assets/samples)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import load_dataset
    from ..data.samples import SAMPLES_DIR, write_samples
    from ..training.ship import data_root
    from ..training.shipped import get_recipe

    out = Path(args.out) if args.out else SAMPLES_DIR
    mnist = load_dataset("mnist", "test", root=data_root(get_recipe("mnist_small_cnn"), args.mnist_root))
    cifar = load_dataset("folder", "test", root=data_root(get_recipe("cifar10_resnet20"), args.cifar_root))
    for name, test in (("mnist_samples", mnist), ("cifar10_samples", cifar)):
        path = write_samples(name, test, out)
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0
