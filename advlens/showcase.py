"""The Home page's showcase, computed once at build time: a targeted PGD-30 on EfficientNet-Lite0.

The Home page shows a striking attack (Egyptian cat -> a class far from the truth). Running it in
the page would cost a model load and 30 forward/backward passes at 224 px on every server start,
so :func:`build` runs it once (``python -m advlens build-showcase``) and writes two lossless PNGs
and a JSON of the result to ``assets/showcase/``; the page reads them (:func:`load`). The
predictions stored are those of the saved 8-bit PNGs, so what the page says is what the pictures
do. :func:`load` returns None, with the reason, when the files are missing or were built for other
settings; the page then offers to compute it on a click.
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import numpy as np

from .paths import ASSETS_DIR
from .safe_files import UnsafeFileError, read_small_file
from .safe_json import loads_limited

SHOWCASE_DIR = ASSETS_DIR / "showcase"
# The striking default: a targeted attack to a class far from the truth, not a flip to the second guess.
SHOWCASE = {"model": "efficientnet_lite0", "photo": "chelsea", "label": 285, "target": 404, "eps": 4 / 255, "steps": 30}
MAX_PNG_BYTES = 1 << 20
MAX_JSON_BYTES = 64 * 1024
FILES = ("clean.png", "adv.png", "showcase.json")


def _png_bytes(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _png_rgb(blob: bytes) -> np.ndarray | None:
    import cv2

    arr = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    return None if arr is None else np.ascontiguousarray(arr[..., ::-1])


def compute(model=None, seed: int = 0) -> dict:
    """Run the showcase attack; returns the record :func:`load` gives back (uint8 HxWx3 pictures,
    top-1 of each saved picture, success, norms)."""
    import torch

    from .attacks import run_attack
    from .data import fit_image, to_uint8_hwc
    from .data.offline import sample_photo
    from .predict import predict_proba
    from .zoo import load_model

    s = SHOWCASE
    model = model if model is not None else load_model(s["model"], device="cpu")
    x = fit_image(sample_photo(s["photo"]), model.input_size).unsqueeze(0)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    res = run_attack(model, x, s["label"], "pgd", target=s["target"], eps=s["eps"], steps=s["steps"])
    seconds = time.perf_counter() - t0
    clean, adv = to_uint8_hwc(res.x[0]), to_uint8_hwc(res.x_adv[0])
    # What the page shows are the 8-bit pictures: predict on those, not on the float attack result.
    shown = torch.from_numpy(np.stack([clean, adv])).permute(0, 3, 1, 2).float() / 255.0
    probs = predict_proba(model, shown).cpu()
    names = model.class_names
    c, a = probs[0], probs[1]
    delta = (shown[1] - shown[0]).abs()
    return {
        "clean": clean,
        "adv": adv,
        "settings": dict(s),
        "clean_top": [names[int(c.argmax())], float(c.max())],
        "adv_top": [names[int(a.argmax())], float(a.max())],
        "target": names[s["target"]],
        "success": int(a.argmax()) == s["target"],
        "linf": float(delta.max()),
        "attack_seconds": round(seconds, 2),
        "seed": seed,
        "torch": torch.__version__,
        "built": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def build(out: Path | None = None, model=None) -> dict:
    """Compute the showcase and write ``clean.png``, ``adv.png`` and ``showcase.json`` to ``out``."""
    out = Path(out) if out is not None else SHOWCASE_DIR
    rec = compute(model)
    out.mkdir(parents=True, exist_ok=True)
    (out / "clean.png").write_bytes(_png_bytes(rec["clean"]))
    (out / "adv.png").write_bytes(_png_bytes(rec["adv"]))
    meta = {k: v for k, v in rec.items() if k not in ("clean", "adv")}
    (out / "showcase.json").write_text(json.dumps(meta, indent=2) + "\n")
    return rec


def load(folder: Path | None = None) -> tuple[dict | None, str]:
    """(the record written by :func:`build`, "") or (None, why it cannot be shown). Reads three small
    files; never runs a model."""
    folder = Path(folder) if folder is not None else SHOWCASE_DIR
    try:
        meta = loads_limited(read_small_file(folder / "showcase.json", MAX_JSON_BYTES), "showcase.json", MAX_JSON_BYTES)
        pics = [_png_rgb(read_small_file(folder / n, MAX_PNG_BYTES)) for n in ("clean.png", "adv.png")]
    except (UnsafeFileError, ValueError) as exc:
        return None, f"the precomputed example is missing or unreadable ({exc})"
    if not isinstance(meta, dict) or meta.get("settings") != SHOWCASE:
        return None, "the precomputed example was built for other settings"
    if any(p is None for p in pics):
        return None, "the precomputed example's pictures cannot be decoded"
    try:
        rec = {
            **meta,
            "clean": pics[0],
            "adv": pics[1],
            "clean_top": (str(meta["clean_top"][0]), float(meta["clean_top"][1])),
            "adv_top": (str(meta["adv_top"][0]), float(meta["adv_top"][1])),
            "target": str(meta["target"]),
        }
    except (KeyError, IndexError, TypeError, ValueError):
        return None, "the precomputed example's JSON lacks a field"
    return rec, ""
