"""Removals and tags run as operations: Docker's records, bytes freed, summaries, conflicts."""

from __future__ import annotations

import os

import pytest
from django.utils import translation

from dockweb.runtime.errors import InvalidReference
from dockweb.runtime.units import human_size
from images import services
from images.models import Image, Layer, Operation, Reference
from tests.support import images as im

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(autouse=True)
def english():
    # summaries are translated; another test's request may have left a language active
    with translation.override("en"):
        yield


@pytest.fixture(scope="module")
def pair(registry):
    return im.push_shared_base_pair(registry.host, "ops")


@pytest.fixture
def pulled(store, registry, pair):
    services.pull_image(f"{registry.host}/ops/a:1")
    services.pull_image(f"{registry.host}/ops/b:1")
    return pair


def _remove(ref: str, **kw) -> Operation:
    op = services.start_removal(ref, **kw)
    services.run_operation(op.id)
    op.refresh_from_db()
    return op


def test_it_only_untags_when_other_references_keep_the_image(store, registry, pulled):
    a, _ = pulled
    services.tag_image(f"{registry.host}/ops/a:1", "team/a:2")
    op = _remove("team/a:2")
    assert op.status == "done", op.error
    assert op.result == [["Untagged", "team/a:2"]]
    assert (op.freed_bytes, op.deleted_layers, op.image_id) == (0, 0, a.image_id)
    # ops/a:1 and its digest reference are left
    assert op.references_left == 2
    # one tag left, and the digest reference the pull recorded
    assert services.untag_summary(op) == (
        "Untagged only: 1 other tag keeps this image (and 1 digest reference)"
    )
    assert not Reference.objects.filter(repository__name="docker.io/team/a").exists()


def test_it_deletes_the_image_and_its_own_layers(store, registry, pulled):
    a, _ = pulled
    sizes = {c: la.size for c, la in store.layers().items()}
    op = _remove(f"{registry.host}/ops/a:1")
    assert op.status == "done", op.error
    assert op.result == [
        ["Untagged", f"{registry.host}/ops/a:1"],
        ["Untagged", f"{registry.host}/ops/a@{a.manifest_digest}"],
        ["Deleted", a.image_id],
        ["Deleted", a.chain_ids[2]],  # the layers b shares stay
    ]
    assert op.freed_bytes == sizes[a.chain_ids[2]]
    assert op.deleted_layers == 1
    assert services.untag_summary(op) == (
        f"Deleted: the image and 1 layer, {human_size(sizes[a.chain_ids[2]], 3)} freed"
    )
    assert not Image.objects.filter(image_id=a.image_id).exists()
    assert not Layer.objects.filter(chain_id=a.chain_ids[2]).exists()


def test_it_flags_a_conflict_that_force_resolves(store, registry, pulled):
    a, _ = pulled
    services.tag_image(f"{registry.host}/ops/a:1", "team/a:2")
    op = _remove(a.image_id[7:19])
    assert op.status == "failed"
    assert op.conflict
    assert op.error == (
        f"conflict: unable to delete {a.image_id[7:19]} (must be forced) - image is referenced "
        "in multiple repositories"
    )
    assert services.untag_summary(op) == ""
    assert store.has_image(a.image_id)

    forced = _remove(a.image_id[7:19], force=True)
    assert forced.status == "done", forced.error
    assert ["Deleted", a.image_id] in forced.result
    assert not Image.objects.filter(image_id=a.image_id).exists()


def test_it_records_a_missing_image_without_a_conflict(store, pulled):
    op = _remove("nothing/here:1")
    assert (op.status, op.conflict) == ("failed", False)
    assert op.error == "No such image: nothing/here:1"


def test_it_refuses_an_invalid_reference_before_queueing(store):
    with pytest.raises(InvalidReference):
        services.start_removal("UPPER:1")
    with pytest.raises(InvalidReference):
        services.start_removal("  ")
    assert not Operation.objects.exists()


def test_it_keeps_parents_with_no_prune(store, registry, pulled):
    a, _ = pulled
    op = _remove(f"{registry.host}/ops/a:1", prune=False)
    assert op.status == "done"
    assert op.args == {"ref": f"{registry.host}/ops/a:1", "force": False, "prune": False}


def test_it_tags_an_image(store, registry, pulled):
    a, _ = pulled
    op = services.start_tag(f"{registry.host}/ops/a:1", "team/app")
    services.run_operation(op.id)
    op.refresh_from_db()
    assert op.status == "done", op.error
    assert op.result == [["Tagged", "team/app:latest"]]
    assert op.references_left == 3
    ref = Reference.objects.get(repository__familiar_name="team/app")
    assert (ref.tag, ref.image.image_id) == ("latest", a.image_id)


def test_it_refuses_a_digest_as_tag_target(store):
    with pytest.raises(Exception, match="refusing to create a tag with a digest reference"):
        services.start_tag("x", "team/app@sha256:" + "a" * 64)


def test_it_does_nothing_on_a_duplicate_delivery(store, registry, pulled):
    op = _remove(f"{registry.host}/ops/b:1")
    result, finished = op.result, op.finished_at
    services.run_operation(op.id)
    op.refresh_from_db()
    assert (op.status, op.result, op.finished_at) == ("done", result, finished)
