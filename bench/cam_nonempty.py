"""How often the default Grad-CAM shows something: the share of non-empty clean maps per shipped model.

For each shipped model: 200 test images chosen by the one subset rule (``advlens.data.subset``: the
first 200 of MNIST's and of sklearn digits' official order; for CIFAR-10, a class-stratified sample of
the JPEG copy's test folder, seed 0), the correctly classified ones, and the clean Grad-CAM of the
true class at the model's default layer and at every layer given with ``--layers``. A map is empty as
:func:`advlens.attribution.empty.empty_maps` says (its largest value <= 1e-12 after Grad-CAM's ReLU,
or below 1e-3 of the signed map's largest magnitude). Prints a markdown table.

    python bench/cam_nonempty.py                      # every shipped model, 200 images each
    python bench/cam_nonempty.py --models mnist_small_cnn --layers net.conv2,net.relu2,net.pool2

MNIST is read from ``--mnist`` (the IDX files); CIFAR-10 from ``--cifar-root`` (the unpacked
``cifar10-jpeg.tar.gz``; unpacked there from ``--cifar-archive`` when missing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHIPPED = (
    "digits_small_cnn",
    "mnist_small_cnn",
    "mnist_small_cnn_pgd_at",
    "cifar10_resnet20",
    "cifar10_resnet20_fast_at",
)
EXTRA_LAYERS = {"small_cnn": ("net.conv2",), "resnet20": ()}  # the layer used before issue 30, for comparison


def dataset_of(model, args):
    from advlens.data.catalog import load_dataset
    from advlens.data.folder import unpack_folder_archive

    name = model.spec.dataset
    if name == "digits":
        return load_dataset("digits", "test")
    if name == "mnist":
        return load_dataset("mnist", "test", root=args.mnist)
    root = unpack_folder_archive(args.cifar_archive, args.cifar_root)
    return load_dataset("folder", "test", root=root)


def measure(name: str, args) -> list[dict]:
    from advlens.attribution.cam import gradcam
    from advlens.attribution.empty import empty_maps
    from advlens.data.subset import choose_images
    from advlens.zoo import load_model

    model = load_model(name, "cpu")
    ds = dataset_of(model, args)
    subset = choose_images(ds, args.n)
    x, y = ds.batch(subset.indices)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    x, y = x[correct], y[correct]
    default = model.default_cam_layer()
    layers = [default] + [la for la in (args.layers or EXTRA_LAYERS.get(model.spec.arch, ())) if la != default]
    rows = []
    for layer in layers:
        t0 = time.perf_counter()
        maps = torch.cat([gradcam(model, x[i : i + 50], y[i : i + 50], layer) for i in range(0, len(x), 50)])
        signed = torch.cat(
            [gradcam(model, x[i : i + 50], y[i : i + 50], layer, relu=False) for i in range(0, len(x), 50)]
        )
        empty = empty_maps(maps, signed)
        rows.append(
            {
                "model": name,
                "layer": layer + (" (default)" if layer == default else ""),
                "images": f"{len(subset.indices)} ({subset.rule})",
                "correct": int(correct.sum()),
                "non-empty": int((~empty).sum()),
                "share": float((~empty).float().mean()) * 100,
                "seconds": time.perf_counter() - t0,
            }
        )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(SHIPPED))
    p.add_argument("--layers", default="", help="comma-separated layers to measure besides the default")
    p.add_argument("--n", type=int, default=200, help="test images per model")
    p.add_argument("--mnist", default="/work/shared/data/mnist")
    p.add_argument("--cifar-archive", default="/work/shared/data/cifar10-jpeg.tar.gz")
    p.add_argument("--cifar-root", default="/tmp/cifar10-jpeg")
    args = p.parse_args(argv)
    args.layers = [s for s in args.layers.split(",") if s]
    torch.manual_seed(0)
    rows = [r for name in args.models.split(",") for r in measure(name, args)]
    print("| model | layer | test images (rule) | correctly classified | non-empty clean maps | share |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['model']}` | `{r['layer']}` | {r['images']} | {r['correct']} | {r['non-empty']} | "
            f"**{r['share']:.1f}%** |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
