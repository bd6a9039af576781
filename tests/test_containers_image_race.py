"""Image removal racing container creation, on real busybox containers: a container never
loses its image, and a removal either wins before the container exists or is refused with
Docker's conflict."""

from __future__ import annotations

import os
import random
import time

import pytest

from dockweb.runtime.containers import ContainerManager, ContainerSpec
from dockweb.runtime.errors import Conflict, ImageNotFound
from dockweb.runtime.store import Store
from images import services as image_services
from tests.support import images as im

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.django_db(transaction=True),
]

ROUNDS = 30


def _create_in_child(root: str, ref: str, go: int) -> tuple[int, int]:
    """Fork a process that waits for a byte on ``go``, then creates a container from
    ``ref`` with its own Store (its own lock file descriptor, as another CLI would).
    Returns (pid, read end of a pipe that carries the container's ID or "missing")."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.read(go, 1)
            time.sleep(random.uniform(0, 0.01))
            try:
                c = ContainerManager(Store(root)).create(ContainerSpec(image=ref, cmd=["true"]))
                out = c.id
            except ImageNotFound:
                out = "missing"
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    return pid, r


def test_it_never_removes_the_image_of_a_container_created_meanwhile(registry, settings, tmp_path):
    settings.DOCKWEB_ROOT = tmp_path / "store"
    im.push_image(registry.host, "race/busybox", "1", im.busybox_base())
    ref = f"{registry.host}/race/busybox:1"
    image_services.pull_image(ref)
    root = str(settings.DOCKWEB_ROOT)
    mgr = ContainerManager(Store(root))
    outcomes = {"removed": 0, "refused": 0}
    for _ in range(ROUNDS):
        go_r, go_w = os.pipe()
        pid, result = _create_in_child(root, ref, go_r)
        os.write(go_w, b"x")
        time.sleep(random.uniform(0, 0.01))
        try:
            image_services.remove_image(ref)
            removed = True
        except Conflict as e:
            removed = False
            assert str(e).startswith(
                f'conflict: unable to remove repository reference "{ref}" (must force) - container '
            )
        os.waitpid(pid, 0)
        with os.fdopen(result) as f:
            created = f.read()
        for fd in (go_r, go_w):
            os.close(fd)
        if removed:
            outcomes["removed"] += 1
            assert created == "missing", "a container was created from an image removed under it"
            assert mgr.list(all=True) == []
            image_services.pull_image(ref)
        else:
            outcomes["refused"] += 1
            assert len(created) == 64
            c = mgr.get(created)
            assert mgr.store.has_image(c.image_id)
            mgr.start(c.id)
            assert mgr.wait(c.id) == 0
            mgr.remove(c.id, force=True, volumes=True)
    # both orders happened, or the test did not race anything
    assert outcomes["removed"] and outcomes["refused"], outcomes
