"""`push` to a real registry (plain and htpasswd), then pull back into a fresh store."""

from __future__ import annotations

import os

import pytest

from dockweb.runtime import imageio
from dockweb.runtime.errors import DockwebError, ImageNotFound
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store
from tests.support import images as im
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")


def _push(store, client, ref):
    events = []
    result = imageio.push(store, client, ref, events.append)
    lines = []
    for e in events:
        if e["kind"] == "message":
            lines.append(e["text"])
        elif e.get("current") is None:
            lines.append(f"{e['id']}: {e['status']}")
    return result, lines


def _ids(image) -> list[str]:
    return [d[7:19] for d in image.diff_ids]


def test_it_pushes_an_image_and_a_fresh_store_pulls_the_same_image(registry, tmp_path):
    client = RegistryClient()
    image = im.with_special_files()
    source = Store(str(tmp_path / "a"))
    im.push_image(registry.host, "push/src", "1", image)
    pull(source, client, f"{registry.host}/push/src:1")
    source.tag(f"{registry.host}/push/src:1", f"{registry.host}/push/dst:v2")

    result, lines = _push(source, client, f"{registry.host}/push/dst:v2")

    base, top = _ids(image)
    assert lines[0] == f"The push refers to repository [{registry.host}/push/dst]"
    assert lines[1:3] == [f"{top}: Preparing", f"{base}: Preparing"]
    # the blobs of push/src are on the same registry: mounted, not uploaded again
    assert sorted(lines[3:5]) == sorted(
        [f"{top}: Mounted from push/src", f"{base}: Mounted from push/src"]
    )
    assert lines[5] == f"v2: digest: {result.digest} size: {result.size}"
    _, served_digest, body = im.fetch_manifest(registry.host, "push/dst", "v2")
    assert served_digest == result.digest
    assert len(body) == result.size
    assert f"{registry.host}/push/dst@{result.digest}" in [
        r.familiar_string() for r in source.references(image.image_id)
    ]

    fresh = Store(str(tmp_path / "b"))
    pulled = pull(fresh, client, f"{registry.host}/push/dst:v2")
    assert pulled.image_id == image.image_id
    assert pulled.manifest_digest == result.digest


def test_it_uploads_layers_it_compressed_itself_then_finds_them_on_a_second_push(
    registry, tmp_path
):
    """A loaded image has no blob a registry knows: its layers are gzipped and uploaded; the
    compression is deterministic, so a second push finds every layer there."""
    client = RegistryClient()
    image = im.with_whiteouts()
    source = Store(str(tmp_path / "a"))
    im.push_image(registry.host, "push/loaded-src", "1", image)
    pull(source, client, f"{registry.host}/push/loaded-src:1")
    import io

    saved = io.BytesIO()
    imageio.save(source, [f"{registry.host}/push/loaded-src:1"], saved)
    store = Store(str(tmp_path / "b"))
    imageio.load(store, io.BytesIO(saved.getvalue()))
    store.tag(f"{registry.host}/push/loaded-src:1", f"{registry.host}/push/loaded:1")

    first, lines = _push(store, client, f"{registry.host}/push/loaded:1")
    for layer_id in _ids(image):
        assert f"{layer_id}: Pushed" in lines
    second, lines = _push(store, client, f"{registry.host}/push/loaded:1")
    assert second.digest == first.digest
    assert sorted(lines[1 + len(image.layers) :][:-1]) == sorted(
        f"{layer_id}: Layer already exists" for layer_id in _ids(image)
    )

    fresh = Store(str(tmp_path / "c"))
    assert pull(fresh, client, f"{registry.host}/push/loaded:1").image_id == image.image_id


def test_it_pushes_to_a_registry_that_wants_a_password(tmp_path):
    server = RegistryServer(tmp_path / "reg", auth="htpasswd")
    server.start()
    try:
        image = im.with_hardlinks()
        public = RegistryServer(tmp_path / "pub")
        public.start()
        try:
            store = Store(str(tmp_path / "a"))
            im.push_image(public.host, "src/app", "1", image)
            pull(store, RegistryClient(), f"{public.host}/src/app:1")
        finally:
            public.stop()
        target = f"{server.host}/private/app:1"
        store.tag(f"{public.host}/src/app:1", target)

        with pytest.raises(DockwebError, match="unauthorized|no basic auth"):
            imageio.push(store, RegistryClient(), target)

        client = RegistryClient(credentials={server.host: (server.username, server.password)})
        result, lines = _push(store, client, target)
        assert sum(line.endswith(": Pushed") for line in lines) == len(image.layers)
        fresh = Store(str(tmp_path / "b"))
        pulled = pull(fresh, client, target)
        assert pulled.image_id == image.image_id
        assert pulled.manifest_digest == result.digest
    finally:
        server.stop()


def test_it_says_what_docker_says_for_missing_images(registry, tmp_path):
    store = Store(str(tmp_path / "a"))
    with pytest.raises(ImageNotFound, match="^An image does not exist locally with the tag: "):
        imageio.push(store, RegistryClient(), f"{registry.host}/push/none")
    im.push_image(registry.host, "push/some", "1", im.busybox_base())
    pull(store, RegistryClient(), f"{registry.host}/push/some:1")
    with pytest.raises(ImageNotFound, match=f"^tag does not exist: {registry.host}/push/some:2$"):
        imageio.push(store, RegistryClient(), f"{registry.host}/push/some:2")
    with pytest.raises(DockwebError, match="cannot push a digest reference"):
        imageio.push(store, RegistryClient(), f"{registry.host}/push/some@sha256:" + "a" * 64)
