"""The dashboard in a real browser: Debian's chromium through Playwright, against the live
server, a real Celery worker and a real registry.

One flow, as a person would go through it: log in, pull an image watching its layers
progress (through a reload and a browser restart), open it, add a tag, remove one tag
(untagged only), remove the last (the image and its layers deleted), and the images list
without it; then the page in Chinese. Each step leaves a screenshot in
test-artifacts/screenshots/.

The image is pulled through a throttled proxy (tests.support.worker.ThrottledProxy): over
loopback its 48 MB would arrive before the page polled twice. No Django ORM call happens
while Playwright runs: its sync API keeps an event loop in this thread, where Django refuses
database access.
"""

from __future__ import annotations

import re
import time

import pytest

from access.roles import set_role
from tests.support import images as im
from tests.support.browser import PASSWORD, SCREENSHOTS, USERNAME, chromium_browser
from tests.support.worker import ThrottledProxy

pytestmark = [pytest.mark.browser]

LARGE_LAYER = 48_000_000
# bytes per second per connection: the large layer takes about 12 s to arrive
RATE = 4_000_000

# One JavaScript call reads the whole live fragment at once: htmx replaces it every 500 ms,
# so separate queries could read halves of two versions.
SNAPSHOT_JS = """() => {
  const s = document.querySelector('#pull-progress');
  if (!s) return null;
  const rows = [...s.querySelectorAll('table.layers tbody tr')].map(
    r => [r.cells[0].textContent.trim(), r.cells[1].textContent.trim(),
          r.cells[3].textContent.trim()]);
  const bar = s.querySelector('.bar.big > span');
  const status = s.querySelector('.overall-head .status');
  return {rows: rows, bar: bar ? parseFloat(bar.style.width) : null,
          status: status ? status.textContent.trim() : '', text: s.innerText};
}"""


@pytest.fixture
def user(transactional_db, django_user_model):
    user = django_user_model.objects.create_user(USERNAME, password=PASSWORD)
    set_role(user, "admin")  # the tour pulls, runs and removes
    return user


@pytest.fixture
def chromium():
    with chromium_browser() as browser:
        yield browser


@pytest.fixture
def big_image(registry, tmp_path):
    """busybox, a small layer and a 48 MB one, pushed as browser/big:latest."""
    small = im.Layer([im.dir_("app"), im.file("app/hello.txt", b"hello from dockweb\n")])
    large = im.large_layer(LARGE_LAYER, tmp_path / "large.blob", seed=7)
    image = im.Image([im.busybox_layer(), small, large], config={"Cmd": ["sh"]})
    im.push_image(registry.host, "browser/big", "latest", image)
    return image


@pytest.fixture
def slow_registry(registry):
    with ThrottledProxy(registry.host, RATE) as proxy:
        yield proxy


class Shots:
    """Numbered full-page screenshots, one per step."""

    def __init__(self) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def __call__(self, page, name: str) -> None:
        self.n += 1
        page.screenshot(path=str(SCREENSHOTS / f"{self.n:02d}-{name}.png"), full_page=True)


def snapshot(page) -> dict:
    for _ in range(5):
        try:
            snap = page.evaluate(SNAPSHOT_JS)
        except Exception:  # a navigation in between: read again
            time.sleep(0.1)
            continue
        if snap is not None:
            return snap
        time.sleep(0.1)
    raise AssertionError(f"no #pull-progress on {page.url}")


def wait_for(page, predicate, what: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    snap = snapshot(page)
    while not predicate(snap):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}; last seen: {snap}")
        time.sleep(0.1)
        snap = snapshot(page)
    return snap


def advanced(before: dict, after: dict) -> bool:
    """A layer's state or bytes changed, and the overall bar moved forward."""
    old = {row[0]: row for row in before["rows"]}
    changed = any(row[0] in old and row != old[row[0]] for row in after["rows"])
    return changed and (after["bar"] or 0) > (before["bar"] or 0)


def finish_operation(page) -> str:
    """Wait on an operation page until the worker is done; return its console text."""
    page.wait_for_selector("#operation-status .outcome, #operation-status .alert.error")
    error = page.locator("#operation-status .alert.error")
    assert error.count() == 0, error.inner_text()
    return page.inner_text("#operation-status pre.console")


