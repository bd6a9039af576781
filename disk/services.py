"""Disk usage and prune, for the CLI (``system df``, ``... prune``), the worker and the pages.

``disk_usage`` reads the runtime (CLI, worker); ``disk_usage_from_db`` builds the same
``types.DiskUsage`` shape from the database mirrors (pages), so both are summarised by
``dockweb.runtime.diskusage.summary``. A prune from the page is a ``PruneOperation``: the
page shows ``prune_preview`` and the worker (``run_prune``) removes exactly those items.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Count

from containers.models import Container, Volume
from containers.services import inspect_container, sync_containers, tables_ready
from disk.models import PruneOperation, VolumeUsage
from dockweb import jobs
from dockweb.docker.ps import container_summary
from dockweb.engine import get_manager, get_store
from dockweb.runtime import diskusage, imagelist
from dockweb.runtime.units import human_size
from images.models import Image, ImageLayer, Layer, Reference
from images.services.mirror import sync_after_change

log = logging.getLogger(__name__)


def _runtime():
    mgr = get_manager()
    return mgr.store, mgr


def _sync() -> None:
    sync_after_change(get_store())
    sync_containers()


# -- system df ---------------------------------------------------------------------------


def disk_usage() -> dict:
    """``types.DiskUsage`` from the runtime; containers shaped as ``docker ps`` sees them.

    Also records the volumes' sizes for the pages (VolumeUsage).
    """
    store, mgr = _runtime()

    def shape(c, size):  # without ps's own keys (_created_ns, _health)
        s = container_summary(inspect_container(c, mgr), size)
        return {k: v for k, v in s.items() if not k.startswith("_")}

    du = diskusage.disk_usage(store, mgr, container_summary=shape)
    _record_volume_sizes({v["Name"]: v["UsageData"]["Size"] for v in du["Volumes"]})
    return du


def _record_volume_sizes(sizes: dict[str, int]) -> None:
    if not tables_ready():
        return
    with transaction.atomic():
        for name, size in sizes.items():
            VolumeUsage.objects.update_or_create(name=name, defaults={"size": size})
        VolumeUsage.objects.exclude(name__in=list(sizes)).delete()


def measure_volumes() -> None:
    """Walk every volume's data and record its size (the worker; pages cannot read it)."""
    from dockweb.runtime.volumes import dir_size

    _, mgr = _runtime()
    _record_volume_sizes({v.name: dir_size(v.mountpoint) for v in mgr.volumes.list()})


def disk_usage_from_db() -> dict:
    """``types.DiskUsage`` from the database mirrors, for the pages. Volume sizes are the
    last measured (-1, Docker's "unknown", for a volume never measured). Each image also
    carries ``pk``, ``CompressedSize`` and ``Layers`` (layer pks, bottom first)."""
    images = list(
        Image.objects.values(
            "pk", "image_id", "created", "size", "compressed_size", "parent_image_id", "config"
        )
    )
    layer_sizes = dict(Layer.objects.values_list("pk", "size"))
    layers_of: dict[int, list[int]] = {}
    for image_pk, layer_pk in ImageLayer.objects.order_by("image_id", "position").values_list(
        "image_id", "layer_id"
    ):
        layers_of.setdefault(image_pk, []).append(layer_pk)
    refcount = imagelist.layer_users(layers_of.values())
    refs: dict[int, list[Reference]] = {}
    for r in Reference.objects.select_related("repository"):
        refs.setdefault(r.image_id, []).append(r)
    containers = list(Container.objects.all())
    users: dict[str, int] = {}
    for c in containers:
        users[c.image_id] = users.get(c.image_id, 0) + 1
    parents = imagelist.with_children(im["parent_image_id"] for im in images)
    summaries = []
    for im in images:
        rs = sorted(refs.get(im["pk"], []), key=lambda r: r.familiar)
        tags = [r.familiar for r in rs if r.tag]
        digests = [r.familiar for r in rs if r.digest and not r.tag]
        if not imagelist.listed(
            tagged=bool(tags), referenced=bool(rs), has_child=im["image_id"] in parents
        ):
            continue
        if not rs:
            tags, digests = list(imagelist.NONE_TAGS), list(imagelist.NONE_DIGESTS)
        own = layers_of.get(im["pk"], [])
        shared = imagelist.shared_size(own, refcount, layer_sizes)
        summaries.append(
            {
                "pk": im["pk"],
                "Id": im["image_id"],
                "RepoTags": tags,
                "RepoDigests": digests,
                "Created": int(im["created"].timestamp()) if im["created"] else 0,
                "Size": im["size"],
                "VirtualSize": im["size"],
                "SharedSize": shared,
                "CompressedSize": im["compressed_size"],
                "Containers": users.get(im["image_id"], 0),
                "Labels": (im["config"].get("config") or {}).get("Labels"),
                "Layers": own,
            }
        )
    summaries.sort(key=lambda s: (s["Created"], s["Id"]), reverse=True)
    sizes = dict(VolumeUsage.objects.values_list("name", "size"))
    volume_users: dict[str, int] = {}
    for c in containers:
        for m in c.mounts:
            if m.get("Type") == "volume":
                volume_users[m.get("Name")] = volume_users.get(m.get("Name"), 0) + 1
    return {
        "LayersSize": sum(layer_sizes[la] for la in refcount),
        "Images": summaries,
        "Containers": [
            {
                "Id": c.container_id,
                "Names": ["/" + c.name],
                "Image": c.image,
                "ImageID": c.image_id,
                "State": c.status,
                "SizeRw": c.size_rw or 0,
                "SizeRootFs": c.size_root_fs or 0,
            }
            for c in containers
        ],
        "Volumes": [
            {
                "Name": v.name,
                "Driver": v.driver,
                "UsageData": {
                    "Size": sizes.get(v.name, -1),
                    "RefCount": volume_users.get(v.name, 0),
                },
            }
            for v in Volume.objects.all()
        ],
        "BuildCache": [],
        "BuilderSize": 0,
    }


