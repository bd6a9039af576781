# ruff: noqa: F811  (pytest fixtures imported from test_browser_console)
"""The Networks pages in a real browser (Debian's chromium through Playwright), against the
live server, a real Celery worker and real containers: create a network, run a container
on it from the Run form (an alias and a fixed address), see its address on the container
page and on the network's page (and in the container's own interface), see dockerd's
refusal to remove a network in use, then remove the container and the network, and prune
another one after its preview. Screenshots go to test-artifacts/screenshots/.

No Django ORM call happens in the test's thread while Playwright runs (its sync API keeps
an event loop there): the runtime's records are read with the runtime itself (no ORM).
"""

from __future__ import annotations

import re
import time

import pytest

from dockweb.runtime.networks import NetworkManager
from tests.support.browser import PASSWORD, SCREENSHOTS, USERNAME, chromium_browser, log_in
from tests.test_browser_console import busybox, dockweb  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser]


@pytest.fixture
def user(transactional_db, django_user_model):
    from access.roles import ADMIN, set_role

    user = django_user_model.objects.create_user(USERNAME, password=PASSWORD)
    set_role(user, ADMIN)  # creates (operator), removes and prunes (admin)
    return user


@pytest.fixture
def chromium(user, dockweb):  # noqa: F811
    with chromium_browser() as browser:
        yield browser


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"networks-{name}.png"), full_page=True)


def wait_operation(page) -> str:
    """The operation page's outcome once the worker has finished: its status text."""
    page.wait_for_url(re.compile(r"/operations/\d+/$"))
    page.wait_for_selector("#operation-status .inline-actions")
    return page.inner_text("#operation-status")


def row_text(page, selector: str) -> str:
    loc = page.locator(selector)
    return loc.inner_text() if loc.count() else ""


