"""sync_images: the database mirrors the real store after pulls, removals and tags."""

from __future__ import annotations

import os

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dockweb.runtime.errors import InvalidReference
from images import services
from images.models import Image, ImageLayer, Layer, Reference, Repository
from tests.support import images as im

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root"),
    pytest.mark.django_db,
]


@pytest.fixture(scope="module")
def pair(registry):
    return im.push_shared_base_pair(registry.host, "sync")


def test_it_mirrors_layers_images_and_references_after_a_pull(store, registry, pair):
    a, b = pair
    services.pull_image(f"{registry.host}/sync/a:1")
    services.pull_image(f"{registry.host}/sync/b:1")

    assert set(Image.objects.values_list("image_id", flat=True)) == {a.image_id, b.image_id}
    assert Layer.objects.count() == 4  # busybox and the middle layer are shared
    on_disk = store.layers()
    for layer in Layer.objects.all():
        rec = on_disk[layer.chain_id]
        assert (layer.diff_id, layer.size, layer.compressed_size, layer.blob_digest) == (
            rec.diff_id, rec.size, rec.compressed_size, rec.blob_digest
        )
        assert (layer.parent.chain_id if layer.parent else "") == rec.parent

    row = Image.objects.get(image_id=a.image_id)
    assert [la.chain_id for la in row.ordered_layers()] == a.chain_ids
    assert row.size == sum(on_disk[c].size for c in a.chain_ids)
    assert row.compressed_size == sum(la.size for la in a.layers)
    assert (row.os, row.architecture, row.variant) == ("linux", "amd64", "")
    assert row.created.isoformat() == "2024-01-01T00:00:00+00:00"
    assert row.config == a.config
    assert row.last_tag_time is not None
    shared = ImageLayer.objects.filter(layer__chain_id=a.chain_ids[1])
    assert {il.image.image_id for il in shared} == {a.image_id, b.image_id}

    repo = Repository.objects.get(familiar_name=f"{registry.host}/sync/a")
    assert repo.name == f"{registry.host}/sync/a"
    assert sorted(r.familiar for r in row.references.all()) == sorted(
        [f"{registry.host}/sync/a:1", f"{registry.host}/sync/a@{a.manifest_digest}"]
    )
    assert not row.is_dangling


def test_it_follows_tags_and_removals(store, registry, pair):
    a, b = pair
    services.pull_image(f"{registry.host}/sync/a:1")
    services.pull_image(f"{registry.host}/sync/b:1")
    services.tag_image(f"{registry.host}/sync/a:1", "team/app:v2")
    v2 = Reference.objects.get(repository__name="docker.io/team/app", tag="v2")
    assert v2.image.image_id == a.image_id
    assert Repository.objects.get(name="docker.io/team/app").familiar_name == "team/app"

    services.tag_image(f"{registry.host}/sync/b:1", "team/app:v2")  # the tag moves
    v2.refresh_from_db()
    assert v2.image.image_id == b.image_id

    services.remove_image("team/app:v2")
    assert not Repository.objects.filter(name="docker.io/team/app").exists()
    services.remove_image(f"{registry.host}/sync/a:1")
    assert not Image.objects.filter(image_id=a.image_id).exists()
    # a's own top layer went with it; the layers b shares stayed
    assert set(Layer.objects.values_list("chain_id", flat=True)) == set(b.chain_ids)


def test_it_shows_an_image_without_references_as_dangling(store, registry, pair):
    a, _ = pair
    services.pull_image(f"{registry.host}/sync/a:1")
    for r in store.references(a.image_id):
        store.delete_reference(r)
    services.sync_images(store)
    row = Image.objects.get(image_id=a.image_id)
    assert row.is_dangling
    assert not Repository.objects.exists()


def test_it_keeps_layers_an_interrupted_pull_left(store, registry, pair):
    a, _ = pair
    services.pull_image(f"{registry.host}/sync/a:1")
    # an image record gone while its layers stay: what a pull interrupted before put_image leaves
    for r in store.references(a.image_id):
        store.delete_reference(r)
    os.rename(store.image_dir(a.image_id), os.path.join(store.tmp_dir, "gone"))
    services.sync_images(store)
    assert not Image.objects.exists()
    assert set(Layer.objects.values_list("chain_id", flat=True)) == set(a.chain_ids)
    assert not ImageLayer.objects.exists()


def test_it_writes_nothing_when_the_store_did_not_change(store, registry, pair):
    services.pull_image(f"{registry.host}/sync/a:1")
    services.pull_image(f"{registry.host}/sync/b:1")
    with CaptureQueriesContext(connection) as ctx:
        services.sync_images(store)
    writes = [
        q["sql"] for q in ctx.captured_queries
        if q["sql"].split()[0].upper() in ("INSERT", "UPDATE", "DELETE")
    ]
    assert writes == []
    assert len(ctx.captured_queries) <= 12


def test_it_empties_the_mirror_for_an_empty_store(store, registry, pair):
    services.pull_image(f"{registry.host}/sync/a:1")
    empty = type(store)(str(store.root) + "-empty")
    services.sync_images(empty)
    assert not Image.objects.exists()
    assert not Layer.objects.exists()
    assert not Reference.objects.exists()
    assert not Repository.objects.exists()


def test_it_normalizes_references_as_docker_pull_does():
    assert services.normalize_reference("ubuntu") == "docker.io/library/ubuntu:latest"
    assert services.normalize_reference(" team/app:1 ") == "docker.io/team/app:1"
    assert services.normalize_reference("localhost:5000/x@sha256:" + "a" * 64) == (
        "localhost:5000/x@sha256:" + "a" * 64
    )
    with pytest.raises(InvalidReference, match="invalid reference format"):
        services.normalize_reference("Ubuntu:latest!")
