"""What a rerun of the Attack Lab and the Attention page costs, against the engine call it makes (AppTest, warm).

    python bench/speed_reruns.py [--repeats 5] [--threads N] [--json out.json]

Both pages on EfficientNet-Lite0 and the ``chelsea`` photo with every other setting at its default
(Attack Lab: PGD L-inf 2/255, 10 steps, the trajectory with its images; Attention: the lens's
PGD-10 then Grad-CAM with every metric). After a warm-up run (imports, model load):

- *computing rerun*: the session's memo is emptied and the page reruns, so it runs its engine call
  again with the same settings: the page's whole script time against
- *engine call*: the same call made directly (``run_attack`` with the page's arguments; for the
  Attention page ``run_attack`` then ``attention_view``), timed in the same process, in a new thread
  under the CPU policy (:mod:`advlens.threads`) as Streamlit runs it, alternating with the page so
  that a busy machine slows both alike (also timed in the main thread with torch's default threads);
- *unchanged rerun*: the page reruns with nothing changed (everything comes from memos and caches).

Medians of the repeats; the ratio is the median of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import machine  # noqa: E402

QUERY = {"model": "efficientnet_lite0", "image_src": "Sample", "image_sample": "photo: chelsea"}


def page(name: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard" / f"{name}.py"), default_timeout=600)
    at.query_params.update(QUERY)
    return at


def timed_run(at) -> float:
    t0 = time.perf_counter()
    at.run()
    dt = time.perf_counter() - t0
    if at.exception:
        raise SystemExit(f"the page failed: {[e.value for e in at.exception]}")
    return dt


def engine_attack_lab(model, x, label, params):
    import torch

    from advlens.attacks import run_attack

    torch.manual_seed(0)
    return run_attack(model, x, label, "pgd", record=True, record_images=True, max_frames=60, **params)


def engine_attention(model, x, label, params):
    import torch

    from advlens.attacks import run_attack
    from advlens.attribution import METHODS, TARGET_LABELS, attention_view
    from advlens.attribution.metrics import ERASE_VALUES

    torch.manual_seed(0)
    res = run_attack(model, x, label, "pgd", **params)
    method = list(METHODS)[0]
    return attention_view(
        model,
        res.x,
        res.x_adv,
        torch.tensor([int(res.y[0])]),
        method=method,
        layer=model.default_cam_layer() if METHODS[method].uses_layer else None,
        target=list(TARGET_LABELS)[0],
        k_percent=20.0,
        threshold=0.5,
        erase=ERASE_VALUES[0],
        probs=(res.clean_probs, res.adv_probs),
    )


def in_thread(fn, *args) -> float:
    """Seconds ``fn(*args)`` takes in a new thread under the CPU policy's threads, as a page runs it
    (Streamlit runs each script run in a thread of its own)."""
    from advlens.threads import GATE

    out = {}

    def go():
        with GATE.slot():
            t0 = time.perf_counter()
            fn(*args)
            out["s"] = time.perf_counter() - t0

    th = threading.Thread(target=go)
    th.start()
    th.join()
    return out["s"]


def bench_page(name: str, repeats: int) -> dict:
    from advlens.data import fit_image, sample_photo
    from advlens.zoo import load_model
    from dashboard.session_memo import MEMO_KEY

    at = page(name)
    first = timed_run(at)  # imports, model load, first computation
    memo = at.session_state[MEMO_KEY]
    key = next(iter(memo.keys()))
    if name == "attack_lab":
        params = dict(key[4])
        engine = engine_attack_lab
    else:
        params = dict(next(k for k in memo.keys() if k[0] == "attack")[4])
        engine = engine_attention
    model = load_model("efficientnet_lite0", device="cpu")
    x = fit_image(sample_photo("chelsea"), model.input_size).unsqueeze(0)
    in_thread(engine, model, x, 285, params)  # warm-up
    rows = []
    for _ in range(repeats):
        e = in_thread(engine, model, x, 285, params)
        t0 = time.perf_counter()
        engine(model, x, 285, params)
        e_main = time.perf_counter() - t0
        at.session_state[MEMO_KEY] = OrderedDict()
        p = timed_run(at)
        u = timed_run(at)
        rows.append({"engine_s": e, "engine_main_thread_s": e_main, "page_s": p, "unchanged_s": u, "ratio": p / e})
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return {"page": name, "params": params, "first_run_s": first, "median": med, "runs": rows}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pages", default="attack_lab,attention")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "pages": []}
    for name in args.pages.split(","):
        r = bench_page(name, args.repeats)
        out["pages"].append(r)
        m = r["median"]
        print(
            f"{name}: engine {m['engine_s']:.3f} s (main thread {m['engine_main_thread_s']:.3f} s), computing rerun {m['page_s']:.3f} s "
            f"(ratio {m['ratio']:.2f}x), unchanged rerun {m['unchanged_s']:.3f} s; first run {r['first_run_s']:.1f} s",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
