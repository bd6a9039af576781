# ruff: noqa: F811  (pytest fixtures imported from test_browser_pages)
"""Actions inside live parts, raced by the parts' own refreshes, in a real browser (Debian's
chromium through Playwright) against the live server, a real Celery worker, registry and
crun containers.

A live part (a container's state and buttons, an image's references) fetches itself again
on notices; its forms are inside it. Two races are made to happen every time, not by luck:

- the part's refresh comes while an action's request is on its way (the request is held
  by Playwright until the refresh has had its chance): the part stays until the answer is
  in, the answer shows in place and its notice of a change reaches the page, and the part
  then fetches itself with the new state and buttons;
- the action is sent from the part's new copy the moment it comes in, before htmx has
  processed it (a click, or a confirmation answered, right after a refresh): it is still
  sent by htmx and its result shows in place; the page does not leave for the result page.

A change heard while a part's own fetch is on its way (its answer held back) is not lost:
the part fetches itself once more after that answer.

On the image page, a tag being typed survives a refresh of the references (the tag form is
outside that part) and the form empties itself once sent.

The scene (tests.test_browser_pages.scene) is made before Playwright starts.
"""

from __future__ import annotations

import time

import pytest

from tests.test_browser_pages import browser, scene, signed_in, wait_text  # noqa: F401

pytestmark = [pytest.mark.browser]

# What the page hears: the notices of a change (dockweb:changed) that reach the body, with
# the element they came from, and whether the page is still the one the test opened.
WATCH_JS = """() => {
  window.stillHere = true;
  window.changed = [];
  document.body.addEventListener('dockweb:changed', (e) => window.changed.push(e.target.tagName));
  // what happened, for the failure messages
  window.seenEvents = [];
  const t0 = performance.now();
  const note = (what, el) => window.seenEvents.push(
    `${Math.round(performance.now() - t0)} ${what} ${el && el.tagName}#${el && el.id}` +
    ` ${el && (el.getAttribute('hx-post') || el.getAttribute('hx-get') || '')}`);
  for (const name of ['htmx:beforeRequest', 'htmx:beforeSend', 'htmx:afterRequest',
                      'htmx:beforeSwap', 'htmx:afterSwap', 'htmx:afterSettle', 'submit',
                      'htmx:trigger', 'dockweb:changed']) {
    window.addEventListener(name, (e) => note(
      name + (e.defaultPrevented ? ' (prevented)' : '') +
      (e.detail && e.detail.xhr ? ' ' + e.detail.xhr.status : ''),
      (e.detail && e.detail.elt) || e.target));
  }
  document.getElementById('confirm-dialog').addEventListener('close', (e) => note(
    'dialog close ' + e.target.returnValue, e.target));
}"""

# The part's refresh while an action is on its way: asked (and whether it was skipped),
# and, if it was not skipped, settled in the page.
REFRESH_JS = """(sel) => {
  const part = document.querySelector(sel);
  part.dataset.before = '1';
  window.refresh = null;
  const asked = (e) => {
    if (e.detail.elt.matches(sel)) {
      window.refresh = {skipped: e.defaultPrevented, settled: false};
      window.removeEventListener('htmx:beforeRequest', asked);
    }
  };
  // on window: after dockweb.js's own listeners on the document
  window.addEventListener('htmx:beforeRequest', asked);
  const settled = (e) => {
    if (e.target.matches && e.target.matches(sel) && window.refresh) {
      window.refresh.settled = true;
      document.removeEventListener('htmx:afterSettle', settled);
    }
  };
  document.addEventListener('htmx:afterSettle', settled);
  htmx.trigger(document.body, 'dockweb:changed');
}"""

# Send ``button`` (or answer the open dialog) from the part's new copy the moment it is in
# the page: in htmx's afterSwap, before the part settles and htmx processes it.
ON_NEW_COPY_JS = """([sel, button]) => {
  const onSwap = (e) => {
    if (!(e.target.matches && e.target.matches(sel))) return;
    document.removeEventListener('htmx:afterSwap', onSwap);
    window.sentFromNewCopy = true;
    if (button) {
      const b = document.querySelector(button);
      b.form.requestSubmit(b);
    } else {
      document.getElementById('confirm-dialog-ok').click();
    }
  };
  document.addEventListener('htmx:afterSwap', onSwap);
  htmx.trigger(document.body, 'dockweb:changed');
}"""


def held_post(page, pattern: str) -> list:
    """Hold the requests to ``pattern``: they wait in the returned list until continued."""
    held: list = []
    page.route(pattern, lambda route: held.append(route))
    return held