# -- prune from the CLI (the runtime, at once) -------------------------------------------


def prune_images(*, all: bool = False, filters: dict[str, list[str]] | None = None):
    """``docker image prune [-a]``: (records, reclaimed bytes). Orphan layers go too."""
    store, mgr = _runtime()
    try:
        records, space, _ = diskusage.prune_images(
            store, mgr.used_images, dangling_only=not all, filters=filters
        )
    finally:
        _sync()
    return records, space


def prune_containers(*, filters: dict[str, list[str]] | None = None) -> tuple[list[str], int]:
    """``docker container prune``: (IDs, reclaimed bytes)."""
    _, mgr = _runtime()
    try:
        ids, space, _ = diskusage.prune_containers(mgr, filters=filters)
    finally:
        _sync()
    return ids, space


def prune_volumes(*, filters: dict[str, list[str]] | None = None) -> tuple[list[str], int]:
    """``docker volume prune`` (20.10: named volumes too): (names, reclaimed bytes)."""
    _, mgr = _runtime()
    try:
        names, space, _ = diskusage.prune_volumes(mgr.volumes, filters=filters)
    finally:
        _sync()
    return names, space


def output_lines(
    containers: list[str] | None, volumes: list[str] | None, records: list | None, space: int
) -> list[str]:
    """What docker prints after a prune: each section, a blank line, the total."""
    lines: list[str] = []
    for title, items in (("Deleted Containers:", containers), ("Deleted Volumes:", volumes)):
        if items:
            lines += [title, *items, ""]
    if records:
        lines.append("Deleted Images:")
        lines += [f"{kind}: {value}" for kind, value in records]
        lines.append("")
    lines.append(f"Total reclaimed space: {human_size(space)}")
    return lines


# -- prune from the page: preview, confirm, run exactly that -----------------------------


