"""``python -m advlens predict --model M --image FILE``: print the top-5 classes."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("predict", help="print a model's top-5 predictions for an image")
    p.add_argument("--model", required=True, help="zoo model name (see `models`) or a checkpoint path")
    p.add_argument("--image", required=True, help="PNG, JPEG, WebP or BMP file")
    p.add_argument("--top", type=int, default=5, help="how many classes to print (default 5)")
    p.add_argument("--resize", action="store_true", help="resize the whole image instead of centre-cropping")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..predict import top_k
    from ..zoo import load_model
    from . import UsageError
    from .args import read_image

    path = Path(args.image)
    if not path.is_file():
        raise UsageError(f"no image at {path}")
    if args.top < 1:
        raise UsageError("--top must be at least 1")
    model = load_model(args.model)
    x = read_image(args.image, model, args.resize)
    (pred,) = top_k(model, x, args.top)
    print(f"{getattr(model, 'zoo_name', args.model)} on {path.name}:")
    for rank, (name, prob) in enumerate(pred.as_rows(), 1):
        print(f"  {rank}. {name:<30s} {prob * 100:6.2f}%")
    return 0
