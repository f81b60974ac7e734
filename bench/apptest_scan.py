"""Cost of Streamlit's component-manifest scan per AppTest, with and without the test session's
memo (tests/conftest.py), timed in one process, interleaved, as a ratio.

    python bench/apptest_scan.py [--repeats 20]

Each AppTest instance scans every installed distribution for Streamlit component manifests
before its first run. The test suite memoises the scan for the session; this measures what that
saves per AppTest on the page the suite opens most (the Attack Lab, one FGSM run on a digit).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import provenance  # noqa: E402


def one_run(page: str) -> float:
    from streamlit.testing.v1 import AppTest

    t0 = time.perf_counter()
    at = AppTest.from_file(page, default_timeout=300)
    at.query_params.update(model="digits_small_cnn", attack="fgsm")
    at.run()
    assert not at.exception, at.exception
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    from streamlit.components.v2 import manifest_scanner

    page = str(ROOT / "dashboard" / "attack_lab.py")
    original = manifest_scanner.scan_component_manifests
    memo = functools.cache(original)
    one_run(page)  # warm-up: imports, model cache
    times = {"scan each time": [], "scan memoised": []}
    for _ in range(args.repeats):
        for label, fn in (("scan each time", original), ("scan memoised", memo)):
            manifest_scanner.scan_component_manifests = fn
            times[label].append(one_run(page))
    manifest_scanner.scan_component_manifests = original
    t0 = time.perf_counter()
    original()
    scan_s = time.perf_counter() - t0
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "benchmark": "AppTest of the Attack Lab (FGSM on a digit): component scan each time vs memoised",
        "median_seconds": med,
        "ratio_memoised_to_each_time": med["scan memoised"] / med["scan each time"],
        "one_scan_seconds": scan_s,
        "repeats": args.repeats,
        **provenance("apptest_scan.py", argv),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
