"""Fixtures' building blocks for tests on real containers: a store with the busybox test
image pulled from the test registry, a ContainerManager that removes what it made, and a
container run to its exit with its logs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from dockweb.runtime.containers import Container, ContainerManager, ContainerSpec
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store
from tests.support import images as im


def busybox_store(registry, tmp_path_factory, name: str) -> tuple[Store, str]:
    """A fresh store (under a temporary ``name`` directory) holding ``<name>/busybox:1``,
    pushed to the test registry and pulled; the store and the image's reference."""
    store = Store(str(tmp_path_factory.mktemp(name) / "store"))
    ref = f"{registry.host}/{name}/busybox:1"
    im.push_image(registry.host, f"{name}/busybox", "1", im.busybox_base())
    pull(store, RegistryClient(), ref)
    return store, ref


def managed(store: Store) -> Iterator[ContainerManager]:
    """A manager for ``store``; every container it knows is removed (with its anonymous
    volumes) when the fixture ends. ``yield from`` it in a fixture."""
    mgr = ContainerManager(store)
    yield mgr
    for c in mgr.list(all=True):
        mgr.remove(c.id, force=True, volumes=True)


def managed_with_networks(store: Store) -> Iterator[ContainerManager]:
    """``managed``, and every user-defined network removed after its containers."""
    from dockweb.runtime.networks import NetworkManager

    yield from managed(store)
    nm = NetworkManager(store.root)
    for n in nm.list():
        if not n.predefined:
            nm.remove(n.id)


def with_static_tool(registry, store: Store, workdir: Path, name: str, tool: str) -> str:
    """busybox plus ``/usr/bin/<tool>``, built static from ``tests/support/<tool>.c`` (what
    busybox lacks: a UDP echo server, a DNS server), pushed as ``<name>/tools:1`` and pulled
    into ``store``; its reference."""
    exe = workdir / tool
    src = os.path.join(os.path.dirname(__file__), f"{tool}.c")
    subprocess.run(["gcc", "-static", "-O2", "-o", str(exe), src], check=True)
    layer = im.Layer(
        [
            im.dir_("usr"),
            im.dir_("usr/bin"),
            im.file(f"usr/bin/{tool}", exe.read_bytes(), mode=0o755),
        ]
    )
    ref = f"{registry.host}/{name}/tools:1"
    im.push_image(registry.host, f"{name}/tools", "1", im._image(layer))
    pull(store, RegistryClient(), ref)
    return ref


def run_to_exit(
    manager: ContainerManager, image: str, *cmd: str, **kw: object
) -> tuple[Container, int]:
    """A container of ``image`` running ``cmd`` (``kw``: more ContainerSpec fields), created,
    started and waited for; the container and its exit code."""
    c = manager.create(ContainerSpec(image=image, cmd=list(cmd), **kw))
    manager.start(c.id)
    code = manager.wait(c.id)
    return c, code


def logs_text(manager: ContainerManager, cid: str, stream: str | None = None) -> str:
    """The container's logs as one string: both streams, or only ``stream`` ("stdout" or
    "stderr")."""
    return "".join(t for s, t, _ in manager.logs(cid) if stream is None or s == stream)
