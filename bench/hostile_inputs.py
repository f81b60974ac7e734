"""Issue 27's hostile inputs, measured: parse time of long budgets and the peak memory of
``advlens predict`` on a 49-megapixel PNG and JPEG (each in its own process, peak RSS from
``wait4`` of the child), against the same command on a small image.

    python bench/hostile_inputs.py

Prints a Markdown table; the figures are in bench/RESULTS.md (issue 27).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_seconds(n: int) -> float:
    from advlens.budget import BudgetError, parse_linf

    t0 = time.perf_counter()
    try:
        parse_linf("8" * n)
    except BudgetError:
        pass
    return time.perf_counter() - t0


def predict_peak_mb(image: Path, model: str) -> tuple[float, float, str]:
    """(peak RSS in MB, wall seconds, last output line) of ``advlens predict`` in a fresh process."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "advlens", "--cpu", "predict", "--model", model, "--image", str(image)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "ADVLENS_HOME": tempfile.mkdtemp()},
        )
        _, _, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the largest child so far
        proc.returncode = 0
        out.seek(0)
        lines = out.read().strip().splitlines()
    return usage.ru_maxrss / 1024, time.perf_counter() - t0, lines[-1] if lines else ""


def main() -> None:
    import numpy as np
    from PIL import Image

    for n in (8_000, 60_000):
        print(f"parse_linf('8' * {n:,}): {parse_seconds(n) * 1e3:.2f} ms")
    folder = Path(tempfile.mkdtemp())
    small = folder / "small.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(small)
    arr = np.zeros((7000, 7000, 3), np.uint8)
    arr[..., 0] = np.arange(7000, dtype=np.uint8)[None, :]
    arr[..., 1] = np.arange(7000, dtype=np.uint8)[:, None]
    big_png, big_jpg = folder / "big49.png", folder / "big49.jpg"
    Image.fromarray(arr).save(big_png, compress_level=1)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=80)
    big_jpg.write_bytes(buf.getvalue())
    del arr
    print("| image | model | peak RSS of `advlens predict` | wall |")
    print("|---|---|---|---|")
    for image in (small, big_jpg, big_png):
        for model in ("digits_small_cnn",):
            peak, seconds, _ = predict_peak_mb(image, model)
            print(f"| {image.name} ({image.stat().st_size / 1e6:.1f} MB) | {model} | {peak:.0f} MB | {seconds:.1f} s |")


if __name__ == "__main__":
    main()
