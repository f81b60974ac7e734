"""``python -m advlens build-showcase``: rebuild the Home page's precomputed attack (``assets/showcase``).

Targeted PGD-30 (L-inf 4/255) on EfficientNet-Lite0 at 224 px, on the ``chelsea`` sample photo, seed
0; a few seconds on one CPU core. The page shows the result without running a model.
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("build-showcase", help="recompute the Home page's example attack into assets/showcase")
    p.add_argument("--out", default=None, help="output folder (default: the project's assets/showcase)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..showcase import SHOWCASE_DIR, build

    out = Path(args.out) if args.out else SHOWCASE_DIR
    rec = build(out)
    size = sum((out / n).stat().st_size for n in ("clean.png", "adv.png", "showcase.json"))
    print(
        f"clean: {rec['clean_top'][0]} ({rec['clean_top'][1] * 100:.1f}%) -> attacked: {rec['adv_top'][0]} "
        f"({rec['adv_top'][1] * 100:.1f}%), target {rec['target']}, success {rec['success']}, "
        f"L-inf {rec['linf'] * 255:.1f}/255; attack {rec['attack_seconds']:.1f} s"
    )
    print(f"wrote {out} ({size / 1e3:.0f} kB)")
    return 0
