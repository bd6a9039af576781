"""Pulls and removals at the same time on one store: no duplicate downloads, no deadlock,
Docker's answers for racing removals.

Every pull here goes through a pass-through FaultProxy, which counts the GETs of each blob.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dockweb.runtime.errors import ImageNotFound
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store
from tests.support import images as im
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def proxy(registry):
    with FaultProxy(registry.host) as p:
        yield p


@pytest.fixture(scope="module")
def family(registry):
    """Ten images on one three-layer base, each with its own top layer, in ten repositories."""
    base = [
        im.busybox_layer(),
        im.Layer([im.dir_("shared"), im.file("shared/one", os.urandom(300_000))]),
        im.Layer([im.file("shared/two", os.urandom(300_000))]),
    ]
    images = []
    for i in range(10):
        top = im.Layer([im.file(f"own-{i}", os.urandom(50_000))])
        img = im.Image([*base, top], {"Cmd": ["sh"], "Labels": {"n": str(i)}})
        im.push_image(registry.host, f"conc/img{i}", "1", img)
        images.append(img)
    return images


def assert_clean(store: Store) -> None:
    assert store.scratch_entries() == []
    for chain, rec in store.layers().items():
        assert os.path.isdir(os.path.join(store.links_dir, rec.link)), chain


def test_ten_threads_pulling_images_that_share_layers_fetch_each_blob_once(tmp_path, proxy, family):
    root = str(tmp_path / "store")
    barrier = threading.Barrier(10)

    def one(i: int):
        barrier.wait()
        # a store and a client each, as ten separate workers would have
        return pull(Store(root), RegistryClient(), f"{proxy.host}/conc/img{i}:1")

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))

    assert [r.image_id for r in results] == [img.image_id for img in family]
    store = Store(root)
    for img in family:
        assert store.has_image(img.image_id)
        for layer in img.layers:
            assert proxy.gets(layer.digest) == 1, layer
    assert len(store.layers()) == 3 + 10
    assert_clean(store)


def test_ten_processes_pulling_images_that_share_layers_fetch_each_blob_once(
    tmp_path, proxy, family
):
    root = str(tmp_path / "store")
    start_at = time.time() + 1.5  # all ten start together, once their imports are done
    code = (
        "import sys, time\n"
        "from dockweb.runtime.store import Store\n"
        "from dockweb.runtime.registry import RegistryClient\n"
        "from dockweb.runtime.pull import pull\n"
        f"time.sleep(max(0, {start_at} - time.time()))\n"
        f"pull(Store({root!r}), RegistryClient(), sys.argv[1])\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, f"{proxy.host}/conc/img{i}:1"],
            cwd=REPO,
            stderr=subprocess.PIPE,
        )
        for i in range(10)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = Store(root)
    for img in family:
        assert store.has_image(img.image_id)
        for layer in img.layers:
            assert proxy.gets(layer.digest) == 1, layer
    assert_clean(store)


def test_two_pulls_each_holding_a_layer_the_other_needs_both_finish(tmp_path, proxy, family):
    """B holds the bottom layer (slow to download) and fetches one layer at a time; A then
    takes the layers above it. Once B committed the bottom layer, A must reuse it rather
    than wait for B to end, since B is waiting for A's next layer."""
    a, b = family[0], family[1]
    root = str(tmp_path / "store")
    proxy.inject(f"/conc/img1/blobs/{b.layers[0].digest}$", "stall", after=1000, seconds=1.5)
    results: dict[str, object] = {}

    def run(name, ref, concurrent):
        try:
            results[name] = pull(Store(root), RegistryClient(), ref, max_concurrent=concurrent)
        except Exception as e:  # noqa: BLE001 - reported below
            results[name] = e

    tb = threading.Thread(target=run, args=("b", f"{proxy.host}/conc/img1:1", 1))
    tb.start()
    time.sleep(0.5)  # B holds the bottom layer's lock, downloading it
    ta = threading.Thread(target=run, args=("a", f"{proxy.host}/conc/img0:1", 3))
    ta.start()
    ta.join(30)
    tb.join(30)
    assert not ta.is_alive() and not tb.is_alive(), "the two pulls deadlocked"
    assert results["a"].image_id == a.image_id
    assert results["b"].image_id == b.image_id
    for layer in a.layers[:3]:
        assert proxy.gets(layer.digest) == 1
    assert_clean(Store(root))


@pytest.fixture
def pulled(tmp_path, registry, family):
    store = Store(str(tmp_path / "store"))
    pull(store, RegistryClient(), f"{registry.host}/conc/img0:1")
    return store, family[0], f"{registry.host}/conc/img0:1"


def test_two_removals_of_one_tag_at_once_one_wins_the_other_finds_nothing(pulled):
    store, image, ref = pulled
    barrier = threading.Barrier(2)

    def remove():
        barrier.wait()
        try:
            return Store(store.root).remove(ref)
        except ImageNotFound as e:
            return e

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: remove(), range(2)))
    errors = [o for o in outcomes if isinstance(o, ImageNotFound)]
    done = [o for o in outcomes if not isinstance(o, ImageNotFound)]
    assert len(errors) == 1 and len(done) == 1
    assert str(errors[0]) == f"No such image: {ref}"
    assert ("Deleted", image.image_id) in done[0]
    assert store.image_ids() == [] and store.layers() == {}
    assert_clean(store)


def test_two_processes_removing_one_tag_at_once_one_wins(pulled, tmp_path):
    store, image, ref = pulled
    start_at = time.time() + 1.0
    code = (
        "import sys, time\n"
        "from dockweb.runtime.store import Store\n"
        "from dockweb.runtime.errors import ImageNotFound\n"
        f"time.sleep(max(0, {start_at} - time.time()))\n"
        "try:\n"
        f"    Store({store.root!r}).remove(sys.argv[1])\n"
        "except ImageNotFound as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, ref], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [(p.communicate(timeout=60)[0], p.returncode) for p in procs]
    assert sorted(code for _, code in outs) == [0, 3]
    assert [o.strip() for o, code in outs if code == 3] == [f"No such image: {ref}"]
    assert store.image_ids() == [] and store.layers() == {}
    assert_clean(store)


def test_a_removal_racing_a_pull_of_the_same_image_leaves_it_whole(pulled, registry):
    """The pull holds the layers it reuses; the removal skips what it cannot lock."""
    store, image, ref = pulled
    for _ in range(5):
        with ThreadPoolExecutor(2) as pool:
            f_pull = pool.submit(pull, Store(store.root), RegistryClient(), ref)
            f_rm = pool.submit(lambda: _remove_quietly(Store(store.root), ref))
            f_pull.result()
            f_rm.result()
        if store.has_image(image.image_id):
            assert all(store.has_layer(c) for c in image.chain_ids)
        store.reconcile()
        assert_clean(store)


def _remove_quietly(store: Store, ref: str):
    try:
        return store.remove(ref)
    except ImageNotFound:
        return None