def prune_preview(
    *, images: str = "dangling", containers: bool = True, volumes: bool = False
) -> dict:
    """What a prune would remove, from the database: per item with its size, and the total.

    ``images``: "dangling", "all" (every image no remaining container uses) or "" (none).
    Containers go first (as ``system prune``), so an image only stopped containers used
    counts as unused. Image bytes are the layers no kept image shares, each counted once.
    """
    rows = list(Container.objects.all())
    doomed_c = [c for c in rows if containers and not c.is_running]
    kept_c = [c for c in rows if c not in doomed_c]
    used_images = {c.image_id for c in kept_c}
    used_volumes = {m.get("Name") for c in kept_c for m in c.mounts if m.get("Type") == "volume"}
    du = disk_usage_from_db()
    layer_sizes = dict(Layer.objects.values_list("pk", "size"))
    all_images = list(Image.objects.values("pk", "image_id", "parent_image_id"))
    parents = imagelist.with_children(im["parent_image_id"] for im in all_images)
    refs: dict[int, list[Reference]] = {}
    for r in Reference.objects.select_related("repository"):
        refs.setdefault(r.image_id, []).append(r)
    doomed_i = []
    for im in all_images:
        if not images or im["image_id"] in used_images:
            continue
        rs = refs.get(im["pk"], [])
        if imagelist.prune_candidate(
            tagged=any(r.tag for r in rs),
            referenced=bool(rs),
            has_child=im["image_id"] in parents,
            dangling_only=images == "dangling",
        ):
            doomed_i.append(im)
    layers_of: dict[int, list[int]] = {}
    for image_pk, layer_pk in ImageLayer.objects.values_list("image_id", "layer_id"):
        layers_of.setdefault(image_pk, []).append(layer_pk)
    doomed_pks = {im["pk"] for im in doomed_i}
    kept_layers = {la for pk, ls in layers_of.items() if pk not in doomed_pks for la in ls}
    freed_layers: set[int] = set()
    image_items = []
    for im in doomed_i:
        own = [la for la in layers_of.get(im["pk"], []) if la not in kept_layers]
        mine = [la for la in own if la not in freed_layers]
        freed_layers.update(own)
        image_items.append(
            {
                "id": im["image_id"],
                "pk": im["pk"],
                "refs": sorted(r.familiar for r in refs.get(im["pk"], [])),
                "size": sum(layer_sizes[la] for la in mine),
            }
        )
    orphans = []
    if images:
        orphans = [
            {"chain_id": chain, "size": size}
            for chain, size in Layer.objects.annotate(n=Count("image_layers"))
            .filter(n=0)
            .values_list("chain_id", "size")
        ]
    vol_sizes = {v["Name"]: v["UsageData"]["Size"] for v in du["Volumes"]}
    volume_items = [
        {"name": v.name, "size": max(vol_sizes.get(v.name, -1), 0)}
        for v in Volume.objects.all()
        if volumes and v.name not in used_volumes
    ]
    container_items = [
        {"id": c.container_id, "name": c.name, "size": c.size_rw or 0} for c in doomed_c
    ]
    total = (
        sum(i["size"] for i in image_items)
        + sum(la["size"] for la in orphans)
        + sum(c["size"] for c in container_items)
        + sum(v["size"] for v in volume_items)
    )
    return {
        "options": {"images": images, "containers": containers, "volumes": volumes},
        "containers": container_items,
        "volumes": volume_items,
        "images": image_items,
        "layers": orphans,
        "total": total,
    }


def start_prune(preview: dict, *, user=None) -> PruneOperation:
    """Queue the prune of exactly ``preview``'s items; the worker runs it after commit."""
    return jobs.start(PruneOperation, user=user, preview=preview)


PRUNE_ABANDONED = "the worker stopped during the prune; look at the Disk page and try again"


@jobs.kind(
    "prune",
    model=PruneOperation,
    task="disk.tasks.run_prune",
    what="prune",
    abandoned=PRUNE_ABANDONED,
)
def run_prune(op: PruneOperation) -> dict:
    """Run a confirmed prune (the worker); ``run_prune(op_id)``. A no-op unless queued.

    Removes the preview's containers, then volumes, then images (each through its
    references, as dockerd), then the orphan layers, and nothing else: an item that changed
    since the preview (an image re-tagged, a container started, a volume now in use, new
    orphan layers) is skipped and listed in ``skipped``.
    """
    return _run_preview(op.preview)


def _run_preview(preview: dict) -> dict:
    store, mgr = _runtime()
    opts = preview["options"]
    skipped: list[str] = []
    space = 0
    c_ids = v_names = records = None
    try:
        if preview["containers"]:
            c_ids, c_space, c_skipped = diskusage.prune_containers(
                mgr, only=[c["id"] for c in preview["containers"]]
            )
            space += c_space
            skipped += c_skipped
        if preview["volumes"]:
            v_names, v_space, v_skipped = diskusage.prune_volumes(
                mgr.volumes, only=[v["name"] for v in preview["volumes"]]
            )
            space += v_space
            skipped += v_skipped
        if preview["images"]:
            wanted = []
            for item in preview["images"]:
                if not store.has_image(item["id"]):
                    skipped.append(item["id"])
                    continue
                now = sorted(r.familiar_string() for r in store.references(item["id"]))
                if now != item["refs"]:
                    skipped.append(item["id"])  # re-tagged or untagged since the preview
                    continue
                wanted.append(item["id"])
            records, i_space, i_skipped = diskusage.prune_images(
                store,
                mgr.used_images,
                dangling_only=opts["images"] == "dangling",
                only=wanted,
            )
            space += i_space
            skipped += i_skipped
        if preview["layers"]:
            listed = {la["chain_id"] for la in preview["layers"]}
            orphans = diskusage.orphan_layers(store)
            if set(orphans) <= listed:
                store.reconcile(orphan_layers=True)
                left = store.layers()
                space += sum(size for chain, size in orphans.items() if chain not in left)
            else:
                skipped += sorted(listed)  # other layers became orphans: leave them all
    finally:
        _sync()
    return {
        "lines": output_lines(c_ids, v_names, records, space),
        "skipped": skipped,
        "reclaimed": space,
    }
