"""Volumes with real containers: named volumes seeded from the image and surviving their
containers, anonymous volumes, bind mounts, and Docker's refusals."""

from __future__ import annotations

import os

import pytest

from dockweb.docker.containers import container_json
from dockweb.runtime.containers import ContainerSpec, MountSpec
from dockweb.runtime.errors import VolumeInUse, VolumeNotFound
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store
from tests.support import images as im
from tests.support.containers import logs_text, run_to_exit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def _image_with_data():
    """busybox with /data (owned by app, holding a file) declared as a VOLUME."""
    top = im.Layer(
        [
            im.dir_("data", mode=0o750, uid=1000, gid=1000),
            im.file("data/seed", b"from the image\n", uid=1000, gid=1000),
        ]
    )
    return im.Image([im.busybox_layer(), top], {"Cmd": ["sh"], "Volumes": {"/data": {}}})


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory):
    store = Store(str(tmp_path_factory.mktemp("volumes") / "store"))
    client = RegistryClient()
    im.push_image(registry.host, "volumes/busybox", "1", im.busybox_base())
    im.push_image(registry.host, "volumes/data", "1", _image_with_data())
    pull(store, client, f"{registry.host}/volumes/busybox:1")
    pull(store, client, f"{registry.host}/volumes/data:1")
    return store


@pytest.fixture(scope="module")
def busybox(registry, store):
    return f"{registry.host}/volumes/busybox:1"


@pytest.fixture(scope="module")
def data_image(registry, store):
    return f"{registry.host}/volumes/data:1"


def _run(manager, image, cmd, mounts, **kw):
    c, code = run_to_exit(manager, image, *cmd, mounts=mounts, **kw)
    return c, code, logs_text(manager, c.id)


def test_it_keeps_a_named_volumes_data_after_its_container_is_removed(manager, busybox):
    mounts = [MountSpec("volume", "keep", "/v")]
    c, code, _ = _run(manager, busybox, ["sh", "-c", "echo kept > /v/f"], mounts)
    assert code == 0
    manager.remove(c.id, volumes=True)  # -v removes anonymous volumes only
    assert manager.volumes.get("keep").name == "keep"
    _, _, out = _run(manager, busybox, ["cat", "/v/f"], mounts)
    assert out == "kept\n"


def test_it_seeds_a_new_named_volume_from_the_image(manager, data_image):
    _, _, out = _run(
        manager,
        data_image,
        ["sh", "-c", "cat /data/seed; stat -c '%u %a' /data"],
        [MountSpec("volume", "seeded", "/data")],
    )
    assert out == "from the image\n1000 750\n"
    data = manager.volumes.get("seeded").mountpoint
    assert open(os.path.join(data, "seed")).read() == "from the image\n"


def test_it_does_not_seed_a_volume_that_has_data(manager, data_image, busybox):
    _run(manager, busybox, ["sh", "-c", "echo mine > /x/own"], [MountSpec("volume", "full", "/x")])
    _, _, out = _run(manager, data_image, ["ls", "/data"], [MountSpec("volume", "full", "/data")])
    assert out == "own\n"


def test_it_makes_anonymous_volumes_for_image_volumes_and_removes_them_with_v(manager, data_image):
    c, _, out = _run(manager, data_image, ["cat", "/data/seed"], [])
    assert out == "from the image\n"
    (m,) = c.mounts
    assert m["anonymous"] and len(m["name"]) == 64 and m["destination"] == "/data"
    assert manager.volumes.users(m["name"]) == [c.id]
    # inspect as dockerd: an anonymous volume is in Config.Volumes, not in Binds, mode ""
    info = container_json(manager.get(c.id), manager, manager.root)
    assert info["Config"]["Volumes"] == {"/data": {}}
    assert info["HostConfig"]["Binds"] is None
    assert [(x["Name"], x["Mode"], x["RW"]) for x in info["Mounts"]] == [(m["name"], "", True)]
    manager.remove(c.id, volumes=True)
    with pytest.raises(VolumeNotFound):
        manager.volumes.get(m["name"])


def test_it_keeps_anonymous_volumes_on_rm_without_v(manager, busybox):
    c, _, _ = _run(manager, busybox, ["touch", "/anon/f"], [MountSpec("volume", "", "/anon")])
    name = c.mounts[0]["name"]
    manager.remove(c.id)
    assert os.path.exists(os.path.join(manager.volumes.get(name).mountpoint, "f"))
    manager.volumes.remove(name)


def test_it_removes_anonymous_volumes_of_an_auto_remove_container(manager, busybox):
    before = {v.name for v in manager.volumes.list()}
    code = manager.run(
        ContainerSpec(
            image=busybox,
            cmd=["touch", "/anon/f"],
            auto_remove=True,
            mounts=[MountSpec("volume", "", "/anon")],
        ),
        detach=False,
    )
    assert code == 0
    import time

    deadline = time.monotonic() + 5
    while {v.name for v in manager.volumes.list()} != before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert {v.name for v in manager.volumes.list()} == before


def test_it_bind_mounts_host_directories_read_write_and_read_only(manager, busybox, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "in").write_text("hello\n")
    _, code, out = _run(
        manager,
        busybox,
        ["sh", "-c", "cat /h/in; echo out > /h/out"],
        [MountSpec("bind", str(host), "/h")],
    )
    assert code == 0 and out == "hello\n" and (host / "out").read_text() == "out\n"
    _, code, out = _run(
        manager,
        busybox,
        ["sh", "-c", "echo no > /h/ro"],
        [MountSpec("bind", str(host), "/h", readonly=True)],
    )
    assert code != 0 and "Read-only file system" in out
    assert not (host / "ro").exists()


def test_it_refuses_to_remove_a_volume_in_use(manager, busybox):
    c = manager.create(
        ContainerSpec(image=busybox, cmd=["true"], mounts=[MountSpec("volume", "busy", "/b")])
    )
    with pytest.raises(VolumeInUse) as e:
        manager.volumes.remove("busy")
    assert str(e.value) == f"remove busy: volume is in use - [{c.id}]"
    manager.remove(c.id)
    manager.volumes.remove("busy")
    with pytest.raises(VolumeNotFound, match="get busy: no such volume"):
        manager.volumes.remove("busy")
    with pytest.raises(VolumeNotFound, match="No such volume: busy"):
        manager.volumes.get("busy")


def test_it_creates_lists_and_prunes_volumes(manager, busybox):
    v = manager.volumes.create("made", labels={"a": "b"})
    assert manager.volumes.create("made").created_at == v.created_at  # idempotent
    assert v.mountpoint.endswith("/volumes/made/_data") and v.labels == {"a": "b"}
    c = manager.create(
        ContainerSpec(image=busybox, cmd=["true"], mounts=[MountSpec("volume", "used", "/u")])
    )
    removed, _ = manager.volumes.prune()
    assert "made" in removed and "used" not in removed
    assert "used" in {x.name for x in manager.volumes.list()}
    manager.remove(c.id)
