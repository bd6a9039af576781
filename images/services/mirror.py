"""The database mirror of the store: Layer, Image, ImageLayer, Repository and Reference rows
kept equal to what the store holds."""

from __future__ import annotations

import logging

from django.db import connection, transaction

from dockweb import live
from dockweb.engine import get_store
from dockweb.runtime import reference as refs
from dockweb.runtime.store import ImageRecord, LayerRecord, Store
from dockweb.runtime.units import parse_go_time
from images.models import Image, ImageLayer, Layer, Reference, Repository

log = logging.getLogger(__name__)


# -- database mirror of the store --------------------------------------------------------


def sync_after_change(store: Store) -> None:
    """Mirror the store after a change, unless the database has no tables yet.

    The CLI may run before ``manage.py migrate`` ever did (a fresh DOCKWEB_DATA): then there
    is nothing to keep in step, and the worker's start-up sync catches up later.
    """
    if Image._meta.db_table not in connection.introspection.table_names():
        log.warning("database not migrated: images not mirrored (run `manage.py migrate`)")
        return
    sync_images(store)


def sync_images(store: Store | None = None) -> None:
    """Make the Layer, Image, ImageLayer, Repository and Reference rows mirror the store.

    Atomic (one transaction) and idempotent. The store is read under its metadata lock, so
    the mirror is one consistent snapshot; only rows that differ are written (an image's
    config and layers never change for its ID), so it is cheap to run after every change.
    Layers no image uses (kept by an interrupted pull for reuse) are mirrored too.
    """
    store = store or get_store()
    with store.locked():
        images = {rec.id: rec for rec in store.images()}
        layers = store.layers()
        references = store.all_references()
    with transaction.atomic():
        layer_pks = _sync_layers(layers)
        _sync_image_rows(images, layers, layer_pks)
        _sync_references(references)
        # after the images, so that no ImageLayer still protects a vanished layer
        gone = Layer.objects.exclude(chain_id__in=list(layers)).filter(image_layers__isnull=True)
        gone.delete()
    live.publish_on_commit("images", "disk")


# the Layer columns copied from the store's LayerRecord as they are (parent is mapped to a pk)
_LAYER_FIELDS = ("diff_id", "blob_digest", "media_type", "size", "compressed_size")


def _sync_layers(layers: dict[str, LayerRecord]) -> dict[str, int]:
    """Create and update Layer rows; returns chain ID -> pk for every layer in the store."""
    existing = {la.chain_id: la for la in Layer.objects.all()}
    new = [
        Layer(chain_id=rec.chain_id, **{f: getattr(rec, f) for f in _LAYER_FIELDS})
        for chain, rec in layers.items()
        if chain not in existing
    ]
    Layer.objects.bulk_create(new, batch_size=500)
    if new:
        existing = {la.chain_id: la for la in Layer.objects.all()}
    pks = {chain: existing[chain].pk for chain in layers}
    changed = []
    for chain, rec in layers.items():
        row = existing[chain]
        want = {f: getattr(rec, f) for f in _LAYER_FIELDS}
        want["parent_id"] = pks.get(rec.parent) if rec.parent else None
        if any(getattr(row, f) != v for f, v in want.items()):
            for f, v in want.items():
                setattr(row, f, v)
            changed.append(row)
    Layer.objects.bulk_update(changed, [*_LAYER_FIELDS, "parent"], batch_size=500)
    return pks


def _image_fields(rec: ImageRecord, layers: dict[str, LayerRecord]) -> dict:
    present = [layers[c] for c in rec.layers if c in layers]
    return {
        "size": sum(la.size for la in present),
        "compressed_size": rec.compressed_size or sum(la.compressed_size for la in present),
        "parent_image_id": rec.parent,
        "last_tag_time": parse_go_time(rec.last_tag_time),
        "pulled_at": parse_go_time(rec.pulled_at),
    }


def _sync_image_rows(
    images: dict[str, ImageRecord], layers: dict[str, LayerRecord], layer_pks: dict[str, int]
) -> None:
    existing = {im.image_id: im for im in Image.objects.defer("config")}
    Image.objects.filter(pk__in=[im.pk for i, im in existing.items() if i not in images]).delete()

    new = []
    for image_id, rec in images.items():
        if image_id in existing:
            continue
        cfg = rec.config
        new.append(
            Image(
                image_id=image_id,
                created=parse_go_time(rec.created),
                os=cfg.get("os") or "",
                architecture=cfg.get("architecture") or "",
                variant=cfg.get("variant") or "",
                config=cfg,
                **_image_fields(rec, layers),
            )
        )
    Image.objects.bulk_create(new, batch_size=200)
    if new:
        pks = dict(
            Image.objects.filter(image_id__in=[im.image_id for im in new]).values_list(
                "image_id", "pk"
            )
        )
        ImageLayer.objects.bulk_create(
            [
                ImageLayer(image_id=pks[im.image_id], layer_id=layer_pks[chain], position=i)
                for im in new
                for i, chain in enumerate(images[im.image_id].layers)
                if chain in layer_pks  # a store missing a layer is repaired by pulling again
            ],
            batch_size=500,
        )

    changed = []
    fields = ["size", "compressed_size", "parent_image_id", "last_tag_time", "pulled_at"]
    for image_id, row in existing.items():
        if image_id not in images:
            continue
        want = _image_fields(images[image_id], layers)
        if any(getattr(row, f) != want[f] for f in fields):
            for f in fields:
                setattr(row, f, want[f])
            changed.append(row)
    Image.objects.bulk_update(changed, fields, batch_size=200)


def _sync_references(references: dict[str, list[refs.Reference]]) -> None:
    image_pks = dict(Image.objects.values_list("image_id", "pk"))
    wanted: dict[tuple[str, str, str], int] = {}
    familiar: dict[str, str] = {}
    for image_id, lst in references.items():
        if image_id not in image_pks:
            continue  # a reference to an image that is gone: the store's own leftover
        for r in lst:
            wanted[(r.name, r.tag or "", r.digest or "")] = image_pks[image_id]
            familiar[r.name] = r.familiar_name

    repos = {repo.name: repo for repo in Repository.objects.all()}
    Repository.objects.bulk_create(
        [Repository(name=n, familiar_name=familiar[n]) for n in familiar if n not in repos]
    )
    repo_pks = dict(Repository.objects.values_list("name", "pk"))

    have = {
        (name, tag, digest): (pk, image_pk)
        for pk, name, tag, digest, image_pk in Reference.objects.values_list(
            "pk", "repository__name", "tag", "digest", "image_id"
        )
    }
    stale = [pk for key, (pk, _image_pk) in have.items() if key not in wanted]
    Reference.objects.filter(pk__in=stale).delete()
    moved = [
        Reference(pk=have[key][0], image_id=image_pk)
        for key, image_pk in wanted.items()
        if key in have and have[key][1] != image_pk
    ]
    Reference.objects.bulk_update(moved, ["image"], batch_size=500)
    Reference.objects.bulk_create(
        [
            Reference(repository_id=repo_pks[name], tag=tag, digest=digest, image_id=image_pk)
            for (name, tag, digest), image_pk in wanted.items()
            if (name, tag, digest) not in have
        ],
        batch_size=500,
    )
    Repository.objects.filter(references__isnull=True).delete()
