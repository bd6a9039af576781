"""Fixtures' building blocks for tests on real containers: a store with the busybox test
image pulled from the test registry, and a ContainerManager that removes what it made."""

from __future__ import annotations

from collections.abc import Iterator

from dockweb.runtime.containers import ContainerManager
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
