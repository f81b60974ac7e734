"""The slow attacks with their defaults and with their CPU presets on EfficientNet-Lite0 and the
sample photos: time (interleaved, as a ratio), success and L2, in one process.

    python bench/cpu_presets.py [--photos chelsea,coffee,astronaut,rocket]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import provenance  # noqa: E402


def main(argv=None) -> dict:
    from advlens.attacks import ATTACKS, run_attack
    from advlens.data import SAMPLE_PHOTOS, fit_image, sample_photo
    from advlens.zoo import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default=",".join(SAMPLE_PHOTOS))
    args = ap.parse_args(argv)
    model = load_model("efficientnet_lite0", "cpu")
    rows = []
    for photo in args.photos.split(","):
        x = fit_image(sample_photo(photo), model.input_size).unsqueeze(0)
        for name in ("cw", "deepfool"):
            cls = ATTACKS[name]
            for label, params in (("default", {}), ("cpu preset", cls.CPU_PRESET)):
                torch.manual_seed(0)
                t0 = time.perf_counter()
                res = run_attack(model, x, SAMPLE_PHOTOS[photo], name, **params)
                rows.append(
                    {
                        "photo": photo,
                        "attack": name,
                        "settings": label,
                        "seconds": round(time.perf_counter() - t0, 2),
                        "success": bool(res.success[0]),
                        "l2": round(float(res.l2[0]), 4),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for name in ("cw", "deepfool"):
        d = sum(r["seconds"] for r in rows if r["attack"] == name and r["settings"] == "default")
        p = sum(r["seconds"] for r in rows if r["attack"] == name and r["settings"] == "cpu preset")
        ok = all(r["success"] for r in rows if r["attack"] == name and r["settings"] == "cpu preset")
        summary[name] = {"preset_to_default_time": round(p / d, 3), "preset_flips_every_photo": ok}
    report = {"rows": rows, "summary": summary, **provenance("cpu_presets.py", argv)}
    print(json.dumps(summary, indent=2))
    return report


if __name__ == "__main__":
    main()
