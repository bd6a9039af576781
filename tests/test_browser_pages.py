"""The pages' behaviour and layout in a real browser (Debian's chromium through Playwright),
against the live server, a real Celery worker, a real registry and real containers.

- Each confirmation: removing a tag, killing and removing a container ask first in the one
  dialog (role=alertdialog, named target, focus on Cancel, Escape), and the action then
  shows its result in place; without JavaScript the same buttons lead to a confirmation
  page naming the target, then to the result page.
- A phone (390x844): no page scrolls sideways, the navigation sits behind a Menu button,
  folded from the first paint (before any script of ours ran) and unfolded without
  JavaScript. Each page leaves a screenshot in test-artifacts/phone/.
- In Chinese, a finished pull's page and the containers list show no English state.

The scene (an image pulled by the worker, a second tag, a running and an exited container)
is made before Playwright starts: its sync API keeps an event loop in this thread, where
Django refuses database access.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from access.roles import set_role
from tests.support import images as im
from tests.support.browser import PASSWORD, USERNAME, chromium_browser

pytestmark = [pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# Docker's English words a Chinese page must not show (states, pull messages, STATUS)
ENGLISH_STATES = [
    "Pulling fs layer",
    "Waiting",
    "Downloading",
    "Verifying Checksum",
    "Download complete",
    "Extracting",
    "Pull complete",
    "Already exists",
    "Downloaded newer image",
    "Image is up to date",
    "Digest:",
    "Pulling from",
    "Status:",
    "Up ",
    "Exited (",
    "Created",
    "Running",
    "Done",
]


def _wait_rows(query, timeout: float = 60.0):
    """The first row ``query()`` gives within ``timeout`` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = query()
        if row is not None:
            return row
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout:.0f} s for {query}")


@pytest.fixture
def scene(registry, live_worker, django_user_model):
    """busybox pulled by the worker as pages/box:1 (and tagged pages/box:extra), a running
    container "sleeper" and an exited one "finished", all made through the worker."""
    from containers import services as container_services
    from containers.models import Container, ContainerOperation
    from images import services as image_services
    from images.models import Image, Pull

    user = django_user_model.objects.create_user(USERNAME, password=PASSWORD)
    set_role(user, "admin")
    im.push_image(registry.host, "pages/box", "1", im.busybox_base())
    ref = f"{registry.host}/pages/box:1"
    pull = image_services.start_pull(ref, user=user)
    pull = _wait_rows(
        lambda: Pull.objects.filter(pk=pull.pk, status__in=["done", "failed"]).first()
    )
    assert pull.status == "done", pull.error
    image_services.tag_image(ref, "pages/box:extra")
    image = Image.objects.get(image_id=pull.image_id)

    def run(name: str, cmd: list[str], status: str) -> Container:
        op = container_services.start_operation(
            "run", {"image": ref, "cmd": cmd, "name": name}, user=user
        )
        done = _wait_rows(
            lambda: ContainerOperation.objects.filter(
                pk=op.pk, status__in=["done", "failed"]
            ).first()
        )
        assert done.status == "done", done.error
        return _wait_rows(lambda: Container.objects.filter(name=name, status=status).first())

    sleeper = run("sleeper", ["sleep", "300"], "running")
    finished = run("finished", ["true"], "exited")
    container_services.create_volume("scratch")
    container_services.create_volume("spare")
    yield {
        "ref": ref,
        "familiar": f"{registry.host}/pages/box:1",
        "image": image,
        "image_url": f"/images/{image.image_id[7:19]}/",
        "pull_url": f"/pulls/{pull.pk}/",
        "sleeper": sleeper,
        "finished": finished,
    }
    mgr = container_services.get_manager()
    for c in mgr.list(all=True):
        mgr.remove(c.id, force=True, volumes=True)


browser = chromium_browser


def signed_in(chromium, base: str, **options):
    """A new page of a new context, signed in as alice."""
    context = chromium.new_context(**{"viewport": DESKTOP, "locale": "en-US", **options})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(base + "/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_selector("main h1")
    return page


def shot(page, folder: str, name: str) -> None:
    path = ARTIFACTS / folder
    path.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path / f"{name}.png"), full_page=True)


