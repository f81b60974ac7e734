"""A new user's waits in a real browser: the server's first Home page, then Lessons and the Attack Lab.

    python bench/speed_first_page.py [--repeats 3] [--busy] [--json out.json]

Each repeat starts a fresh ``streamlit run streamlit_app.py`` (fresh ``ADVLENS_HOME``, CPU) with
chromium already open, waits for ``/_stcore/health`` to answer, then opens the Home page and times:

- *showcase*: until the precomputed example (the "attacked: ..." picture) is on screen;
- *fully drawn*: until the page last changed before staying unchanged for 1.5 s (text, elements,
  Streamlit's running indicator gone) with the gallery's 28 charts all drawn by plotly;

then clicks through as a new user would: *Lessons* (the navigation link, until the page is drawn)
and the *Attack Lab* (default model and image; PGD runs by itself: until its result is drawn),
each timed the same way, from the click to the page's last change.
The server's log is searched for an attack run during the Home page (there is none: nothing on it
calls an attack; ``tests/test_speed.py`` checks that).

``--also DIR`` times another checkout (say, the code before) in turn with this one, server by server.
``--busy`` runs the same while a training job (digits PGD-AT, queued with ``--detach`` in the
server's ``ADVLENS_HOME``) trains. Chromium: ``/usr/bin/chromium`` (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import machine  # noqa: E402

CHROMIUM = os.environ.get("ADVLENS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STATE = (
    "[document.querySelectorAll('[data-testid=\"stPlotlyChart\"]').length,"
    " document.querySelectorAll('.js-plotly-plot').length,"
    " document.body.innerText.length + document.querySelectorAll('*').length,"
    " document.querySelector('[data-testid=\"stStatusWidget\"]') === null]"
)
HOME_CHARTS = 28  # the gallery: 4 photos (EfficientNet-Lite0) and 8 images for each of 3 small models


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: str, root: Path = ROOT) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    env = {**os.environ, "ADVLENS_HOME": home, "ADVLENS_DEVICE": "cpu"}
    cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)]
    cmd += ["--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    while time.perf_counter() - t0 < 120:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit("the server did not answer its health check in 120 s")


def wait_drawn(page, t0: float, min_charts: int = 0, settle_s: float = 1.5, timeout_s: float = 300) -> float:
    """Seconds from ``t0`` until the page stopped changing: its text, its elements and its drawn
    charts (at least ``min_charts``, every chart element drawn by plotly) stay the same for
    ``settle_s`` with Streamlit's running indicator gone. Returns the time of the last change."""
    last, last_t = None, time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        now = page.evaluate(STATE)
        t = time.perf_counter()
        if now != last:
            last, last_t = now, t
        elif t - last_t >= settle_s and now[3] and now[1] >= max(min_charts, now[0]) and now[0] >= min_charts:
            return last_t - t0
        page.wait_for_timeout(100)
    raise SystemExit(f"the page did not settle in {timeout_s} s: {last}")


def one(browser, busy: bool, root: Path = ROOT) -> dict:
    home = tempfile.mkdtemp(prefix="advlens-firstpage-")
    job = None
    if busy:
        env = {**os.environ, "ADVLENS_HOME": home}
        out = subprocess.run(
            [sys.executable, "-m", "advlens", "train", "--objective", "pgd_at", "--dataset", "digits", "--detach"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        job = out.split()[1]
        for _ in range(120):  # until the worker trains (it registers its threads when its turn comes)
            if (Path(home) / "threads").is_dir():
                break
            time.sleep(0.5)
        time.sleep(3)
    proc, url, health_s = start_server(home, root)
    row = {"code": str(root), "health_s": health_s, "busy": busy}
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t0 = time.perf_counter()
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_text("attacked:").first.wait_for(timeout=300_000)
        row["home_showcase_s"] = time.perf_counter() - t0
        row["home_fully_drawn_s"] = wait_drawn(page, t0, HOME_CHARTS)
        row["home_charts"] = page.locator(".js-plotly-plot").count()
        row["home_exceptions"] = page.locator("[data-testid='stException']").count()
        for label, wait_text in (("Lessons", "Lesson"), ("Attack Lab", "Trajectory")):
            t0 = time.perf_counter()
            page.get_by_role("link", name=label).first.click()
            page.get_by_text(wait_text).first.wait_for(timeout=300_000)
            row[f"{label.lower().replace(' ', '_')}_s"] = wait_drawn(page, t0)
        page.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        log = proc.communicate(timeout=30)[0].decode(errors="replace")
        if job:
            env = {**os.environ, "ADVLENS_HOME": home}
            subprocess.run([sys.executable, "-m", "advlens", "runs", "--cancel", job], cwd=root, env=env, check=False)
    row["server_log_traceback"] = "Traceback" in log
    return row


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", action="store_true", help="alternate idle runs with runs beside a training job")
    ap.add_argument(
        "--also", default=None, help="another checkout (e.g. the code before) to time in turn with this one"
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    roots = [ROOT] + ([Path(args.also).resolve()] if args.also else [])
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(args.repeats):
            for busy in (False, True) if args.busy else (False,):
                for root in roots:
                    row = one(browser, busy, root)
                    rows.append(row)
                    print(
                        json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True
                    )
        browser.close()
    keys = ["health_s", "home_showcase_s", "home_fully_drawn_s", "lessons_s", "attack_lab_s"]
    summary = {
        f"{code} {'busy' if busy else 'idle'}": {
            k: statistics.median(r[k] for r in rows if r["busy"] == busy and r["code"] == code) for k in keys
        }
        for busy in sorted({r["busy"] for r in rows})
        for code in sorted({r["code"] for r in rows})
    }
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "median": summary, "runs": rows}
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
