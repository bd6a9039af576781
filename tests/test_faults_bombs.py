"""Tar bombs: layers small on the wire that unpack to far too much, refused with LayerError.

The guards are pull's ``DEFAULT_LAYER_LIMITS`` (entries, bytes of files, decompression
ratio), overridable in settings (images.services.layer_limits). Each bomb is built here,
streamed to disk, pushed to the real registry and pulled; the pull must fail cleanly and
leave the store as it was.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from pathlib import Path

import pytest

from dockweb.runtime.errors import LayerError
from dockweb.runtime.limits import DEFAULT_LAYER_LIMITS, LayerLimits
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store
from tests.support import images as im

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")

GiB = 1 << 30


def _gzip_layer(path: Path, tar_chunks) -> im.Layer:
    """Compress the tar given as chunks into ``path``, hashing both sides."""
    tar_hash, blob_hash, size = hashlib.sha256(), hashlib.sha256(), 0
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    with open(path, "wb") as out:
        for chunk in tar_chunks:
            tar_hash.update(chunk)
            data = comp.compress(chunk)
            blob_hash.update(data)
            out.write(data)
            size += len(data)
        data = comp.flush()
        blob_hash.update(data)
        out.write(data)
        size += len(data)
    return im.Layer.from_file(
        path,
        diff_id="sha256:" + tar_hash.hexdigest(),
        digest="sha256:" + blob_hash.hexdigest(),
        size=size,
        compression="gzip",
    )


def zeros_bomb(path: Path, size: int) -> im.Layer:
    """One regular file of ``size`` zero bytes: about 1000:1 under gzip."""

    def chunks():
        info = tarfile.TarInfo("zeros")
        info.size = size
        yield info.tobuf(tarfile.USTAR_FORMAT)
        block = bytes(8 << 20)
        left = size
        while left:
            n = min(left, len(block))
            yield block[:n]
            left -= n
        yield bytes(-size % 512) + bytes(1024)

    return _gzip_layer(path, chunks())


def many_entries(path: Path, count: int) -> im.Layer:
    """``count`` empty files, headers only (512 bytes each before compression)."""
    template = tarfile.TarInfo("f0000000")
    template.mode = 0o644
    header = bytearray(template.tobuf(tarfile.USTAR_FORMAT))
    header[148:156] = b" " * 8
    base = sum(header) - sum(header[0:8])

    def chunks():
        batch = []
        for i in range(count):
            name = b"f%07d" % i
            header[0:8] = name
            header[148:156] = b"%06o\0 " % (base + sum(name))
            batch.append(bytes(header))
            if len(batch) == 8192:
                yield b"".join(batch)
                batch = []
        batch.append(bytes(1024))
        yield b"".join(batch)

    return _gzip_layer(path, chunks())


@pytest.fixture(scope="module")
def bombs(registry, tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    made = {
        "zeros": zeros_bomb(d / "zeros.gz", 2 * GiB),
        "entries": many_entries(d / "entries.gz", 1_000_000),
    }
    out = {}
    for name, layer in made.items():
        image = im.Image([im.busybox_layer(), layer], {"Cmd": ["sh"]})
        im.push_image(registry.host, f"bombs/{name}", "1", image)
        out[name] = image
    return out


def assert_store_unchanged_but_the_base(store: Store, image: im.Image) -> None:
    assert not store.has_image(image.image_id)
    assert not store.has_layer(image.chain_ids[1])
    assert store.all_references() == {}
    assert store.scratch_entries() == []
    assert set(store.layers()) <= {image.chain_ids[0]}


def test_the_default_limits_are_sane():
    assert DEFAULT_LAYER_LIMITS.max_entries and DEFAULT_LAYER_LIMITS.max_entries < 1_000_000
    assert DEFAULT_LAYER_LIMITS.max_bytes and DEFAULT_LAYER_LIMITS.max_bytes >= 16 * GiB
    assert DEFAULT_LAYER_LIMITS.max_ratio and DEFAULT_LAYER_LIMITS.ratio_floor


def test_it_refuses_a_gzip_bomb_with_the_default_limits(tmp_path, registry, bombs):
    image = bombs["zeros"]
    assert image.layers[1].size < 4 << 20  # a few MB on the wire for 2 GiB unpacked
    store = Store(str(tmp_path / "store"))
    with pytest.raises(LayerError, match="refused as a decompression bomb") as err:
        pull(store, RegistryClient(), f"{registry.host}/bombs/zeros:1")
    assert image.layers[1].digest in str(err.value)
    assert_store_unchanged_but_the_base(store, image)


def test_it_refuses_a_layer_with_too_many_bytes_of_files(tmp_path, registry, bombs):
    store = Store(str(tmp_path / "store"))
    limits = LayerLimits(max_bytes=100 << 20)  # no ratio guard: the byte count stops it
    with pytest.raises(LayerError, match=f"more than {100 << 20} bytes of files, the limit"):
        pull(store, RegistryClient(), f"{registry.host}/bombs/zeros:1", limits=limits)
    assert_store_unchanged_but_the_base(store, bombs["zeros"])


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_million_entry_layer_through_the_service(settings, tmp_path, registry, bombs):
    from images import services
    from images.models import Image, Pull

    image = bombs["entries"]
    assert image.layers[1].size < 16 << 20
    settings.DOCKWEB_ROOT = tmp_path / "store"
    settings.DOCKWEB_LAYER_MAX_ENTRIES = 20_000  # the setting reaches the pull
    row = Pull.objects.create(
        reference=f"{registry.host}/bombs/entries:1",
        normalized=f"{registry.host}/bombs/entries:1",
    )
    services.run_pull(row.id)
    row.refresh_from_db()
    assert row.status == "failed"
    assert row.error == (
        f"refusing filesystem layer {image.layers[1].digest}: layer has more than 20000 "
        "entries, the limit"
    )
    store = services.get_store()
    assert_store_unchanged_but_the_base(store, image)
    assert not Image.objects.exists()
