"""What the browser tests share: Debian's chromium through Playwright, the signed-in
person's name and password, signing in, and the ``dockweb`` command on a live worker's
database and store.

No Django ORM call may happen in the thread where Playwright runs (its sync API keeps an
event loop there): launch the browser after the test's rows are made.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.worker import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts" / "screenshots"
USERNAME, PASSWORD = "alice", "correct horse battery staple"


@contextlib.contextmanager
def chromium_browser() -> Iterator:
    """Headless chromium, closed (with Playwright) on the way out."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()
        pw.stop()


def log_in(page, base: str, username: str = USERNAME, password: str = PASSWORD) -> None:
    """Sign in on the login page of the server at ``base``; back once the navigation shows."""
    page.goto(base + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form button[type=submit]")
    page.wait_for_selector("aside.sidebar")


def live_cli(live_worker) -> Iterator:
    """``dockweb <args>`` on the worker's database and store (it mirrors into the test's
    rows), as a function giving its output, with ``extra`` environment on a call and the
    environment as its ``env``; every container is removed at the end. ``yield from`` it in
    a fixture."""
    env = live_worker.environment()

    def run(*args: str, extra: dict | None = None) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "dockweb.cli", *args],
            cwd=REPO_ROOT,
            env={**env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"dockweb {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    run.env = env
    yield run
    ids = run("ps", "-aq", "--no-trunc").split()
    if ids:
        run("rm", "-f", *ids)