def test_it_pulls_tags_untags_and_removes_an_image_in_a_browser(
    live_server, live_worker, user, big_image, slow_registry, chromium
):
    shot = Shots()
    base = live_server.url
    typed = f"{slow_registry.host}/browser/big"
    normalized = f"{typed}:latest"
    second_tag = "browser-test/big:v2"
    hexes = [la.digest.split(":", 1)[1][:12] for la in big_image.layers]

    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    refused = []  # what the Content-Security-Policy refused, as Chromium logs it
    page.on(
        "console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None
    )

    # log in
    page.goto(base + "/")
    assert "/login/" in page.url
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    shot(page, "login")
    page.click("form button[type=submit]")
    page.wait_for_selector("aside.sidebar")
    assert page.inner_text("main h1") == "Images"
    shot(page, "images-empty")

    # the Pull page shows what a reference means while it is typed
    page.click("nav a[href='/pull/']")
    page.fill("#reference", typed)
    page.wait_for_selector(f"#normalized code:text-is('{normalized}')")
    assert "Will pull" in page.inner_text("#normalized")
    shot(page, "pull-normalized")
    page.click("form.pull-form button[type=submit]")
    page.wait_for_url(re.compile(r"/pulls/\d+/$"))
    pull_url = page.url

    # per-layer rows with Docker's 12-character IDs, progressing
    first = wait_for(page, lambda s: len(s["rows"]) == 3, "three layer rows")
    ids = [row[0] for row in first["rows"]]
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in ids), ids
    assert sorted(ids) == sorted(hexes)
    shot(page, "pull-started")
    later = wait_for(page, lambda s: advanced(first, s), "the progress to advance", 30)
    assert later["status"] == "Running", f"the pull ended before it could be watched: {later}"
    shot(page, "pull-advancing")

    # a reload shows the same progress, not a fresh start
    page.reload()
    reloaded = snapshot(page)
    assert [row[0] for row in reloaded["rows"]] == [row[0] for row in later["rows"]]
    assert reloaded["status"] == "Running", reloaded
    assert reloaded["bar"] >= later["bar"], (later, reloaded)
    shot(page, "pull-reloaded")

    # so does a browser started afresh with the same session
    restarted = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    restarted.add_cookies(context.cookies())
    page2 = restarted.new_page()
    page2.goto(pull_url)
    again = snapshot(page2)
    assert [row[0] for row in again["rows"]] == [row[0] for row in later["rows"]]
    assert again["bar"] >= later["bar"], (later, again)
    assert again["status"] in ("Running", "Done"), again
    shot(page2, "pull-after-browser-restart")
    restarted.close()

    # the last progress write (with the status line) and the row's Done are two writes,
    # each pushed to the page: it may show the first for a moment
    done = wait_for(
        page,
        lambda s: "Downloaded newer image for" in s["text"] and s["status"] == "Done",
        "the pull to finish",
        120,
    )
    assert done["status"] == "Done"
    assert done["bar"] == 100
    assert f"Downloaded newer image for {normalized}" in done["text"]
    assert all(row[1] == "Pull complete" for row in done["rows"]), done["rows"]
    shot(page, "pull-done")

    # open the image from the finished pull; add a second tag with the page's form
    page.click("#pull-progress a:has-text('Open image')")
    page.wait_for_selector("table.refs")
    assert page.inner_text("main h1") == normalized
    assert big_image.image_id[7:19] in page.inner_text(".page-head .meta")
    shot(page, "image")
    page.fill("form.tag-form input[name=target]", second_tag)
    page.click("form.tag-form button[type=submit]")
    # done in place: the result shows above the image's page, which stays
    assert finish_operation(page).strip() == f"Tagged: {second_tag}"
    assert "/images/" in page.url
    shot(page, "tagged")
    page.click("#operation-status a:has-text('Open image')")
    page.wait_for_selector("table.refs")
    assert sorted(page.locator("table.refs span.tag").all_inner_texts()) == sorted(
        [normalized, second_tag]
    )
    shot(page, "image-two-tags")

    page.goto(base + "/images/")
    listed = page.inner_text("#image-list")
    assert second_tag.rsplit(":", 1)[0] in listed and typed in listed
    shot(page, "images-two-tags")
    page.go_back()

    # removing one of two tags only untags, once confirmed in the dialog naming the tag
    page.click(f"table.refs tr:has(span.tag:text-is('{second_tag}')) button")
    page.wait_for_selector("#confirm-dialog[open]")
    assert page.inner_text("#confirm-dialog-target") == second_tag
    page.click("#confirm-dialog-ok")
    console = finish_operation(page)
    assert console.splitlines() == [f"Untagged: {second_tag}"]
    outcome = page.inner_text("#operation-status .outcome")
    # the other tag, and the digest reference the pull recorded (as `docker pull` does)
    assert outcome == "Untagged only: 1 other tag keeps this image (and 1 digest reference)", (
        outcome
    )
    shot(page, "untagged-only")

    # removing the last tag deletes the image and its layers
    page.click("#operation-status a:has-text('Open image')")
    page.wait_for_selector("table.refs")
    assert page.locator("table.refs span.tag").all_inner_texts() == [normalized]
    page.click(f"table.refs tr:has(span.tag:text-is('{normalized}')) button")
    page.wait_for_selector("#confirm-dialog[open]")
    assert page.inner_text("#confirm-dialog-target") == normalized
    page.click("#confirm-dialog-ok")
    lines = finish_operation(page).splitlines()
    assert f"Untagged: {normalized}" in lines
    deleted = [line.removeprefix("Deleted: ") for line in lines if line.startswith("Deleted: ")]
    assert deleted == [big_image.image_id, *reversed(big_image.chain_ids)], lines
    outcome = page.inner_text("#operation-status .outcome")
    assert re.fullmatch(r"Deleted: the image and 3 layers, [\d.]+[kMG]?B freed", outcome), outcome
    freed = float(re.search(r"([\d.]+)MB freed", outcome).group(1))
    assert freed >= LARGE_LAYER / 1e6, outcome
    shot(page, "deleted")

    page.click("#operation-status a:has-text('Back to images')")
    page.wait_for_selector("#image-list")
    listed = page.inner_text("#image-list")
    assert typed not in listed and big_image.image_id[7:19] not in listed
    assert "No images yet." in listed
    shot(page, "images-after-removal")

    # the language menu switches the page to Chinese
    with page.expect_navigation():
        page.select_option("select[name=language]", "zh-hans")
    assert page.get_attribute("html", "lang") == "zh-hans"
    assert page.inner_text("main h1") == "镜像"
    assert "还没有镜像。" in page.inner_text("#image-list")
    shot(page, "images-chinese")
    assert refused == []
    context.close()
