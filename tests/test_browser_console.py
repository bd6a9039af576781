"""The container console and the run form + live logs in a real browser (Debian's chromium
through Playwright), against the live server, a real Celery worker and real containers.

The console: a busybox container runs detached; its console page offers the shells the
image has, opens one, and what is typed reaches the shell through the worker (pty output
back over Redis and Server-Sent Events): ``echo hello-$((6*7))`` prints ``hello-42``,
``stty size`` follows the browser window, pasted text runs, selected text is copied, and
closing the page ends the shell but not the container. Screenshots go to
test-artifacts/screenshots/.

No Django ORM call happens in the test's thread while Playwright runs (its sync API keeps
an event loop there): the database is read from a helper thread.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import time

import pytest

from tests.support import images as im
from tests.support.browser import (
    PASSWORD,
    SCREENSHOTS,
    USERNAME,
    chromium_browser,
    live_cli,
    log_in,
)

pytestmark = [pytest.mark.browser]

# The terminal's text, one line a row, from xterm.js's buffer (the screen is a canvas/DOM
# mix: its buffer is the truth).
TERMINAL_TEXT_JS = """() => {
  const t = window.dockwebTerminal;
  if (!t) return null;
  const b = t.buffer.active, lines = [];
  for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
  return {text: lines.join('\\n'), cols: t.cols, rows: t.rows};
}"""


@pytest.fixture
def user(transactional_db, django_user_model):
    user = django_user_model.objects.create_user(USERNAME, password=PASSWORD)
    make_operator(user)
    return user


def make_operator(user) -> None:
    """Consoles are for operators where roles exist (access/roles.py)."""
    try:
        from access.roles import OPERATOR, set_role
    except ImportError:
        return
    set_role(user, OPERATOR)


@pytest.fixture
def busybox(registry):
    im.push_image(registry.host, "console/busybox", "1", im.busybox_base())
    return f"{registry.host}/console/busybox:1"


@pytest.fixture
def dockweb(live_worker):
    """The CLI on the worker's database and store (it mirrors into the test's rows)."""
    yield from live_cli(live_worker)


@pytest.fixture
def chromium(user, dockweb):
    # after the rows and containers are made: Playwright's loop forbids the ORM here
    with chromium_browser() as browser:
        yield browser


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"console-{name}.png"), full_page=True)


def terminal(page) -> dict:
    return page.evaluate(TERMINAL_TEXT_JS)


def wait_terminal(page, pattern: str, timeout: float = 20.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while True:
        snap = terminal(page)
        m = re.search(pattern, snap["text"]) if snap else None
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} in the terminal within {timeout} s: {snap}")
        time.sleep(0.1)


def in_thread(fn):
    """Run ``fn`` (ORM calls) outside Playwright's event loop thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def session_row(sid: str) -> dict:
    from django.db import connection

    from containers.models import ConsoleSession

    def read():
        try:
            s = ConsoleSession.objects.get(session_id=sid)
            return {"status": s.status, "exit_code": s.exit_code, "error": s.error}
        finally:
            connection.close()

    return in_thread(read)


