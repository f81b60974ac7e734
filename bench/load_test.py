"""Live-server load test (issue 27): one ``streamlit run`` server, many browser sessions at once.

    python bench/load_test.py [--sessions 20] [--quick] [--out bench/out/load_test.json]

A bench, not a test (it takes minutes and its figures are timings). What it does, all through the
pages and the CLI (no internal imports, so that it survives refactors of the engine):

1. Starts ``streamlit run streamlit_app.py`` on a free port with a fresh ``ADVLENS_HOME``
   (``ADVLENS_DEVICE=cpu``) and waits for ``/_stcore/health``. One headless chromium (Debian's,
   launched as in ``tests/test_browser.py``), one browser context per session.
2. **Reference**: one light session alone, then the heavy one alone.
   *Light*: the Attack Lab on ``digits_small_cnn`` with a fixed sample image and PGD L-inf
   (``?model=...&attack=pgd&eps=32/255&steps=10&seed=0&auto=0``), a click on **Run attack** and a wait
   for the adversarial image, its caption (prediction and confidence) and the L-inf, L2 and Success
   metrics; then a click on **Attention** in the sidebar (the same browser session, so the page
   reads the Attack Lab's example) and a wait for the Grad-CAM maps, the line "clean prediction ...
   -> adversarial ..." and the shared-scale caption (the maps' raw range).
   *Heavy*: C&W-L2 at its defaults (5 x 100 Adam steps) on ``efficientnet_lite0`` (224 px) and the
   ``chelsea`` photo, from a click on **Run attack** to its adversarial image.
3. **Without the heavy session**: N light sessions open their Attack Lab at once, then all click
   Run together. **With it**: the same, but once the light pages are open the heavy session opens
   its page and clicks first; once its progress bar counts steps, the N light sessions click.
   Each light session's latencies: click -> adversarial image (``attack_s``) and click on
   Attention -> maps shown (``cam_s``).
   A *failure* is a session that raised (time-out, exception box on a page, missing map); a *wrong
   result* is a session whose displayed outcome (caption, norms, success, CAM line, map range)
   differs from the reference's.
4. **Two servers on one ADVLENS_HOME**: a second server on another port; one light session on each
   at once (both checked against the reference); an evaluation started from the first server's
   Evaluate page must show on the second server's Evaluate page.
5. **Kill and resume while a page watches**: an evaluation queued with ``python -m advlens evaluate
   ... --detach``; the Evaluate page open on it; its worker killed with SIGKILL; the page must show it
   failed (its Resume button); ``python -m advlens runs --resume ID`` completes it; its metrics
   (``runs --show ID``) must equal those of the same evaluation run uninterrupted.

The JSON report holds every session's record (a failed one's page is saved as a screenshot beside
it, and after a run with failures the server writes every thread's stack to its log); the summary is
printed. The browser runs on the same
machine as the server, so its rendering competes with the server for the CPU: the figures are
latencies as a user on this machine would see them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("ADVLENS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [  # as tests/test_browser.py launches it
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1400, "height": 1000}

LIGHT_QUERY = {
    "model": "digits_small_cnn",
    "image_src": "Sample",
    "image_sample": "digit 0 (digits test #24)",
    "attack": "pgd",
    "eps": "32/255",
    "steps": "10",
    "seed": "0",
    "auto": "0",
}
HEAVY_QUERY = {
    "model": "efficientnet_lite0",
    "image_src": "Sample",
    "image_sample": "photo: chelsea",
    "attack": "cw",
    "seed": "0",
    "auto": "0",
}
# the evaluation of the kill-and-resume check: long enough to watch (two parts, 1-2 min on 2 busy cores)
EVAL_ARGS = [
    "--model",
    "digits_small_cnn",
    "--dataset",
    "digits",
    "--eps",
    "0.1,0.15",
    "--n",
    "40",
    "--suite",
    "standard",
    "--no-checklist",
    "--batch-size",
    "20",
]
ADV_CAPTION = re.compile(r"^adversarial: ")
SCRIPT_IDLE = (
    "() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
    " return a && a.getAttribute('data-test-script-state') === 'notRunning'; }"
)


# ----- servers and the CLI ---------------------------------------------------------------------------
# ``python -m streamlit`` that writes every thread's stack to its log on SIGUSR1 (sent when sessions fail)
STACKS_ON_SIGUSR1 = (
    "import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
    "sys.argv[0] = 'streamlit'; from streamlit.web.cli import main; main(prog_name='streamlit')"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run streamlit_app.py`` on a free port; its output goes to ``log``."""

    def __init__(self, home: str, log: Path):
        self.home, self.log, self.port = home, log, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ADVLENS_HOME": home, "ADVLENS_DEVICE": "cpu"}
        self._out = open(log, "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                STACKS_ON_SIGUSR1,
                "run",
                "streamlit_app.py",
                "--server.port",
                str(self.port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).read() == b"ok":
                    self.start_s = time.monotonic() - t0
                    return
            except OSError:
                time.sleep(0.5)
            if self.proc.poll() is not None:
                break
        self.stop()
        raise SystemExit(f"streamlit did not start; its log: {log}\n{log.read_text()[-2000:]}")

    def dump_stacks(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGUSR1)
            time.sleep(1.0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()

    def errors(self) -> list[str]:
        """Lines of the server's log that report a traceback or an error."""
        text = self.log.read_text(errors="replace")
        return [ln for ln in text.splitlines() if re.search(r"Traceback|Error|Exception", ln)][:50]


def cli(home: str, *args: str, check: bool = True) -> str:
    env = {**os.environ, "ADVLENS_HOME": home, "ADVLENS_DEVICE": "cpu"}
    out = subprocess.run(
        [sys.executable, "-m", "advlens", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if check and out.returncode != 0:
        raise RuntimeError(f"advlens {' '.join(args)} failed ({out.returncode}): {out.stderr[-1000:]}")
    return out.stdout


def run_record(home: str, run_id: str) -> dict:
    """``runs --show ID``: its JSON record (the log tail that follows it is dropped)."""
    text = cli(home, "runs", "--show", run_id)
    return json.JSONDecoder().raw_decode(text)[0]


def wait_status(home: str, run_id: str, wanted: set[str], timeout: float) -> dict:
    t0 = time.monotonic()
    while True:
        rec = run_record(home, run_id)
        if rec["status"] in wanted or time.monotonic() - t0 > timeout:
            return rec
        time.sleep(1.0)


# ----- one browser session -------------------------------------------------------------------------
class SessionError(Exception):
    pass


async def new_context(browser, timeout_ms: float):
    """A fresh browser session whose every wait, page loads included, may last ``timeout_ms``
    (Playwright's default of 30 s is too short for 20 pages loading at once on a busy 2-core machine)."""
    ctx = await browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(timeout_ms)
    ctx.set_default_navigation_timeout(timeout_ms)
    return ctx


async def no_exception(page, where: str) -> None:
    boxes = page.locator("[data-testid='stException']")
    if await boxes.count():
        raise SessionError(f"exception box on {where}: {(await boxes.first.inner_text())[:300]}")


async def idle(page, timeout_ms: float) -> None:
    """Wait until the page's script run has ended."""
    await page.wait_for_timeout(300)  # a click reaches the server and flips the state to running
    await page.wait_for_function(SCRIPT_IDLE, timeout=timeout_ms)


async def metrics(page) -> dict:
    out = {}
    boxes = page.locator("[data-testid='stMetric']")
    for i in range(await boxes.count()):
        parts = [p.strip() for p in (await boxes.nth(i).inner_text()).split("\n") if p.strip()]
        if len(parts) >= 2 and parts[0] in ("L-inf", "L2", "Success"):
            out[parts[0]] = parts[1]
    return out


async def open_attack_lab(page, base: str, query: dict, timeout_ms: float) -> float:
    t0 = time.monotonic()
    await page.goto(f"{base}/attack?{urlencode(query)}", wait_until="domcontentloaded")
    await page.get_by_role("button", name="Run attack").wait_for(timeout=timeout_ms)
    await idle(page, timeout_ms)
    await no_exception(page, "the Attack Lab (opened)")
    return time.monotonic() - t0


async def run_attack_click(page, timeout_ms: float) -> tuple[float, dict]:
    """Click Run attack; (seconds to the adversarial image, what the page shows of the result)."""
    t0 = time.monotonic()
    await page.get_by_role("button", name="Run attack").click()
    caption = page.get_by_text(ADV_CAPTION).first
    await caption.wait_for(timeout=timeout_ms)
    seconds = time.monotonic() - t0
    await page.locator("[data-testid='stMetric']").filter(has_text="Success").first.wait_for(timeout=timeout_ms)
    await idle(page, timeout_ms)  # the rest of the run: inline CAM, trajectory, the example handed on
    await no_exception(page, "the Attack Lab (after Run)")
    shown = {"adversarial": (await caption.inner_text()).strip(), **(await metrics(page))}
    return seconds, shown


async def run_attention(page, timeout_ms: float) -> tuple[float, dict]:
    """Click Attention in the sidebar; (seconds to the maps, what the page shows)."""
    t0 = time.monotonic()
    await page.locator("[data-testid='stSidebarNavLink']").filter(has_text="Attention").first.click()
    scale = page.get_by_text(re.compile(r"^Shared scale: raw map values")).first
    await scale.wait_for(timeout=timeout_ms)
    seconds = time.monotonic() - t0
    await idle(page, timeout_ms)
    await no_exception(page, "the Attention page")
    body = await page.locator("[data-testid='stMain']").inner_text()
    if "Attack Lab example:" not in body:
        raise SessionError("the Attention page did not use the Attack Lab's example")
    line = page.get_by_text(re.compile(r"clean prediction .* adversarial")).first
    maps = page.locator("[data-testid='stImage']").filter(has_text="Grad-CAM")
    n_maps = await maps.count()
    if n_maps < 2:
        raise SessionError(f"{n_maps} Grad-CAM maps shown on the Attention page, not 2")
    shown = {"cam_line": (await line.inner_text()).strip(), "cam_scale": (await scale.inner_text()).strip()}
    return seconds, shown


async def light_session(
    browser, base: str, i: int, timeout_ms: float, shots: Path | None, opened=None, go=None
) -> dict:
    """``opened`` (an event) is set once the page is open; ``go`` (an event) is awaited before the click."""
    rec: dict = {"session": i, "ok": False}
    ctx = await new_context(browser, timeout_ms)
    page = await ctx.new_page()
    t0 = time.monotonic()
    try:
        try:
            rec["open_s"] = await open_attack_lab(page, base, LIGHT_QUERY, timeout_ms)
        finally:
            if opened is not None:
                opened.set()
        if go is not None:
            await go.wait()
        rec["attack_s"], shown = await run_attack_click(page, timeout_ms)
        rec["cam_s"], cam = await run_attention(page, timeout_ms)
        rec["shown"] = {**shown, **cam}
        rec["ok"] = True
    except Exception as exc:  # a time-out or a page error: a failure, recorded with its page
        rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        if shots is not None:
            try:
                await page.screenshot(path=str(shots / f"light-{i}.png"), full_page=True)
            except Exception:
                pass
    rec["total_s"] = time.monotonic() - t0
    await ctx.close()
    return rec


async def heavy_session(browser, base: str, timeout_ms: float, started: asyncio.Event | None) -> dict:
    rec: dict = {"ok": False}
    ctx = await new_context(browser, timeout_ms)
    page = await ctx.new_page()
    try:
        rec["open_s"] = await open_attack_lab(page, base, HEAVY_QUERY, timeout_ms)
        t0 = time.monotonic()
        await page.get_by_role("button", name="Run attack").click()
        # running once its progress bar counts steps (past the wait for the CPU and the model's set-up)
        await page.get_by_text(re.compile(r"C&W \(L2\): step [1-9]")).first.wait_for(timeout=timeout_ms)
        rec["first_step_s"] = time.monotonic() - t0
        if started is not None:
            started.set()
        caption = page.get_by_text(ADV_CAPTION).first
        await caption.wait_for(timeout=timeout_ms)
        rec["attack_s"] = time.monotonic() - t0
        await page.locator("[data-testid='stMetric']").filter(has_text="Success").first.wait_for(timeout=timeout_ms)
        await no_exception(page, "the Attack Lab (heavy)")
        rec["shown"] = {"adversarial": (await caption.inner_text()).strip(), **(await metrics(page))}
        rec["ok"] = True
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    finally:
        if started is not None:
            started.set()  # never leave the light sessions waiting on a heavy one that failed
    await ctx.close()
    return rec


# ----- the runs -------------------------------------------------------------------------------------
def quantiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = sorted(values)
    p90 = v[min(len(v) - 1, max(0, round(0.9 * len(v) + 0.5) - 1))]  # nearest rank
    return {"n": len(v), "p50": statistics.median(v), "p90": p90, "max": v[-1]}


def judge(records: list[dict], reference: dict) -> dict:
    failures = [r for r in records if not r["ok"]]
    wrong = [r for r in records if r["ok"] and r["shown"] != reference]
    for r in wrong:
        r["wrong"] = {k: (r["shown"].get(k), reference.get(k)) for k in reference if r["shown"].get(k) != reference[k]}
    ok = [r for r in records if r["ok"]]
    return {
        "sessions": len(records),
        "failures": len(failures),
        "wrong_results": len(wrong),
        "timeouts": sum("Timeout" in r.get("error", "") for r in failures),
        "errors": [r.get("error") for r in failures],
        "attack_s": quantiles([r["attack_s"] for r in ok]),
        "cam_s": quantiles([r["cam_s"] for r in ok]),
        "attack_plus_cam_s": quantiles([r["attack_s"] + r["cam_s"] for r in ok]),
        "open_s": quantiles([r["open_s"] for r in records if "open_s" in r]),
    }


async def load_run(browser, base: str, n: int, heavy: bool, timeout_ms: float, shots: Path) -> dict:
    load = {"loadavg_start": os.getloadavg()}
    t0 = time.monotonic()
    heavy_task = None
    opened, go = [asyncio.Event() for _ in range(n)], asyncio.Event()
    lights_task = asyncio.gather(*(light_session(browser, base, i, timeout_ms, shots, opened[i], go) for i in range(n)))
    await asyncio.gather(*(e.wait() for e in opened))  # every light page open: they click together
    load["open_wall_s"] = time.monotonic() - t0
    t0 = time.monotonic()
    if heavy:  # the heavy attack starts just before the light clicks and runs while they are served
        started = asyncio.Event()
        heavy_task = asyncio.create_task(heavy_session(browser, base, timeout_ms * 3, started))
        await started.wait()
        load["heavy_lead_s"] = time.monotonic() - t0
    go.set()
    lights = await lights_task
    load["light_wall_s"] = time.monotonic() - t0
    out = {"lights": lights, **load}
    if heavy_task is not None:
        out["heavy"] = await heavy_task
        out["heavy_running_when_lights_ended"] = out["heavy"].get("attack_s", 1e9) > load["light_wall_s"]
    out["loadavg_end"] = os.getloadavg()
    return out


async def two_servers(browser, first: Server, second: Server, reference: dict, timeout_ms: float) -> dict:
    """One light session on each server at once, then an evaluation started on the first server's
    Evaluate page and looked for on the second's."""
    a, b = await asyncio.gather(
        light_session(browser, first.url, 100, timeout_ms, None),
        light_session(browser, second.url, 101, timeout_ms, None),
    )
    out = {"second_start_s": second.start_s, "sessions": [a, b]}
    out["both_served"] = all(r["ok"] for r in (a, b))
    out["both_right"] = all(r["ok"] and r["shown"] == reference for r in (a, b))
    ctx = await new_context(browser, timeout_ms)
    page = await ctx.new_page()
    try:
        query = {
            "ev_models": "digits_small_cnn",
            "ev_dataset": "digits",
            "ev_n": "20",
            "ev_suite": "quick",
            "ev_eps": "0.1",
            "ev_checklist": "0",
        }
        await page.goto(f"{first.url}/evaluate?{urlencode(query)}", wait_until="domcontentloaded")
        await page.get_by_role("button", name="Start evaluation").click(timeout=timeout_ms)
        note = page.get_by_text(re.compile(r"^Evaluation \w+ queued")).first
        await note.wait_for(timeout=timeout_ms)
        run_id = (await note.inner_text()).split()[1]
        out["submitted_on_first"] = run_id
        other = await ctx.new_page()
        t0 = time.monotonic()
        await other.goto(f"{second.url}/evaluate", wait_until="domcontentloaded")
        # the second page names the run: its progress line while it runs, its results once done
        await other.get_by_text(re.compile(rf"\b{run_id}\b")).first.wait_for(timeout=timeout_ms)
        out["seen_on_second_s"] = time.monotonic() - t0
        await no_exception(other, "the second server's Evaluate page")
        out["seen_on_second"] = True
        rec = wait_status(first.home, run_id, {"done", "failed", "cancelled"}, timeout_ms / 1000)
        out["job_status"] = rec["status"]
    except Exception as exc:
        out["seen_on_second"] = False
        out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    await ctx.close()
    return out


def submit_eval(home: str) -> tuple[str, int]:
    line = cli(home, "evaluate", *EVAL_ARGS, "--detach")
    m = re.search(r"evaluation (\w+) \w+ \(worker pid (\d+)\)", line)
    if not m:
        raise RuntimeError(f"cannot read the job id from: {line!r}")
    return m.group(1), int(m.group(2))


def part_metrics(rec: dict) -> dict:
    return {k: {m: v.get(m) for m in ("clean_accuracy", "robust_accuracy")} for k, v in rec["metrics"].items()}


async def kill_and_resume(browser, server: Server, timeout_ms: float) -> dict:
    """An evaluation run uninterrupted, then the same one killed (SIGKILL) and resumed with a page on it."""
    home = server.home
    out: dict = {"evaluate_args": " ".join(EVAL_ARGS)}
    ref_id, _ = submit_eval(home)
    t0 = time.monotonic()
    ref = wait_status(home, ref_id, {"done", "failed", "cancelled"}, 900)
    out["uninterrupted"] = {"id": ref_id, "status": ref["status"], "seconds": time.monotonic() - t0}
    if ref["status"] != "done":
        out["error"] = f"the uninterrupted evaluation ended {ref['status']}: {ref.get('message')}"
        return out
    run_id, _ = submit_eval(home)
    out["id"] = run_id
    ctx = await new_context(browser, timeout_ms)
    page = await ctx.new_page()
    try:
        await page.goto(f"{server.url}/evaluate?{urlencode({'run': run_id})}", wait_until="domcontentloaded")
        progress = page.get_by_text(re.compile(rf"^{run_id}: running, (\d+)%"))
        await progress.first.wait_for(timeout=timeout_ms)
        # kill it in its second part, after the first part's checkpoint, while the page refreshes it
        await page.get_by_text(re.compile(rf"^{run_id}: running, ([5-9]\d)%")).first.wait_for(timeout=timeout_ms)
        rec = run_record(home, run_id)
        out["killed_at_step"] = [rec["step"], rec["total_steps"]]
        if rec["status"] != "running":
            raise SessionError(f"the evaluation ended ({rec['status']}) before it could be killed: make it longer")
        os.kill(int(rec["pid"]), signal.SIGKILL)
        t_kill = time.monotonic()
        await page.get_by_role("button", name=f"Resume {run_id}").wait_for(timeout=timeout_ms)
        out["page_shows_failed_s"] = time.monotonic() - t_kill
        rec = run_record(home, run_id)
        out["status_after_kill"], out["message_after_kill"] = rec["status"], rec["message"]
        cli(home, "runs", "--resume", run_id)
        t_resume = time.monotonic()
        try:  # does the open page follow a run resumed elsewhere, without a reload?
            await page.get_by_text(re.compile(rf"^{run_id}: running")).first.wait_for(timeout=20_000)
            out["page_followed_resume"] = True
        except Exception:
            out["page_followed_resume"] = False
        done = wait_status(home, run_id, {"done", "failed", "cancelled"}, 900)
        out["resumed_status"], out["resume_s"] = done["status"], time.monotonic() - t_resume
        if not out["page_followed_resume"]:
            await page.reload(wait_until="domcontentloaded")
        await page.get_by_text(f"Evaluation {run_id}", exact=True).first.wait_for(timeout=timeout_ms)
        out["page_shows_result"] = True
        await no_exception(page, "the Evaluate page")
        out["resumed_metrics"], out["uninterrupted_metrics"] = part_metrics(done), part_metrics(ref)
        out["equal"] = done["status"] == "done" and out["resumed_metrics"] == out["uninterrupted_metrics"]
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        out["equal"] = False
    await ctx.close()
    return out


async def bench(args) -> dict:
    from playwright.async_api import async_playwright

    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="advlens-load-"))
    shots = out_path.parent / "load_test_shots"
    shots.mkdir(exist_ok=True)
    home = str(work / "home")
    Path(home).mkdir()
    timeout_ms = args.timeout * 1000
    report: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python", "bench/load_test.py", *sys.argv[1:]]),
        "machine": machine(),
        "sessions": args.sessions,
        "light": LIGHT_QUERY,
        "heavy": HEAVY_QUERY,
        "loadavg_start": os.getloadavg(),
    }
    server = Server(home, work / "server1.log")
    second = None
    report["server_start_s"] = server.start_s
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            print(f"server {server.url}, home {home}", flush=True)
            ref = await light_session(browser, server.url, -1, timeout_ms, shots)
            if not ref["ok"]:
                raise SystemExit(f"the single light session failed: {ref.get('error')}")
            reference = ref["shown"]
            report["reference"] = {"light": ref}
            print(f"reference light: attack {ref['attack_s']:.2f} s, CAM {ref['cam_s']:.2f} s: {reference}", flush=True)
            if not args.no_heavy and not args.extras_only:
                heavy_ref = await heavy_session(browser, server.url, timeout_ms * 3, None)
                report["reference"]["heavy"] = heavy_ref
                print(f"reference heavy: {heavy_ref.get('attack_s', 0):.1f} s: {heavy_ref.get('shown')}", flush=True)
            runs = report["runs"] = {}
            for heavy in () if args.extras_only else (False, True) if not args.no_heavy else (False,):
                name = "with_heavy" if heavy else "without_heavy"
                res = await load_run(browser, server.url, args.sessions, heavy, timeout_ms, shots)
                res["summary"] = judge(res["lights"], reference)
                if heavy:
                    h = res["heavy"]
                    href = report["reference"]["heavy"]
                    res["summary"]["heavy_ok"] = h["ok"]
                    res["summary"]["heavy_s"] = h.get("attack_s")
                    res["summary"]["heavy_right"] = h["ok"] and href["ok"] and h["shown"] == href["shown"]
                runs[name] = res
                if res["summary"]["failures"]:
                    server.dump_stacks()  # where the server's threads were, in its log
                print(f"{name}: {json.dumps(res['summary'])}", flush=True)
            if not args.skip_extras:
                second = Server(home, work / "server2.log")
                report["two_servers"] = await two_servers(browser, server, second, reference, timeout_ms)
                print(f"two servers: {json.dumps(_short(report['two_servers']))}", flush=True)
                second.stop()
                report["kill_resume"] = await kill_and_resume(browser, server, timeout_ms)
                print(f"kill and resume: {json.dumps(report['kill_resume'])}", flush=True)
            await browser.close()
    finally:
        server.stop()
        if second is not None:
            second.stop()
        report["server_log_errors"] = server.errors() + (second.errors() if second is not None else [])
        report["loadavg_end"] = os.getloadavg()
        out_path.write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {out_path} (server logs in {work})", flush=True)
    return report


def _short(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "sessions"}


def machine() -> str:
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = "unknown CPU"
    return f"{cpu}, {os.cpu_count()} cores"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20, help="light sessions at once (default 20)")
    ap.add_argument("--quick", action="store_true", help="3 light sessions, for trying it")
    ap.add_argument("--out", default="bench/out/load_test.json")
    ap.add_argument("--timeout", type=float, default=600, help="seconds a light session may wait for each step")
    ap.add_argument("--no-heavy", action="store_true", help="skip the heavy session (and the run with it)")
    ap.add_argument("--skip-extras", action="store_true", help="skip the two-server and kill-and-resume checks")
    ap.add_argument("--extras-only", action="store_true", help="only the two-server and kill-and-resume checks")
    args = ap.parse_args(argv)
    if args.quick:
        args.sessions = 3
    if CHROMIUM is None:
        raise SystemExit("Debian's chromium is needed (apt-get install chromium), or set ADVLENS_CHROMIUM")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    main()