def test_it_creates_a_network_runs_a_container_on_it_and_removes_both(
    live_server,
    live_worker,
    busybox,
    dockweb,
    chromium,  # noqa: F811
):
    dockweb("pull", "-q", busybox)
    nets = NetworkManager(str(live_worker.store_root))
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    log_in(page, live_server.url)

    # the Networks page, from the navigation: the predefined networks
    page.click("nav.nav a:has-text('Networks')")
    page.wait_for_selector("table.networks")
    for name in ("bridge", "host", "none"):
        assert page.locator(f"tr[data-network='{name}']").count() == 1
    assert "172.17.0.0/16" in row_text(page, "tr[data-network='bridge']")

    # a form error is shown before anything is queued
    page.fill("#net-name", "webnet")
    page.fill("#net-subnet", "10.77.0.0/24")
    page.fill("#net-gateway", "10.78.0.1")
    page.click("form.network-create button[type=submit]")
    page.wait_for_selector("text=no matching subnet for gateway 10.78.0.1")
    assert [n.name for n in nets.list()] == ["bridge", "host", "none"]

    # create it
    page.fill("#net-gateway", "")
    page.fill("#net-labels", "tier=front")
    page.click("form.network-create button[type=submit]")
    outcome = wait_operation(page)
    assert "Created network webnet" in outcome, outcome
    shot(page, "created")
    page.click("#operation-status a:has-text('Open network')")
    page.wait_for_selector("table.network-settings")
    assert "10.77.0.0/24" in page.inner_text("table.network-settings")
    assert "10.77.0.1" in page.inner_text("table.network-settings")
    created = nets.get("webnet")
    assert (created.subnet, created.gateway, created.labels) == (
        "10.77.0.0/24",
        "10.77.0.1",
        {"tier": "front"},
    )

    # a second one, left unused, for the prune at the end
    page.goto(live_server.url + "/networks/")
    page.fill("#net-name", "spare")
    page.click("form.network-create button[type=submit]")
    assert "Created network spare" in wait_operation(page)

    # run a container on it from the Run form: an alias and a fixed address
    page.goto(live_server.url + "/containers/run/")
    page.fill("#image", busybox)
    page.fill("#command", "sh -c 'while true; do sleep 1; done'")
    page.fill("#name", "pinger")
    page.select_option("#network", "webnet")
    page.fill("#network_alias", "db")
    page.fill("#ip", "10.77.0.50")
    shot(page, "run-form")
    page.click("form.run-form button[type=submit]")
    outcome = wait_operation(page)
    assert "Started container" in outcome, outcome
    page.click("#operation-status a:has-text('Open container')")
    page.wait_for_selector("#networks")
    row = row_text(page, "#networks tr[data-network='webnet']")
    assert "10.77.0.50/24" in row and "10.77.0.1" in row, row
    assert "02:42:0a:4d:00:32" in row and "db" in row, row  # dockerd's MAC for the address
    assert (
        page.locator("#networks tr[data-network='webnet'] button:has-text('Disconnect')").count()
        == 1
    )
    shot(page, "container")
    # the address is the container's own, in its interface
    addr = dockweb("exec", "pinger", "busybox", "ip", "-4", "-o", "addr", "show", "eth0")
    assert "10.77.0.50/24" in addr, addr

    # connect it to the default bridge too, then disconnect it, from its page
    page.select_option("#connect-network", "bridge")
    page.click("form.network-connect button[type=submit]")
    assert "Done" in wait_operation(page)
    page.click("#operation-status a:has-text('Open container')")
    page.wait_for_selector("#networks tr[data-network='bridge']")
    bridged = row_text(page, "#networks tr[data-network='bridge']")
    m = re.search(r"(172\.17\.\d+\.\d+)/16", bridged)
    assert m and "172.17.0.1" in bridged, bridged
    assert m.group(1) in dockweb("exec", "pinger", "busybox", "ip", "-4", "-o", "addr")
    shot(page, "connected")
    page.click("#networks tr[data-network='bridge'] button:has-text('Disconnect')")
    page.click("#confirm-dialog-ok")  # it asks first, naming the container and the network
    assert "Done" in wait_operation(page)
    page.click("#operation-status a:has-text('Open container')")
    page.wait_for_selector("#networks tr[data-network='webnet']")
    assert page.locator("#networks tr[data-network='bridge']").count() == 0
    assert m.group(1) not in dockweb("exec", "pinger", "busybox", "ip", "-4", "-o", "addr")

    # the network's page and the list show it
    page.click("#networks tr[data-network='webnet'] a")
    page.wait_for_selector("table.network-containers")
    member = row_text(page, "tr[data-container='pinger']")
    assert "10.77.0.50/24" in member and "running" in member.lower(), member
    shot(page, "network")
    page.goto(live_server.url + "/networks/")
    assert "pinger" in row_text(page, "tr[data-network='webnet']")
    shot(page, "list")

    # dockerd's refusal to remove a network in use, on the operation page
    page.goto(f"{live_server.url}/networks/{created.id}/")
    page.click("button:has-text('Remove network')")
    page.click("#confirm-dialog-ok")
    outcome = wait_operation(page)
    assert "has active endpoints" in outcome, outcome
    assert "webnet" in [n.name for n in nets.list()]

    # the container's page follows its networks live, whoever changes them (here the CLI)
    page.goto(f"{live_server.url}/containers/pinger/")
    page.wait_for_selector("#networks tr[data-network='webnet']")
    dockweb("network", "connect", "bridge", "pinger")
    page.wait_for_selector("#networks tr[data-network='bridge']", timeout=15000)
    dockweb("network", "disconnect", "bridge", "pinger")
    page.wait_for_selector("#networks tr[data-network='bridge']", state="detached", timeout=15000)

    # stop and remove the container from its page: stopped, it holds no address (no reload)
    page.click("#container-state button[value=stop]")
    deadline = time.monotonic() + 40
    while not (
        page.locator("#container-state button[value=remove]").count()
        and "none while stopped" in row_text(page, "#networks tr[data-network='webnet']")
    ):
        assert time.monotonic() < deadline, row_text(page, "#networks tr[data-network='webnet']")
        time.sleep(0.2)
    page.click("#container-state button[value=remove]")
    page.click("#confirm-dialog-ok")  # removed, after the question
    # its result shows in place, even when the state's own refresh comes meanwhile
    # (tests/test_browser_race.py makes that race happen every time)
    deadline = time.monotonic() + 40
    while "Removed container pinger." not in page.inner_text("#action-result"):
        assert time.monotonic() < deadline, (page.url, page.inner_text("#action-result"))
        time.sleep(0.2)
    assert page.url == f"{live_server.url}/containers/pinger/"
    assert "pinger" not in dockweb("ps", "-a", "--format", "{{.Names}}").split()
    assert nets.endpoints(nets.get("webnet")) == []

    # now the network goes
    page.goto(f"{live_server.url}/networks/{created.id}/")
    assert page.locator("tr[data-container='pinger']").count() == 0
    page.click("button:has-text('Remove network')")
    page.click("#confirm-dialog-ok")
    outcome = wait_operation(page)
    assert "Removed network webnet" in outcome, outcome
    page.goto(live_server.url + "/networks/")
    assert page.locator("tr[data-network='webnet']").count() == 0

    # prune, after its preview
    page.click("a:has-text('Prune unused networks')")
    preview = page.inner_text("ul.prune-preview")
    assert "spare" in preview and "bridge" not in preview, preview
    shot(page, "prune-preview")
    page.click("button:has-text('Remove these networks')")
    outcome = wait_operation(page)
    assert "spare" in outcome, outcome
    assert [n.name for n in nets.list()] == ["bridge", "host", "none"]
    context.close()
