"""Shared pieces of the browser suites: Debian's Chromium and the app on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
START_TIMEOUT = 180  # seconds: a cold start (torch, the first model) on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, log: Path) -> subprocess.Popen:
    """The README's run command on a free port; returns once /_stcore/health answers.
    The server's output goes to `log` (a pipe nobody reads would fill up and stall it)."""
    streamlit = ROOT / ".venv" / "bin" / "streamlit"
    launcher = [str(streamlit)] if streamlit.exists() else [sys.executable, "-m", "streamlit"]
    # The file watcher is off: an edit to engine/ during the run (other work in this tree)
    # would otherwise reload modules under the cached model and break result caching.
    cmd = [*launcher, "run", "app.py", "--server.port", str(port), "--server.headless", "true",
           "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    stop_app(proc)
    raise RuntimeError("the app did not start in time")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def require_browser():
    """Skip the calling module unless Debian's Chromium and the playwright package are
    here; returns playwright.sync_api."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing, so the browser checks cannot run: install "
                    "Debian's chromium package (apt-get install -y chromium)",
                    allow_module_level=True)
    return pytest.importorskip("playwright.sync_api",
                               reason="the playwright Python package is not installed")


def new_page(browser, url: str, width: int, height: int):
    """A page of its own browser context on `url`; alert()/confirm() dialogs are dismissed
    and their messages kept in `page.dialogs` (a script injected through a token would show
    up there)."""
    ctx = browser.new_context(viewport={"width": width, "height": height})
    page = ctx.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    return page


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app, started with the README's command on a free port, for one test module."""
    port = free_port()
    proc = start_app(port, tmp_path_factory.mktemp("app") / "streamlit.log")
    yield f"http://127.0.0.1:{port}/"
    stop_app(proc)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    with require_browser().sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
