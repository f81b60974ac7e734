"""The app in a real browser: Playwright drives Debian's chromium against a local server.

Skipped when chromium or playwright is missing (install: apt-get install chromium; pip install
playwright). `playwright install` is never needed: we launch the system chromium.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

CHROMIUM = os.environ.get("ADVLENS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]

CHROMIUM_ARGS = [
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "ADVLENS_HOME": str(tmp_path_factory.mktemp("home")), "ADVLENS_DEVICE": "cpu"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "streamlit_app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield pg
        browser.close()


def test_home_page_shows_predictions(server, page, tmp_path):
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_text("Sample gallery").wait_for(timeout=90_000)
    # The gallery's bar charts name the predicted classes.
    page.get_by_text("photo: chelsea").first.wait_for(timeout=90_000)
    # 4 photos + 10 digits: wait until at least 8 prediction charts have been drawn.
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 8", timeout=120_000)
    # The ImageNet photos' charts come from EfficientNet-Lite0, which may finish after the digits' charts.
    page.wait_for_function(
        "['Egyptian cat', 'espresso'].every(t => document.body.innerText.includes(t))", timeout=180_000
    )
    body = page.locator("body").inner_text()
    assert "Device:" in body and "digits_small_cnn" in body
    assert "Egyptian cat" in body and "espresso" in body
    assert page.get_by_text("Traceback").count() == 0
    page.screenshot(path=str(tmp_path / "home.png"), full_page=True)


def test_navigation_reaches_every_page(server, page):
    for path, marker in (
        ("attack", "Attack Lab"),
        ("attention", "Attention"),
        ("features", "Features"),
        ("training", "Training"),
        ("compare", "Compare models"),
        ("evaluate", "Evaluate"),
        ("lessons", "Lessons"),
    ):
        page.goto(f"{server}/{path}", wait_until="domcontentloaded")
        page.get_by_role("heading", name=marker).first.wait_for(timeout=90_000)
        page.wait_for_timeout(1500)
        assert page.locator("[data-testid='stException']").count() == 0, path
