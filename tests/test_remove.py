"""Image removal with Docker Engine's semantics: Untagged vs Deleted, conflicts, shared layers."""

from __future__ import annotations

import os

import pytest

from dockweb.runtime.errors import Conflict, ImageNotFound
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store
from tests.support import images as im

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "store"))


@pytest.fixture(scope="module")
def pushed(registry):
    """Images pushed once for the module: name -> (reference, Image)."""
    a, b = im.shared_base_pair()
    out = {}
    for name, image in {"a": a, "b": b, "solo": im.with_symlinks()}.items():
        im.push_image(registry.host, f"rm/{name}", "1", image)
        out[name] = (f"{registry.host}/rm/{name}:1", image)
    return out


def _pull(store, ref):
    return pull(store, RegistryClient(), ref)


def test_it_only_untags_while_another_tag_keeps_the_image(registry, store, pushed):
    ref, image = pushed["solo"]
    _pull(store, ref)
    store.tag(ref, "other/name:2")
    repo = ref.rsplit(":", 1)[0]
    # the repository's digest reference goes with its last tag, as dockerd does
    assert store.remove(ref) == [
        ("Untagged", ref),
        ("Untagged", f"{repo}@{image.manifest_digest}"),
    ]
    assert store.has_image(image.image_id)
    assert all(store.has_layer(c) for c in image.chain_ids)


def test_it_untags_one_of_two_tags_of_a_repository(registry, store, pushed):
    ref, image = pushed["solo"]
    _pull(store, ref)
    second = ref.rsplit(":", 1)[0] + ":2"
    store.tag(ref, second)
    assert store.remove(ref) == [("Untagged", ref)]
    assert [r.familiar_string() for r in store.references(image.image_id)] == sorted(
        [second, f"{ref.rsplit(':', 1)[0]}@{image.manifest_digest}"]
    )


def test_it_deletes_the_image_and_its_layers_with_the_last_reference(registry, store, pushed):
    ref, image = pushed["solo"]
    _pull(store, ref)
    store.tag(ref, "other/name:2")
    store.remove(ref)
    records = store.remove("other/name:2")
    assert records == [
        ("Untagged", "other/name:2"),
        ("Deleted", image.image_id),
        *[("Deleted", c) for c in reversed(image.chain_ids)],
    ]
    assert not store.has_image(image.image_id)
    assert store.layers() == {}
    # the files are gone at once, the empty directories stay a while (Store.SKELETON_AGE)
    assert store.scratch_entries() == []
    assert [n for n in os.listdir(store.layers_dir) if not n.startswith(".skeleton-")] == []
    for skeleton in store.skeletons():
        for _dirpath, _dirs, files in os.walk(os.path.join(store.layers_dir, skeleton)):
            assert files == []


def test_it_untags_the_digest_reference_of_the_same_repository(registry, store, pushed):
    ref, image = pushed["solo"]
    _pull(store, ref)
    repo = ref.rsplit(":", 1)[0]
    records = store.remove(ref)
    assert records == [
        ("Untagged", ref),
        ("Untagged", f"{repo}@{image.manifest_digest}"),
        ("Deleted", image.image_id),
        *[("Deleted", c) for c in reversed(image.chain_ids)],
    ]


def test_it_keeps_shared_layers(registry, store, pushed):
    ref_a, a = pushed["a"]
    ref_b, b = pushed["b"]
    _pull(store, ref_a)
    _pull(store, ref_b)
    records = store.remove(ref_a)
    deleted = [v for k, v in records if k == "Deleted"]
    assert deleted == [a.image_id, a.chain_ids[2]]  # base and middle layers stay for b
    assert store.has_layer(b.chain_ids[1]) and store.has_layer(b.chain_ids[0])
    records = store.remove(ref_b)
    assert [v for k, v in records if k == "Deleted"] == [b.image_id, *reversed(b.chain_ids)]


def test_it_removes_by_short_id_when_one_repository_refers(registry, store, pushed):
    ref, image = pushed["solo"]
    _pull(store, ref)
    short = image.image_id.split(":")[1][:12]
    repo = ref.rsplit(":", 1)[0]
    records = store.remove(short)
    assert records[:2] == [("Untagged", ref), ("Untagged", f"{repo}@{image.manifest_digest}")]
    assert records[2] == ("Deleted", image.image_id)


def test_it_refuses_an_id_referenced_in_several_repositories_unless_forced(registry, store, pushed):
    ref, image = pushed["solo"]
    _pull(store, ref)
    store.tag(ref, "second/repo:x")
    short = image.image_id.split(":")[1][:12]
    with pytest.raises(Conflict) as exc:
        store.remove(short)
    assert str(exc.value) == (
        f"conflict: unable to delete {short} (must be forced) - image is referenced in "
        "multiple repositories"
    )
    assert store.has_image(image.image_id)
    records = store.remove(image.image_id, force=True)
    untagged = [v for k, v in records if k == "Untagged"]
    repo = ref.rsplit(":", 1)[0]
    # every reference, in the order of their full names, as dockerd lists them
    assert untagged == [ref, f"{repo}@{image.manifest_digest}", "second/repo:x"]
    assert not store.has_image(image.image_id)


def test_it_removes_a_digest_reference_alone(registry, store, pushed):
    ref, image = pushed["solo"]
    _pull(store, ref)
    repo = ref.rsplit(":", 1)[0]
    digest_ref = f"{repo}@{image.manifest_digest}"
    assert store.remove(digest_ref) == [("Untagged", digest_ref)]
    assert store.has_image(image.image_id)


def test_it_says_no_such_image(store):
    with pytest.raises(ImageNotFound) as exc:
        store.remove("nope")
    assert str(exc.value) == "No such image: nope:latest"


def test_it_refuses_removing_an_image_a_container_uses(registry, store, pushed):
    ref, image = pushed["solo"]
    _pull(store, ref)
    containers = [("c0ffee" * 10 + "abcd", image.image_id, False)]
    with pytest.raises(Conflict, match="must force"):
        store.remove(ref, containers=containers)
    short = image.image_id.split(":")[1][:12]
    with pytest.raises(Conflict) as exc:
        store.remove(
            image.image_id, containers=[("c0ffee" * 10 + "abcd", image.image_id, True)], force=True
        )
    assert str(exc.value) == (
        f"conflict: unable to delete {short} (cannot be forced) - image is being used by "
        "running container c0ffeec0ffee"
    )


def test_it_unmounts_and_deletes_a_mounted_image(registry, store, pushed):
    ref, image = pushed["solo"]
    _pull(store, ref)
    path = store.mount_image(image.image_id)
    assert os.path.exists(os.path.join(path, "bin/busybox"))
    store.remove(ref)
    assert not os.path.ismount(path)
    assert not store.has_image(image.image_id)


def test_it_keeps_layers_a_pull_holds_and_prunes_them_later(registry, store, pushed):
    ref, image = pushed["solo"]
    _pull(store, ref)
    top = image.chain_ids[-1]
    held = store.layer_lock(top)
    assert held.acquire(shared=True)  # as a running pull holds the layers it relies on
    try:
        records = store.remove(ref)
    finally:
        held.release()
    assert ("Deleted", image.image_id) in records
    assert ("Deleted", top) not in records  # in use: not deleted under the pull
    assert store.has_layer(top)
    assert store.reconcile()["orphan_layers"] == 0  # kept: a later pull may reuse them
    report = store.reconcile(orphan_layers=True)
    assert report["orphan_layers"] == len(image.chain_ids)
    assert store.layers() == {}
