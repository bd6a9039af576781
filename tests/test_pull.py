"""Pulling from a real registry into a real store: layers, references, platforms, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from dockweb.runtime.errors import DigestMismatch, DockwebError, ManifestUnknown
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store
from tests.support import images as im

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "store"))


@pytest.fixture(scope="module")
def client():
    return RegistryClient()


def _pull(store, client, ref, **kw):
    events = []
    result = pull(store, client, ref, on_progress=events.append, **kw)
    return result, events


def _lines(events):
    out = []
    for e in events:
        if e["kind"] == "message":
            out.append(e["text"])
        elif e["current"] is None:
            out.append(f"{e['id']}: {e['status']}")
    return out


def test_it_pulls_an_image_with_dockers_progress_lines(registry, store, client):
    image = im.busybox_base()
    im.push_image(registry.host, "pull/busybox", "1", image)
    result, events = _pull(store, client, f"{registry.host}/pull/busybox:1")

    assert result.image_id == image.image_id
    assert result.manifest_digest == image.manifest_digest
    assert result.reference == f"{registry.host}/pull/busybox:1"
    assert result.updated
    layer_id = image.layers[0].digest.split(":")[1][:12]
    assert _lines(events) == [
        "1: Pulling from pull/busybox",
        f"{layer_id}: Pulling fs layer",
        f"{layer_id}: Verifying Checksum",
        f"{layer_id}: Download complete",
        f"{layer_id}: Pull complete",
        f"Digest: {image.manifest_digest}",
        f"Status: Downloaded newer image for {registry.host}/pull/busybox:1",
    ]
    downloading = [e for e in events if e.get("status") == "Downloading"]
    assert downloading and downloading[-1]["current"] == image.layers[0].size
    assert store.has_image(image.image_id)
    assert all(store.has_layer(c) for c in image.chain_ids)
    refs = [r.familiar_string() for r in store.references(image.image_id)]
    assert refs == sorted(
        [f"{registry.host}/pull/busybox:1", f"{registry.host}/pull/busybox@{image.manifest_digest}"]
    )
    assert store.scratch_entries() == []


def test_it_says_up_to_date_on_a_second_pull(registry, store, client):
    image = im.busybox_base()
    im.push_image(registry.host, "pull/again", "1", image)
    _pull(store, client, f"{registry.host}/pull/again:1")
    result, events = _pull(store, client, f"{registry.host}/pull/again:1")
    assert not result.updated
    # as dockerd: an image already here is not gone through layer by layer
    assert _lines(events) == [
        "1: Pulling from pull/again",
        f"Digest: {image.manifest_digest}",
        f"Status: Image is up to date for {registry.host}/pull/again:1",
    ]


def test_it_shares_layers_between_images(registry, store, client):
    a, b = im.shared_base_pair()
    im.push_image(registry.host, "pull/a", "1", a)
    im.push_image(registry.host, "pull/b", "1", b)
    _pull(store, client, f"{registry.host}/pull/a:1")
    base_diff = store.layer_diff(a.chain_ids[1])
    inode = os.stat(base_diff).st_ino
    result, events = _pull(store, client, f"{registry.host}/pull/b:1")
    statuses = {
        e["id"]: e["status"] for e in events if e["kind"] == "layer" and e["current"] is None
    }
    ids = [la.digest.split(":")[1][:12] for la in b.layers]
    assert statuses[ids[0]] == "Already exists"
    assert statuses[ids[1]] == "Already exists"
    assert statuses[ids[2]] == "Pull complete"
    assert os.stat(base_diff).st_ino == inode  # unpacked once, not again
    assert result.existing_layers == 2 and result.downloaded_layers == 1
    assert len(store.layers()) == 4


def test_it_leaves_the_old_image_untagged_when_a_tag_moves(registry, store, client):
    old = im.busybox_base()
    new = im.with_hardlinks()
    im.push_image(registry.host, "pull/moving", "latest", old)
    _pull(store, client, f"{registry.host}/pull/moving")
    im.push_image(registry.host, "pull/moving", "latest", new)
    result, _ = _pull(store, client, f"{registry.host}/pull/moving")
    assert result.image_id == new.image_id
    old_refs = [r.familiar_string() for r in store.references(old.image_id)]
    # as dockerd: the tag moves; the old image keeps only its digest reference
    assert old_refs == [f"{registry.host}/pull/moving@{old.manifest_digest}"]
    assert store.has_image(old.image_id)


def test_it_picks_the_hosts_platform_from_an_index(registry, store, client):
    index = im.multi_platform_index("oci")
    im.push(registry.host, "pull/multi", "1", index)
    result, events = _pull(store, client, f"{registry.host}/pull/multi:1")
    amd64 = index.images[0]
    assert result.image_id == amd64.image_id
    assert result.manifest_digest == index.manifest_digest  # the repo digest is the index's
    marker = os.path.join(store.layer_diff(amd64.chain_ids[-1]), "etc/platform")
    assert open(marker).read() == "linux/amd64\n"


@pytest.mark.parametrize(
    "platform,expected", [("linux/arm64", "linux/arm64/v8"), ("linux/arm/v7", "linux/arm/v7")]
)
def test_it_pulls_a_named_platform(registry, store, client, platform, expected):
    index = im.multi_platform_index("docker")
    im.push(registry.host, "pull/multi-docker", "1", index)
    result, _ = _pull(store, client, f"{registry.host}/pull/multi-docker:1", platform=platform)
    img = store.get_image(result.image_id)
    marker = os.path.join(store.layer_diff(img.layers[-1]), "etc/platform")
    assert open(marker).read() == expected + "\n"


def test_it_refuses_a_platform_the_index_lacks(registry, store, client):
    index = im.multi_platform_index("oci")
    im.push(registry.host, "pull/multi-missing", "1", index)
    with pytest.raises(DockwebError, match="no matching manifest for linux/s390x"):
        _pull(store, client, f"{registry.host}/pull/multi-missing:1", platform="linux/s390x")


@pytest.mark.parametrize("make", [im.oci_zstd, im.uncompressed_layers])
def test_it_pulls_zstd_and_uncompressed_layers(registry, store, client, make):
    image = make()
    name = make.__name__.replace("_", "-")
    im.push_image(registry.host, f"pull/{name}", "1", image)
    result, _ = _pull(store, client, f"{registry.host}/pull/{name}:1")
    assert result.image_id == image.image_id
    for chain in image.chain_ids:
        assert store.get_layer(chain).size > 0


def test_it_pulls_by_digest(registry, store, client):
    image = im.with_symlinks()
    im.push_image(registry.host, "pull/bydigest", "1", image)
    ref = f"{registry.host}/pull/bydigest@{image.manifest_digest}"
    result, events = _pull(store, client, ref)
    assert _lines(events)[0] == f"{ref}: Pulling from pull/bydigest"
    assert [r.familiar_string() for r in store.references(image.image_id)] == [ref]


def test_it_reports_an_unknown_tag(registry, store, client):
    with pytest.raises(ManifestUnknown, match="not found"):
        _pull(store, client, f"{registry.host}/pull/nothing:here")


def test_it_refuses_a_corrupted_blob_and_leaves_nothing(registry, store, client):
    top = im.Layer([im.dir_("c"), im.file("c/data", os.urandom(300_000))])
    image = im.Image([im.busybox_layer(), top], {"Cmd": ["sh"]})
    im.push_image(registry.host, "pull/corrupt", "1", image)
    blob = registry.blob_path(top.digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises((DigestMismatch, DockwebError)):
        _pull(store, client, f"{registry.host}/pull/corrupt:1")
    assert not store.has_image(image.image_id)
    assert not store.has_layer(image.chain_ids[1])
    assert store.scratch_entries() == []
    assert store.references(image.image_id) == []


@pytest.mark.parametrize("name", sorted(im.HOSTILE))
def test_it_never_writes_outside_the_store_for_hostile_layers(registry, tmp_path, client, name):
    store = Store(str(tmp_path / "deep" / "store"))
    before = set(_walk(tmp_path))
    image = im.corpus()[name]
    im.push(registry.host, f"pull/hostile-{name.replace('_', '-')}", "1", image)
    try:
        _pull(store, client, f"{registry.host}/pull/hostile-{name.replace('_', '-')}:1")
    except DockwebError:
        assert not store.has_image(image.image_id)
    after = set(_walk(tmp_path))
    layers_root = str(tmp_path / "deep" / "store" / "layers") + "/"
    planted = [p for p in after - before if "evil" in p or "escaped" in p]
    # whatever the hostile tar managed to create lives inside one layer's diff dir
    assert all(p.startswith(layers_root) and "/diff/" in p for p in planted), planted
    for evil in ("/tmp/evil-symlink", "/etc/evil-abs", "/escaped-dotdot", "/evil-hardlink"):
        assert not os.path.lexists(evil)


def _walk(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            yield os.path.join(dirpath, n)


def test_it_resumes_a_pull_killed_mid_way(registry, tmp_path, client):
    """SIGKILL during a pull: nothing looks finished, and the next pull reuses what was done."""
    small = im.Layer([im.dir_("a"), im.file("a/small", b"small\n")])
    big_path = tmp_path / "big.tar.gz"
    big = im.large_layer(60_000_000, big_path)
    image = im.Image([im.busybox_layer(), small, big], {"Cmd": ["sh"]})
    im.push_image(registry.host, "pull/killed", "1", image)
    root = tmp_path / "store"
    code = (
        "import sys, time\n"
        "from dockweb.runtime.store import Store\n"
        "from dockweb.runtime.registry import RegistryClient\n"
        "from dockweb.runtime.pull import pull\n"
        "def slow(e):\n"
        "    if e.get('status') == 'Downloading': time.sleep(0.05)\n"
        f"pull(Store({str(root)!r}), RegistryClient(), {registry.host + '/pull/killed:1'!r},"
        " on_progress=slow, max_concurrent=1)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=os.getcwd())
    store = Store(str(root))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not store.has_layer(image.chain_ids[1]):
        time.sleep(0.02)
    assert store.has_layer(image.chain_ids[1]), "the first layers never committed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert not store.has_image(image.image_id)
    assert not store.has_layer(image.chain_ids[2])
    assert store.references(image.image_id) == []
    report = store.reconcile()
    assert report["scratch"] >= 1  # the big layer's half-unpacked scratch dir
    assert store.has_layer(image.chain_ids[1])  # finished layers survive the crash

    result, events = _pull(store, client, f"{registry.host}/pull/killed:1")
    statuses = {
        e["id"]: e["status"] for e in events if e["kind"] == "layer" and e["current"] is None
    }
    assert statuses[small.digest.split(":")[1][:12]] == "Already exists"
    assert statuses[big.digest.split(":")[1][:12]] == "Pull complete"
    assert result.image_id == image.image_id
    assert store.scratch_entries() == []


def test_it_keeps_memory_flat_on_a_large_layer(registry, tmp_path, client):
    big = im.large_layer(120_000_000, tmp_path / "huge.tar.gz")
    image = im.Image([im.busybox_layer(), big], {"Cmd": ["sh"]})
    im.push_image(registry.host, "pull/huge", "1", image)
    # VmHWM is the peak of this process's own memory map; ru_maxrss would include what the
    # forking test process held
    code = (
        "from dockweb.runtime.store import Store\n"
        "from dockweb.runtime.registry import RegistryClient\n"
        "from dockweb.runtime.pull import pull\n"
        f"pull(Store({str(tmp_path / 'store')!r}), RegistryClient(), "
        f"{registry.host + '/pull/huge:1'!r})\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_kib = int(out.stdout.strip().splitlines()[-1])
    assert peak_kib < 150 * 1024, f"peak RSS {peak_kib} KiB for a 120 MB layer"


@pytest.fixture
def small_fs(tmp_path):
    """A 3 MB tmpfs: a store on it fills up mid-pull."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_it_reports_a_full_disk_and_leaves_the_store_consistent(
    registry, tmp_path, client, small_fs
):
    big = im.large_layer(8_000_000, tmp_path / "big.tar.gz")
    image = im.Image([im.busybox_layer(), big], {"Cmd": ["sh"]})
    im.push_image(registry.host, "pull/full", "1", image)
    store = Store(str(small_fs / "store"))
    with pytest.raises(DockwebError, match="no space left on device"):
        _pull(store, client, f"{registry.host}/pull/full:1")
    assert not store.has_image(image.image_id)
    assert not store.has_layer(image.chain_ids[1])
    assert store.scratch_entries() == []  # the half-written layer is gone, space is back
    assert store.references(image.image_id) == []
