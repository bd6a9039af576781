"""What a removed network leaves in dockweb's namespace while other containers keep it up:
nothing (its bridge and its isolation rules go), and a bridge left without its rules by a
failed attempt is made again rather than failing every later start."""

from __future__ import annotations

import os
import subprocess

import pytest

from dockweb.runtime.containers import ContainerSpec
from tests.support.containers import busybox_store, managed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def store_image(registry, tmp_path_factory):
    return busybox_store(registry, tmp_path_factory, "netclean")


@pytest.fixture
def mgr(store_image):
    yield from managed(store_image[0])


def _infra(mgr, *cmd: str) -> str:
    return subprocess.run(
        ["nsenter", f"--net={mgr.netns.infra}", *cmd], capture_output=True, text=True
    ).stdout


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _start(mgr, image: str, **kw):
    c = mgr.create(ContainerSpec(image=image, cmd=["sleep", "60"], **kw))
    mgr.start(c.id)
    return c


def test_a_removed_network_leaves_no_bridge_and_no_rules(mgr, store_image):
    image = store_image[1]
    keeper = _start(mgr, image)  # on the default bridge: the namespace stays up
    for internal in (False, True):
        net = mgr.networks.create(f"gone{int(internal)}", internal=internal)
        c = _start(mgr, image, network=net.name)
        br = net.bridge_name
        assert br in _infra(mgr, "ip", "-o", "link") and br in _infra(mgr, "iptables", "-S")
        mgr.remove(c.id, force=True)
        mgr.networks.remove(net.id)
        assert br not in _infra(mgr, "ip", "-o", "link")
        assert br not in _infra(mgr, "iptables", "-S"), _infra(mgr, "iptables", "-S")
    assert _mounted(mgr.netns.dir)
    mgr.remove(keeper.id, force=True)
    # the last one gone: no namespace, no mount left of this store's (each would be copied
    # into every container's mount namespace)
    assert not _mounted(mgr.netns.dir) and not _mounted(mgr.netns.infra)
    c = _start(mgr, image)  # and made again for the next
    assert _mounted(mgr.netns.dir)
    mgr.remove(c.id, force=True)
    assert not _mounted(mgr.netns.dir)


def test_a_bridge_left_without_its_mark_is_made_again(mgr, store_image):
    image = store_image[1]
    keeper = _start(mgr, image)
    net = mgr.networks.create("again")
    c = _start(mgr, image, network="again")
    mgr.remove(c.id, force=True)
    os.unlink(os.path.join(mgr.netns.dir, f"bridge-{net.bridge_name}"))  # as a failed attempt
    c = _start(mgr, image, network="again")  # the bridge exists: made again, not refused
    rules = _infra(mgr, "iptables", "-S")
    assert rules.count(f"-o {net.bridge_name} -j DROP") == 1, rules
    mgr.remove(c.id, force=True)
    mgr.remove(keeper.id, force=True)
    mgr.networks.remove(net.id)