def active_id(page) -> str:
    return page.evaluate("() => document.activeElement && document.activeElement.id")


def active_text(page) -> str:
    return page.evaluate("() => document.activeElement ? document.activeElement.textContent : ''")


def open_dialog(page, button) -> dict:
    """Click ``button``; the dialog it opens, as read from the page."""
    button.click()
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    return page.evaluate(
        """() => {
          const d = document.querySelector('#confirm-dialog');
          const label = document.getElementById(d.getAttribute('aria-labelledby'));
          return {open: d.open, role: d.getAttribute('role'), modal: d.getAttribute('aria-modal'),
                  title: label ? label.textContent.trim() : '',
                  target: d.querySelector('#confirm-dialog-target').textContent.trim(),
                  ok: d.querySelector('#confirm-dialog-ok').textContent.trim()};
        }"""
    )


def wait_text(page, selector: str, pattern: str, timeout: float = 30.0) -> str:
    """The text of ``selector`` once it matches ``pattern`` (a regular expression)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        loc = page.locator(selector)
        text = loc.first.inner_text() if loc.count() else ""
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"{selector} never matched {pattern!r}; last: {text!r}")


def test_it_asks_in_a_dialog_before_untagging_and_shows_the_result_in_place(live_server, scene):
    with browser() as chromium:
        page = signed_in(chromium, live_server.url)
        url = live_server.url + scene["image_url"]
        page.goto(url)
        row = page.locator("table.refs tr:has(span.tag:text-is('pages/box:extra'))")
        button = row.locator("button")

        seen = open_dialog(page, button)
        assert seen == {
            "open": True,
            "role": "alertdialog",
            "modal": "true",
            "title": "Remove this tag?",
            "target": "pages/box:extra",
            "ok": "Remove tag",
        }, seen
        assert active_id(page) == "confirm-dialog-cancel"  # the safe choice has the focus
        shot(page, "dialogs", "untag-dialog")

        # Escape: nothing happens, the focus goes back to the button
        page.keyboard.press("Escape")
        page.locator("#confirm-dialog").wait_for(state="hidden")
        assert active_text(page).strip() == "Remove tag"
        page.wait_for_timeout(300)
        assert page.locator("#action-result").inner_text().strip() == ""
        assert row.count() == 1

        # Cancel: the same
        open_dialog(page, button)
        page.click("#confirm-dialog-cancel")
        page.locator("#confirm-dialog").wait_for(state="hidden")
        assert page.locator("#action-result").inner_text().strip() == ""

        # confirmed: the removal runs and its result shows on this page, which stays
        open_dialog(page, button)
        page.click("#confirm-dialog-ok")
        text = wait_text(page, "#action-result", r"Untagged only")
        assert page.url == url
        assert "Untagged: pages/box:extra" in text
        assert "Untagged only: 1 other tag keeps this image (and 1 digest reference)" in text
        assert not re.search(r"\b[0-9a-f]{64}\b", text), text  # names, not IDs
        # the references card refreshed itself without the tag
        page.wait_for_function(
            "() => ![...document.querySelectorAll('table.refs span.tag')]"
            ".some(t => t.textContent.trim() === 'pages/box:extra')"
        )
        shot(page, "dialogs", "untag-done-in-place")

        # removing the image by its ID: the dialog names it by its tag
        seen = open_dialog(page, page.locator(".page-head button:has-text('Remove image')"))
        assert (seen["title"], seen["target"], seen["ok"]) == (
            "Remove this image?",
            scene["familiar"],
            "Remove image",
        ), seen
        page.keyboard.press("Escape")
        page.locator("#confirm-dialog").wait_for(state="hidden")


def test_it_asks_before_pruning_and_removing_a_volume(live_server, scene):
    with browser() as chromium:
        page = signed_in(chromium, live_server.url)
        url = live_server.url + "/disk/prune/?images=dangling&containers=on"
        page.goto(url)
        assert page.locator("table.prune-preview td:text-is('finished')").count() == 1
        seen = open_dialog(page, page.locator("main form button.danger"))
        assert (seen["title"], seen["ok"]) == ("Remove exactly these?", "Remove exactly these")
        assert re.fullmatch(r"This frees [\d.]+[kMG]?B\.", seen["target"]), seen
        shot(page, "dialogs", "prune-dialog")
        page.click("#confirm-dialog-ok")
        text = wait_text(page, "#action-result", r"Total reclaimed space")
        assert page.url == url
        assert "Deleted Containers:" in text
        # the preview follows without a reload: nothing is left to prune
        wait_text(page, "main", r"Nothing to prune\.")
        assert page.locator("table.prune-preview td:text-is('finished')").count() == 0
        assert page.locator("main form button.danger").count() == 0
        shot(page, "dialogs", "prune-done-in-place")

        page.goto(live_server.url + "/volumes/")
        row = page.locator("#volume-list table:not(.operations) tr:has(td:text-is('scratch'))")
        seen = open_dialog(page, row.locator("button"))
        assert (seen["title"], seen["target"], seen["ok"]) == (
            "Remove this volume?",
            "scratch",
            "Remove",
        ), seen
        page.click("#confirm-dialog-ok")
        wait_text(page, "#action-result", r"Removed volume scratch\.")
        page.wait_for_function(
            # gone from the volumes (the recent operations below name it)
            "() => ![...document.querySelectorAll('#volume-list table:not(.operations) td')]"
            ".some(td => td.textContent.trim() === 'scratch')"
        )

        # the volume prune: its preview, in place, then the preview follows without a reload
        page.goto(live_server.url + "/volumes/prune/")
        assert page.inner_text("ul.prune-preview").split() == ["spare"]
        seen = open_dialog(page, page.locator("main form button.danger"))
        assert (seen["title"], seen["target"]) == ("Remove these volumes?", "spare"), seen
        page.click("#confirm-dialog-ok")
        text = wait_text(page, "#action-result", r"Total reclaimed space")
        assert "Deleted Volumes:\nspare" in text, text
        wait_text(page, "main", r"No unused volumes: nothing to prune\.")
        assert page.locator("ul.prune-preview").count() == 0


def test_it_asks_before_killing_and_removing_a_container_and_names_it(live_server, scene):
    with browser() as chromium:
        page = signed_in(chromium, live_server.url)
        url = live_server.url + "/containers/"
        page.goto(url)
        row = page.locator("tr.container-row:has(a:text-is('sleeper'))")

        seen = open_dialog(page, row.locator("button[value=kill]"))
        assert (seen["role"], seen["title"], seen["target"], seen["ok"]) == (
            "alertdialog",
            "Kill this container?",
            "sleeper",
            "Kill",
        ), seen
        shot(page, "dialogs", "kill-dialog")
        page.click("#confirm-dialog-ok")
        text = wait_text(page, "#action-result", r"Killed sleeper\.")
        assert page.url == url
        # the row turns Exited without a reload
        wait_text(page, "tr.container-row:has(a:text-is('sleeper'))", r"(?i)Exited \(137\)")

        seen = open_dialog(page, row.locator("button[value=remove]"))
        assert (seen["title"], seen["target"], seen["ok"]) == (
            "Remove this container?",
            "sleeper",
            "Remove",
        ), seen
        page.click("#confirm-dialog-ok")
        text = wait_text(page, "#action-result", r"Removed container sleeper\.")
        assert "Done." not in text
        assert page.locator("#action-result pre.console").inner_text().strip() == "sleeper"
        page.wait_for_function(
            "() => ![...document.querySelectorAll('tr.container-row a')]"
            ".some(a => a.textContent.trim() === 'sleeper')"
        )
        shot(page, "dialogs", "container-removed-in-place")


def test_it_asks_on_a_confirmation_page_without_javascript(live_server, scene):
    with browser() as chromium:
        page = signed_in(chromium, live_server.url, java_script_enabled=False)

        # untag: the button leads to a page that names the tag
        page.goto(live_server.url + scene["image_url"])
        page.click("table.refs tr:has(span.tag:text-is('pages/box:extra')) button")
        assert page.url.endswith("/images/remove/")
        assert page.inner_text("main h1") == "Remove this tag?"
        assert page.inner_text(".confirm-target") == "pages/box:extra"
        shot(page, "dialogs", "nojs-untag-page")
        # Cancel goes back to the image, which still has the tag
        page.click("main a.btn:has-text('Cancel')")
        assert page.url.startswith(live_server.url + scene["image_url"][:-1])
        assert page.locator("table.refs span.tag:text-is('pages/box:extra')").count() == 1
        page.click("table.refs tr:has(span.tag:text-is('pages/box:extra')) button")
        page.click("main form button.danger")
        assert re.search(r"/operations/\d+/$", page.url), page.url
        for _ in range(300):  # no polling without JavaScript: reload until the worker is done
            if page.locator("#operation-status .outcome").count():
                break
            time.sleep(0.1)
            page.reload()
        assert page.inner_text("#operation-status pre.console").strip() == (
            "Untagged: pages/box:extra"
        )
        assert "Remove pages/box:extra" in page.inner_text("main h1")

        # removing the exited container: a page naming it, then Docker's words
        page.goto(live_server.url + "/containers/")
        page.click("tr.container-row:has(a:text-is('finished')) button[value=remove]")
        assert page.inner_text("main h1") == "Remove this container?"
        assert page.inner_text(".confirm-target") == "finished"
        shot(page, "dialogs", "nojs-remove-container-page")
        page.click("main form button.danger")
        assert re.search(r"/containers/operations/\d+/$", page.url), page.url
        for _ in range(300):
            if page.locator("#operation-status .outcome").count():
                break
            time.sleep(0.1)
            page.reload()
        assert page.inner_text("#operation-status .outcome") == "Removed container finished."
        assert page.inner_text("#operation-status pre.console").strip() == "finished"
        assert page.inner_text("main h1") == "Remove finished"


OVERFLOW_JS = """() => {
  const doc = document.documentElement;
  const inside = 'pre, .card.flush, .terminal';  // boxes that scroll on their own
  const wide = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.right > doc.clientWidth + 1 && !e.closest(inside);
  }).slice(0, 5).map(e => e.tagName + '.' + e.className);
  return {scroll: doc.scrollWidth, width: doc.clientWidth, wide: wide};
}"""


def test_no_page_scrolls_sideways_on_a_phone(live_server, scene):
    image = scene["image_url"]
    cid = scene["finished"].container_id
    pages = [
        ("images", "/images/"),
        ("image", image),
        ("image-files", image + "files/"),
        ("image-layer", image + "layers/0/"),
        ("pull", "/pull/"),
        ("pull-detail", scene["pull_url"]),
        ("build", "/build/"),
        ("registries", "/registries/"),
        ("containers", "/containers/"),
        ("container", f"/containers/{cid}/"),
        ("run", "/containers/run/"),
        ("volumes", "/volumes/"),
        ("volume-prune", "/volumes/prune/"),
        ("networks", "/networks/"),
        ("network", "/networks/bridge/"),
        ("network-prune", "/networks/prune/"),
        ("disk", "/disk/"),
        ("prune-preview", "/disk/prune/?images=all&containers=on&volumes=on"),
        ("audit", "/audit/"),
    ]
    with browser() as chromium:
        # the sign-in page first
        anonymous = chromium.new_context(viewport=PHONE, locale="en-US")
        login = anonymous.new_page()
        login.goto(live_server.url + "/login/")
        seen = login.evaluate(OVERFLOW_JS)
        assert seen["scroll"] <= seen["width"], ("login", seen)
        shot(login, "phone", "00-login")
        anonymous.close()

        page = signed_in(chromium, live_server.url, viewport=PHONE, is_mobile=True)
        for n, (name, path) in enumerate(pages, 1):
            response = page.goto(live_server.url + path)
            assert response.status == 200, (name, response.status)
            page.wait_for_selector("main h1")
            seen = page.evaluate(OVERFLOW_JS)
            assert seen["scroll"] <= seen["width"], (name, seen)
            # the navigation waits behind the menu button; the page starts with its content
            assert page.locator("#menu-button").is_visible(), name
            assert not page.locator("nav.nav").is_visible(), name
            assert page.locator("main h1").bounding_box()["y"] < 200, name
            shot(page, "phone", f"{n:02d}-{name}")

        # the menu button opens and closes the navigation
        button = page.locator("#menu-button")
        assert button.get_attribute("aria-expanded") == "false"
        button.click()
        assert button.get_attribute("aria-expanded") == "true"
        assert page.locator("nav.nav a:has-text('Containers')").is_visible()
        shot(page, "phone", "99-menu-open")
        page.keyboard.press("Escape")
        assert button.get_attribute("aria-expanded") == "false"
        assert not page.locator("nav.nav").is_visible()

        # on the images list the key columns stay in view: repository, tag and size
        page.goto(live_server.url + "/images/")
        cells = page.locator("#image-list tbody tr").first.locator("td")
        for label in ("Repository", "Tag", "Size"):
            cell = cells.locator(f"xpath=self::*[@data-label='{label}']")
            # the list is a live part: the stream's opening fetches it again, and a box read
            # while it is being replaced is None; read the settled one
            deadline = time.monotonic() + 10
            while (box := cell.bounding_box()) is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], label

        # the layer rows of a pull keep their Bytes in view
        page.goto(live_server.url + scene["pull_url"])
        for box in page.locator("table.layers td[data-label='Bytes']").evaluate_all(
            "cells => cells.map(c => c.getBoundingClientRect().right)"
        ):
            assert box <= PHONE["width"]


@pytest.fixture
def alice(transactional_db, django_user_model):
    user = django_user_model.objects.create_user(USERNAME, password=PASSWORD)
    set_role(user, "admin")
    return user


def test_the_phone_menu_is_folded_from_the_first_paint_and_open_without_javascript(
    live_server, alice
):
    with browser() as chromium:
        # what the page shows before dockweb.js has run: here it never runs (refused), so
        # the page stays as its first paint shows it
        page = signed_in(chromium, live_server.url, viewport=PHONE, is_mobile=True)
        page.route("**/dockweb/dockweb*.js", lambda route: route.abort())
        page.goto(live_server.url + "/containers/")
        page.wait_for_selector("main h1")
        assert page.evaluate("() => typeof setUpMenu") == "undefined"  # no script of ours
        assert page.locator("#menu-button").is_visible()
        assert not page.locator("nav.nav").is_visible()
        assert page.locator("main h1").bounding_box()["y"] < 200
        shot(page, "phone", "menu-before-script")

        # without JavaScript the navigation is there, and no button that could not work
        page = signed_in(
            chromium, live_server.url, viewport=PHONE, is_mobile=True, java_script_enabled=False
        )
        page.goto(live_server.url + "/containers/")
        assert page.locator("nav.nav a:has-text('Containers')").is_visible()
        assert not page.locator("#menu-button").is_visible()
        shot(page, "phone", "menu-without-javascript")


def test_chinese_pages_show_no_english_state(live_server, scene):
    with browser() as chromium:
        page = signed_in(chromium, live_server.url, locale="zh-CN")
        assert page.get_attribute("html", "lang") == "zh-hans"

        page.goto(live_server.url + scene["pull_url"])
        text = page.inner_text("#pull-progress")
        states = page.locator("table.layers td.state").all_inner_texts()
        assert states and all(s.strip() == "拉取完成" for s in states), states
        assert "摘要：sha256:" in text and "已为" in text, text
        for english in ENGLISH_STATES:
            assert english not in text, (english, text)
        bars = page.locator("#pull-progress [role=progressbar]")
        assert bars.count() == 1 + len(states)
        assert bars.first.get_attribute("aria-valuenow") == "100"
        shot(page, "chinese", "pull-detail")

        page.goto(live_server.url + "/containers/")
        statuses = page.locator("#container-list td span.status").all_inner_texts()
        assert any(s.startswith("已运行") for s in statuses), statuses
        assert any(s.startswith("已退出 (0)") for s in statuses), statuses
        listed = page.inner_text("#container-list")
        for english in ENGLISH_STATES:
            assert english not in listed, (english, listed)
        shot(page, "chinese", "containers")

        page.goto(live_server.url + f"/containers/{scene['sleeper'].container_id}/")
        state = page.inner_text("#container-state .status")
        assert state.startswith("已运行"), state