def test_it_opens_a_console_types_resizes_pastes_and_leaves_the_container_running(
    live_server, live_worker, busybox, dockweb, chromium
):
    dockweb("pull", "-q", busybox)
    cid = dockweb("run", "-d", "--name", "pet", busybox, "sh", "-c",
                  "while true; do sleep 1; done").strip()
    context = chromium.new_context(viewport={"width": 1100, "height": 800}, locale="en-US")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    refused = []  # what the Content-Security-Policy refused, as Chromium logs it
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    log_in(page, live_server.url)

    # the detail page links the console; it offers the image's shells only
    page.goto(f"{live_server.url}/containers/{cid}/")
    page.click(f"a[href='/containers/{cid}/console/']")
    page.wait_for_selector("select#shell")
    offered = page.locator("select#shell option").all_inner_texts()
    assert offered == ["/bin/sh", "/bin/ash"], offered
    shot(page, "choose-shell")
    page.select_option("select#shell", "/bin/sh")
    page.click("form.console-open button[type=submit]")
    page.wait_for_url(re.compile(r"/containers/consoles/[\w-]+/$"))
    sid = page.url.rstrip("/").rsplit("/", 1)[1]
    wait_terminal(page, r"/ # ")
    page.wait_for_selector("#console-status:text-is('Connected')")

    # typing reaches the shell, its output the terminal
    page.click("#terminal")
    page.keyboard.type("echo hello-$((6*7))")
    page.keyboard.press("Enter")
    wait_terminal(page, r"\nhello-42\n")
    shot(page, "hello")

    # the pty has the terminal's size, and follows the window
    page.keyboard.type("busybox stty size")
    page.keyboard.press("Enter")
    first = terminal(page)
    wait_terminal(page, rf"\n{first['rows']} {first['cols']}\n")
    page.set_viewport_size({"width": 800, "height": 560})
    deadline = time.monotonic() + 10
    while terminal(page)["cols"] == first["cols"] and time.monotonic() < deadline:
        time.sleep(0.1)
    second = terminal(page)
    assert (second["rows"], second["cols"]) != (first["rows"], first["cols"])
    time.sleep(0.3)  # the resize POST is on its way
    page.keyboard.type("clear; busybox stty size")
    page.keyboard.press("Enter")
    wait_terminal(page, rf"(?m)^{second['rows']} {second['cols']}$")
    shot(page, "resized")

    # paste (Ctrl+Shift+V reads the clipboard) sends the text as input
    page.evaluate("t => navigator.clipboard.writeText(t)", "echo pasted-$((2+3))")
    page.keyboard.press("Control+Shift+V")
    wait_terminal(page, r"# echo pasted-\$\(\(2\+3\)\)")  # the clipboard is read asynchronously
    page.keyboard.press("Enter")
    wait_terminal(page, r"\npasted-5\n")
    # copy: a selection goes to the clipboard
    page.evaluate("() => { window.navigator.clipboard.writeText(''); }")
    row = next(i for i, line in enumerate(terminal(page)["text"].split("\n"))
               if line == "pasted-5")
    page.evaluate(f"() => window.dockwebTerminal.selectLines({row}, {row})")
    page.keyboard.press("Control+Shift+C")
    deadline = time.monotonic() + 5
    copied = ""
    while time.monotonic() < deadline and "pasted-5" not in copied:
        copied = page.evaluate("() => navigator.clipboard.readText()")
        time.sleep(0.1)
    assert copied.strip() == "pasted-5", copied
    shot(page, "pasted")

    # the shell's process is in the container while the console is open
    page.keyboard.type("echo $$ > /tmp/console.pid")
    page.keyboard.press("Enter")
    time.sleep(0.5)
    assert session_row(sid)["status"] == "running"

    # xterm.js, the stream and the clipboard all ran under the policy
    assert refused == []

    # closing the page ends the shell, not the container
    page.close()
    deadline = time.monotonic() + 45
    while session_row(sid)["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_row(sid)["status"] == "ended", session_row(sid)
    listed = dockweb("ps", "--no-trunc", "--format", "{{.ID}} {{.Status}}")
    assert re.search(rf"^{cid} Up ", listed, re.M), listed
    shell_pid = dockweb("exec", cid, "cat", "/tmp/console.pid").strip()
    procs = dockweb("exec", cid, "ps", "-o", "pid")
    assert shell_pid not in procs.split(), procs

    # an ended session says so when opened again
    page = context.new_page()
    page.goto(f"{live_server.url}/containers/consoles/{sid}/")
    assert "This console session has ended." in page.inner_text("main")
    shot(page, "ended")
    context.close()


def test_it_runs_a_container_from_the_form_and_follows_its_logs(
    live_server, live_worker, busybox, dockweb, chromium
):
    dockweb("pull", "-q", busybox)
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    log_in(page, live_server.url)

    page.goto(live_server.url + "/containers/run/")
    page.fill("#image", busybox)
    page.fill("#command", "sh -c 'i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo line-$i; "
                          "sleep 0.5; done'")
    page.fill("#name", "ticker")
    shot(page, "run-form")
    page.click("form.run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/operations/\d+/$"))
    page.click("#operation-status a:has-text('Open container')")
    page.wait_for_selector("#log-output")
    assert page.inner_text("main h1") == "ticker"

    def last_line() -> int:
        numbers = re.findall(r"line-(\d+)", page.inner_text("#log-output"))
        return int(numbers[-1]) if numbers else 0

    deadline = time.monotonic() + 20
    while last_line() < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    seen = last_line()
    assert seen >= 2, page.inner_text("#log-output")
    shot(page, "logs-early")
    # the page follows: later lines arrive without a reload
    deadline = time.monotonic() + 20
    while last_line() < seen + 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    later = last_line()
    assert later >= seen + 4, (seen, page.inner_text("#log-output"))
    lines = re.findall(r"line-\d+", page.inner_text("#log-output"))
    assert lines == [f"line-{i}" for i in range(1, later + 1)], lines
    shot(page, "logs-followed")
    info = json.loads(dockweb("inspect", "ticker"))[0]
    assert info["State"]["Running"] is True
    context.close()
