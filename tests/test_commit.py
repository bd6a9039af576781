"""`docker commit` of real busybox containers: the writable layer becomes an image layer."""

from __future__ import annotations

import os
import time

import pytest

from dockweb.runtime.build import commit
from dockweb.runtime.containers import ContainerSpec, Status
from tests.support.containers import busybox_store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory):
    return busybox_store(registry, tmp_path_factory, "commit")[0]


@pytest.fixture(scope="module")
def image(registry, store):
    return f"{registry.host}/commit/busybox:1"


def _read(store, image_id, path):
    root = store.mount_image(image_id)
    try:
        with open(os.path.join(root, path.lstrip("/")), "rb") as f:
            return f.read()
    finally:
        store.unmount_image(image_id)


def test_it_captures_a_file_the_container_wrote(store, manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["sh", "-c", "echo saved > /data.txt"]))
    manager.start(c.id)
    assert manager.wait(c.id) == 0
    image_id = commit(store, manager, c.id, "committed:v1", message="snap", author="me")
    rec = store.get_image(image_id)
    base = store.lookup(image)
    assert rec.parent == base.id and len(rec.layers) == len(base.layers) + 1
    assert store.lookup("committed:v1").id == image_id
    assert _read(store, image_id, "/data.txt") == b"saved\n"
    last = rec.config["history"][-1]
    assert last["created_by"] == "sh -c echo saved > /data.txt"
    assert last["comment"] == "snap" and last["author"] == "me"
    assert rec.config["config"]["Cmd"] == ["sh", "-c", "echo saved > /data.txt"]


def test_it_pauses_a_running_container_and_applies_changes(store, manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["sh", "-c", "echo live > /live; sleep 30"]))
    manager.start(c.id)
    deadline = 50
    while deadline and not os.path.exists(os.path.join(manager.cdir(c.id), "upper", "live")):
        time.sleep(0.1)
        deadline -= 1
    image_id = commit(store, manager, c.id, changes=['CMD ["echo", "changed"]', "ENV MODE=x"])
    assert manager.get(c.id).status is Status.RUNNING  # resumed after the commit
    rec = store.get_image(image_id)
    assert rec.config["config"]["Cmd"] == ["echo", "changed"]
    assert "MODE=x" in rec.config["config"]["Env"]
    assert _read(store, image_id, "/live") == b"live\n"
    manager.remove(c.id, force=True)


def test_an_unchanged_container_commits_an_empty_layer(store, manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["true"]))
    image_id = commit(store, manager, c.id)
    rec = store.get_image(image_id)
    assert rec.layers == store.lookup(image).layers
    assert rec.config["history"][-1]["empty_layer"] is True
