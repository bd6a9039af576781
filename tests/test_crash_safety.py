"""SIGKILL at chosen points of a pull and of a removal, then the worker's start-up repair.

A child process runs the work exactly as the worker does (images.services.run_pull or
run_operation on a row of the test database) with ``DOCKWEB_CRASH_AT`` naming one of the
runtime's ``crashpoint()`` hooks, and dies there. Then the test runs the repair a restarted
worker runs (images.tasks.recover_after_restart: Store.reconcile, abandoned rows failed,
the mirror synced) and checks: nothing partial is visible, the database agrees with the
store, tmp/ is empty, and pulling again succeeds, reusing the layers finished before the
crash ("Already exists").
"""

from __future__ import annotations

import os

import pytest

from images import services
from images.models import Image, Layer, Operation, Pull, PullLayer, Reference
from tests.support import images as im
from tests.support.crash import kill_child_at

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root"),
    pytest.mark.django_db(transaction=True),
]


CHILD = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockweb.settings")
import django
django.setup()
from images import services
getattr(services, sys.argv[1])(int(sys.argv[2]))
"""

# Where a pull is killed (max 1 concurrent download, so "#N" counts are deterministic).
PULL_POINTS = [
    "pull.manifest",  # nothing fetched but the manifest
    "pull.config",
    "pull.layer.scratch",  # before any layer byte
    "pull.layer.reading#2",  # mid first layer
    "pull.layer.reading#9",  # mid the large third layer, two layers committed
    "pull.layer.unpacked",  # unpacked, not verified
    "pull.layer.verified#2",  # verified, not committed
    "store.commit_layer.recorded",  # layer.json written in scratch
    "store.commit_layer.linked#2",  # short link made, layer not renamed into place
    "pull.layer.committed",  # between two layer commits
    "pull.layer.committed#3",  # all layers committed
    "pull.layers_done",
    "store.put_image.written",  # image record complete in scratch, not renamed
    "pull.image_recorded",  # image record, no manifest, no references
    "store.atomic_write",  # manifest half-written
    "pull.manifest_recorded",
    "pull.digest_reference",  # digest reference, no tag
    "store.atomic_write#3",  # tag reference being written
    "pull.references_recorded",  # store done, database not synced
]

REMOVE_POINTS = [
    "store.remove.untagged",  # tag gone, digest reference and image left
    "store.atomic_write",  # references file being rewritten
    "store.delete_image.hidden",  # image record moved to tmp/
    "store.delete_image.gone",  # image record deleted, layers all there
    "store.delete_image.layer",  # before the first layer goes
    "store.delete_layer.hidden",  # top layer out of sight, its link still there
    "store.delete_layer.hidden#2",  # second layer mid-deletion
    "store.delete_layer.hidden#3",  # last layer mid-deletion
    "store.delete_layer.files_gone",  # top layer's files freed, not yet a skeleton
    "store.delete_layer.files_gone#3",  # the last layer's too
]


@pytest.fixture(scope="module")
def image(registry, tmp_path_factory):
    small = im.Layer([im.dir_("app"), im.file("app/small", b"small\n")])
    big = im.large_layer(4_000_000, tmp_path_factory.mktemp("crash") / "big.blob", seed=3)
    img = im.Image([im.busybox_layer(), small, big], {"Cmd": ["sh"]})
    im.push_image(registry.host, "crash/app", "1", img)
    return img


@pytest.fixture
def store(settings, tmp_path):
    settings.DOCKWEB_ROOT = tmp_path / "store"
    settings.DOCKWEB_MAX_CONCURRENT_DOWNLOADS = 1
    return services.get_store()


def run_child(settings, function: str, row_id: int, crash_at: str) -> None:
    kill_child_at(
        settings, CHILD, [function, str(row_id)], crash_at, DOCKWEB_MAX_CONCURRENT_DOWNLOADS="1"
    )


def recover() -> None:
    from images.tasks import recover_after_restart

    recover_after_restart()


def assert_consistent(store) -> None:
    """Nothing partial in sight, no scratch left, and the database mirrors the store."""
    assert store.scratch_entries() == []
    layers = store.layers()
    assert sorted(layers) == sorted(
        "sha256:" + n for n in os.listdir(store.layers_dir) if n[0] != "."
    )
    for chain, rec in layers.items():
        assert os.path.isdir(store.layer_diff(chain)), chain
        assert os.path.realpath(os.path.join(store.links_dir, rec.link)) == os.path.realpath(
            store.layer_diff(chain)
        ), f"layer {chain} lost its link"
        assert not rec.parent or rec.parent in layers, f"layer {chain} without its parent"
    for link in os.listdir(store.links_dir):
        assert os.path.exists(os.path.join(store.links_dir, link)), f"dangling link {link}"
    ids = store.image_ids()
    assert sorted(ids) == sorted("sha256:" + n for n in os.listdir(store.images_dir))
    for image_id in ids:
        assert all(c in layers for c in store.get_image(image_id).layers)
    refs = store.all_references()
    assert all(image_id in ids for image_id in refs)

    assert set(Image.objects.values_list("image_id", flat=True)) == set(ids)
    assert set(Layer.objects.values_list("chain_id", flat=True)) == set(layers)
    db_refs = {
        (image_id, name, tag, digest)
        for image_id, name, tag, digest in Reference.objects.values_list(
            "image__image_id", "repository__name", "tag", "digest"
        )
    }
    store_refs = {
        (image_id, r.name, r.tag or "", r.digest or "")
        for image_id, lst in refs.items()
        for r in lst
    }
    assert db_refs == store_refs


def pull_again(store, registry, image) -> Pull:
    """Pull once more; layers already there must be reused, not downloaded."""
    had_image = store.has_image(image.image_id)
    kept = [c for c in image.chain_ids if store.has_layer(c)]
    row = Pull.objects.create(
        reference=f"{registry.host}/crash/app:1", normalized=f"{registry.host}/crash/app:1"
    )
    services.run_pull(row.id)
    row.refresh_from_db()
    assert (row.status, row.error) == ("done", "")
    assert store.has_image(image.image_id)
    statuses = dict(PullLayer.objects.filter(pull=row).values_list("position", "status"))
    if had_image:
        # as dockerd, an image already here is only re-referenced (no layer events); its
        # page lists each layer as already there
        assert statuses == dict.fromkeys(range(len(image.chain_ids)), "Already exists")
    else:
        for i, chain in enumerate(image.chain_ids):
            expected = "Already exists" if chain in kept else "Pull complete"
            assert statuses[i] == expected, (i, statuses)
    refs = sorted(r.familiar_string() for r in store.references(image.image_id))
    assert refs == sorted(
        [f"{registry.host}/crash/app:1", f"{registry.host}/crash/app@{image.manifest_digest}"]
    )
    assert_consistent(store)
    return row


@pytest.mark.parametrize("point", PULL_POINTS)
def test_a_pull_killed_at_any_point_recovers(settings, store, registry, image, point):
    row = Pull.objects.create(
        reference=f"{registry.host}/crash/app:1", normalized=f"{registry.host}/crash/app:1"
    )
    run_child(settings, "run_pull", row.id, point)
    row.refresh_from_db()
    assert row.status == "running"  # what the dead process left

    recover()

    row.refresh_from_db()
    assert (row.status, row.error) == ("failed", services.WORKER_STOPPED)
    # an image is there only if its record was renamed into place, and then completely
    if store.has_image(image.image_id):
        assert all(store.has_layer(c) for c in image.chain_ids)
    assert_consistent(store)
    pull_again(store, registry, image)


@pytest.mark.parametrize("point", REMOVE_POINTS)
def test_a_removal_killed_at_any_point_recovers(settings, store, registry, image, point):
    services.pull_image(f"{registry.host}/crash/app:1")
    op = Operation.objects.create(
        kind=Operation.Kind.REMOVE,
        args={"ref": f"{registry.host}/crash/app:1", "force": False, "prune": True},
    )
    run_child(settings, "run_operation", op.id, point)

    recover()

    op.refresh_from_db()
    assert op.status == "failed" and "worker stopped" in op.error
    assert_consistent(store)
    pull_again(store, registry, image)
    # and the removal, asked again, finishes the job
    records = services.remove_image(f"{registry.host}/crash/app:1")
    assert ("Deleted", image.image_id) in records
    assert store.image_ids() == [] and store.layers() == {}
    assert_consistent(store)
