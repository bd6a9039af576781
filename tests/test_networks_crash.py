"""Crash safety of container networks: a supervisor, or the process connecting or
disconnecting a container, killed (SIGKILL) at each step; reconcile then leaves no stale
namespace, interface, address or DNS entry, and a running container keeps exactly the
networks its record names."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from dockweb.runtime.containers import ContainerSpec
from dockweb.runtime.errors import DockwebError
from tests.support.cli import REPO
from tests.support.containers import busybox_store, managed_with_networks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory):
    return busybox_store(registry, tmp_path_factory, "netcrash")[0]


@pytest.fixture(scope="module")
def image(registry, store):
    return f"{registry.host}/netcrash/busybox:1"


@pytest.fixture
def mgr(store):
    yield from managed_with_networks(store)


def _links(path: str) -> list[str]:
    out = subprocess.run(
        ["nsenter", f"--net={path}", "ip", "-o", "link", "show"], capture_output=True, text=True
    ).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


def _veths_in_infra(mgr) -> list[str]:
    if not os.path.exists(mgr.netns.infra):
        return []
    return [n for n in _links(mgr.netns.infra) if n.startswith("veth")]


def _in_child(store, crash_at: str, verb: str, *args: str) -> None:
    """``ContainerManager(store).<verb>(*args)`` in a child Python killed at ``crash_at``."""
    code = (
        "import sys\n"
        "from dockweb.runtime.store import Store\n"
        "from dockweb.runtime.containers import ContainerManager\n"
        "m = ContainerManager(Store(sys.argv[1]))\n"
        "getattr(m, sys.argv[2])(*sys.argv[3:])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, store.root, verb, *args],
        cwd=REPO,
        env=dict(os.environ, DOCKWEB_CRASH_AT=crash_at),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9, f"{crash_at} was never reached:\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize(
    "point", ["network.attach.netns", "network.attach.endpoint", "network.attach.plugged"]
)
def test_a_supervisor_killed_while_attaching_leaves_nothing(mgr, image, monkeypatch, point):
    mgr.networks.create("crashnet")
    c = mgr.create(ContainerSpec(image=image, cmd=["sleep", "60"], network="crashnet"))
    monkeypatch.setenv("DOCKWEB_CRASH_AT", point)
    with pytest.raises(DockwebError):
        mgr.start(c.id)
    monkeypatch.delenv("DOCKWEB_CRASH_AT")
    mgr.reconcile()
    assert mgr.networks.all_endpoints() == []
    assert not os.path.exists(mgr.netns.path(c.id))
    assert not os.path.exists(mgr.netns.infra)  # nothing attached: no namespace, no forwarder
    # and it starts cleanly afterwards, on the same address
    mgr.start(c.id)
    ep = mgr.networks.endpoint(mgr.networks.get("crashnet"), c.id)
    assert ep is not None and ep.ip.endswith(".0.2")
    assert _links(mgr.netns.path(c.id)) == ["eth0", "lo"]
    mgr.remove(c.id, force=True)


@pytest.mark.parametrize(
    ("verb", "point"),
    [("connect", "network.connect.plugged"), ("disconnect", "network.disconnect.recorded")],
)
def test_a_connect_or_disconnect_cut_short_is_undone(mgr, image, store, verb, point):
    mgr.networks.create("first")
    mgr.networks.create("second")
    c = mgr.create(ContainerSpec(image=image, cmd=["sleep", "60"], network="first"))
    mgr.start(c.id)
    if verb == "disconnect":
        mgr.connect(c.id, "second")
        assert _links(mgr.netns.path(c.id)) == ["eth0", "eth1", "lo"]
    _in_child(store, point, verb, c.id, "second")
    mgr.reconcile()
    # the record says "first" only (connect never recorded; disconnect recorded), and so
    # does the kernel, the endpoints (the DNS answers from them) and the host side
    assert list(mgr.get(c.id).networks) == ["first"]
    assert _links(mgr.netns.path(c.id)) == ["eth0", "lo"]
    assert [n.name for n, _ in mgr.networks.container_endpoints(c.id)] == ["first"]
    assert len(_veths_in_infra(mgr)) == 1
    resolve, _ = mgr.dns_names(c.id)
    assert resolve(c.id[:12]) is not None
    mgr.remove(c.id, force=True)
    assert mgr.networks.all_endpoints() == [] and not os.path.exists(mgr.netns.infra)


def test_a_supervisor_killed_while_running_is_cleaned_up(mgr, image):
    c = mgr.create(ContainerSpec(image=image, cmd=["sleep", "60"]))
    mgr.start(c.id)
    assert mgr.networks.container_endpoints(c.id)
    with open(os.path.join(mgr.cdir(c.id), "shim.pid")) as f:
        os.kill(int(f.read()), 9)
    # SIGKILL is delivered, not yet done: its lock goes with the process's last descriptor
    deadline = time.monotonic() + 10
    while mgr.shim_alive(c.id):
        assert time.monotonic() < deadline, "the supervisor survived SIGKILL"
        time.sleep(0.02)
    mgr.reconcile()
    assert mgr.get(c.id).status.value == "exited"
    assert mgr.networks.all_endpoints() == []
    assert not os.path.exists(mgr.netns.path(c.id)) and not os.path.exists(mgr.netns.infra)