PARTS_JS = """() => [...document.querySelectorAll('[hx-trigger*="live:resync"]')].map((el) => {
  const d = el['htmx-internal-data'] || {};
  return `${el.id}: xhr=${!!d.xhr} queued=${(d.queuedRequests || []).length}` +
    ` init=${!!d.initHash} listeners=${(d.listenerInfos || []).length}` +
    ` classes=${el.className}`;
})"""


def events(page) -> str:
    seen = page.evaluate("window.seenEvents || []")[-60:]
    return "\n".join(seen + page.evaluate(PARTS_JS))


def expect_text(page, selector: str, pattern: str, timeout: float = 30.0) -> str:
    """wait_text, with what the page saw happen in its failure message."""
    try:
        return wait_text(page, selector, pattern, timeout)
    except AssertionError as err:
        raise AssertionError(f"{err}\nevents:\n{events(page)}") from None


def expect(page, js: str) -> None:
    """page.wait_for_function, with what the page saw happen in its failure message."""
    try:
        page.wait_for_function(js)
    except Exception as err:
        raise AssertionError(f"{err}\nevents:\n{events(page)}") from None


def wait_held(page, held: list, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not held:
        assert time.monotonic() < deadline, "the action's request was not sent"
        page.wait_for_timeout(50)  # lets Playwright run the route handler


def refresh_while_held(page, part: str) -> dict:
    """Make ``part`` refresh now; what became of the refresh once it had its chance."""
    page.evaluate(REFRESH_JS, part)
    page.wait_for_function(
        "() => window.refresh && (window.refresh.skipped || window.refresh.settled)"
    )
    page.wait_for_timeout(100)  # a dropped answer would have been swapped by now
    return page.evaluate(
        "(sel) => ({...window.refresh, before: document.querySelector(sel).dataset.before})",
        part,
    )


def ask(page, button: str) -> None:
    """Click ``button``, whose confirmation dialog opens. A click whose button is replaced
    between the mouse's press and release (the part refreshing under it) reaches no button:
    the person clicks again, so does this (at most three times)."""
    for _ in range(3):
        page.click(button)
        try:
            page.locator("#confirm-dialog").wait_for(state="visible", timeout=5_000)
            return
        except Exception:
            continue
    raise AssertionError(f"no dialog after clicking {button}\nevents:\n{events(page)}")


def send_from_new_copy(page, part: str, button: str | None = None) -> None:
    page.evaluate(ON_NEW_COPY_JS, [part, button])
    page.wait_for_function("() => window.sentFromNewCopy === true")


def open_live(chromium, base: str, path: str):
    page = signed_in(chromium, base)
    page.goto(base + path)
    page.wait_for_function("() => document.documentElement.dataset.live === 'open'")
    page.wait_for_load_state("networkidle")  # the parts' fetch when the stream opened
    page.evaluate(WATCH_JS)
    return page


def test_an_answer_shows_in_place_when_the_state_refreshes_while_it_is_on_its_way(
    live_server, scene
):
    cid = scene["sleeper"].container_id
    state = "#container-state"
    with browser() as chromium:
        page = open_live(chromium, live_server.url, f"/containers/{cid}/")
        held = held_post(page, f"**/containers/{cid}/pause/")
        page.click(f"{state} button[value=pause]")
        wait_held(page, held)
        seen = refresh_while_held(page, state)
        held[0].continue_()
        page.unroute(f"**/containers/{cid}/pause/")
        expect_text(page, "#action-result", r"Paused sleeper\.")
        # the answer's notice of a change reached the page from the form itself
        assert "FORM" in page.evaluate("window.changed"), page.evaluate("window.changed")
        # the part holding the form stayed: its refresh waited for the answer...
        assert seen["before"] == "1", seen
        # ...then it fetched itself: the new state and its buttons
        expect(
            page,
            "() => !document.querySelector('#container-state').dataset.before"
            " && document.querySelector('#container-state button[value=unpause]')",
        )
        assert page.locator(f"{state} button[value=pause]").count() == 0
        assert "paused" in page.inner_text(f"{state} .status").lower()
        assert page.evaluate("window.stillHere") is True


def test_actions_sent_from_the_states_new_copy_stay_in_place(live_server, scene):
    cid = scene["sleeper"].container_id
    state = "#container-state"
    with browser() as chromium:
        page = open_live(chromium, live_server.url, f"/containers/{cid}/")
        url = page.url

        # Pause clicked the moment the state's new copy comes in
        send_from_new_copy(page, state, f"{state} button[value=pause]")
        expect_text(page, "#action-result", r"Paused sleeper\.")
        assert page.evaluate("window.stillHere") is True  # in place, no result page
        page.wait_for_selector(f"{state} button[value=unpause]")

        # Kill confirmed in the dialog as the state's new copy comes in (the dialog's
        # form was replaced meanwhile: its new copy is sent)
        ask(page, f"{state} button[value=kill]")
        send_from_new_copy(page, state)
        expect_text(page, "#action-result", r"Killed sleeper\.")
        assert page.evaluate("window.stillHere") is True
        expect_text(page, f"{state} .status", r"(?i)Exited \(137\)")
        page.wait_for_selector(f"{state} button[value=remove]")

        # the same for Remove (the case the networks browser test met by chance)
        ask(page, f"{state} button[value=remove]")
        send_from_new_copy(page, state)
        text = expect_text(page, "#action-result", r"Removed container sleeper\.")
        assert "sleeper" in text
        assert page.evaluate("window.stillHere") is True
        assert page.url == url


def test_untagging_stays_in_place_when_the_references_refresh_meanwhile(live_server, scene):
    refs = "#refs"
    with browser() as chromium:
        page = open_live(chromium, live_server.url, scene["image_url"])
        url = page.url
        button = "table.refs tr:has(span.tag:text-is('pages/box:extra')) button"

        # the references refresh while the untag's request is on its way
        held = held_post(page, "**/images/remove/")
        ask(page, button)
        page.click("#confirm-dialog-ok")
        wait_held(page, held)
        seen = refresh_while_held(page, refs)
        held[0].continue_()
        page.unroute("**/images/remove/")
        expect_text(page, "#action-result", r"Untagged: pages/box:extra")
        assert "FORM" in page.evaluate("window.changed"), page.evaluate("window.changed")
        assert seen["before"] == "1", seen
        expect(
            page,
            "() => !document.querySelector('#refs').dataset.before"
            " && ![...document.querySelectorAll('table.refs span.tag')]"
            ".some(t => t.textContent.trim() === 'pages/box:extra')",
        )

        # a new tag, then its removal confirmed as the references' new copy comes in
        field = "form.tag-form input[name=target]"
        page.fill(field, "pages/box:again")
        # the references refresh while the tag is typed: it stays (the form is outside)
        page.evaluate(REFRESH_JS, refs)
        expect(page, "() => window.refresh && window.refresh.settled")
        assert page.input_value(field) == "pages/box:again"
        page.click("form.tag-form button[type=submit]")
        expect(
            page,
            "() => [...document.querySelectorAll('table.refs span.tag')]"
            ".some(t => t.textContent.trim() === 'pages/box:again')",
        )
        assert page.input_value(field) == ""  # emptied once sent
        again = "table.refs tr:has(span.tag:text-is('pages/box:again')) button"
        ask(page, again)
        send_from_new_copy(page, refs)
        expect_text(page, "#action-result", r"Untagged: pages/box:again")
        assert page.evaluate("window.stillHere") is True
        assert page.url == url


def test_a_change_heard_while_a_part_fetches_itself_is_not_lost(live_server, scene):
    """The references fetch themselves (their answer held back by Playwright) while a tag
    is added: the notices of that change come while the fetch is on its way, and the
    answer, made before the change, comes after them. The part fetches itself once more."""
    refs_url = live_server.url + scene["image_url"]
    with browser() as chromium:
        page = open_live(chromium, live_server.url, scene["image_url"])
        held: list = []

        def hold_first(route):
            if held or route.request.method != "GET":
                route.continue_()
                return
            held.append((route, route.fetch()))  # the server's answer, before the change

        page.route(refs_url, hold_first)
        page.evaluate("() => htmx.trigger(document.body, 'dockweb:changed')")
        wait_held(page, held)

        # the change, while the fetch is on its way: a tag added from the page
        page.fill("form.tag-form input[name=target]", "pages/box:late")
        page.click("form.tag-form button[type=submit]")
        expect_text(page, "#action-result", r"Tagged .* as pages/box:late\.")
        assert page.locator("table.refs span.tag:text-is('pages/box:late')").count() == 0

        route, response = held[0]
        route.fulfill(response=response)
        expect(
            page,
            "() => [...document.querySelectorAll('table.refs span.tag')]"
            ".some(t => t.textContent.trim() === 'pages/box:late')",
        )
