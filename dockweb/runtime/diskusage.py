"""Where the disk goes: Docker's ``system df`` figures and its prune operations.

``disk_usage`` returns moby's ``types.DiskUsage`` shape (API 1.41) from the store, the
containers and the volumes; ``summary`` turns that shape into the four rows of
``docker system df`` with docker/cli's definitions. ``prune_images`` and
``prune_containers`` follow moby's ``ImagesPrune`` and ``ContainersPrune``
(daemon/images/image_prune.go, daemon/prune.go). Plain Python: no Django, no Celery.

The prune functions take ``only``: a set of image or container IDs chosen beforehand (the
dashboard's preview). Nothing outside it is removed, and an item of it that no longer
qualifies is left alone and reported as skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from dockweb.runtime import events, imagelist
from dockweb.runtime.errors import Conflict, DockwebError, NotFound
from dockweb.runtime.store import ImageRecord, Store, parse_time
from dockweb.runtime.units import TimestampError, get_timestamp, go_unix
from dockweb.runtime.volumes import dir_size

IMAGE_PRUNE_FILTERS = {"dangling", "label", "label!", "until"}
CONTAINER_PRUNE_FILTERS = {"label", "label!", "until"}
VOLUME_PRUNE_FILTERS = {"label", "label!"}


class InvalidPruneFilter(DockwebError):
    """A prune filter dockerd refuses; ``str`` is its message."""


# -- system df ---------------------------------------------------------------------------


def image_summaries(store: Store, used: list[tuple[str, str, bool]]) -> tuple[list[dict], int]:
    """(ImageSummary dicts with SharedSize and Containers, LayersSize), as moby's DiskUsage.

    Images are listed as ``docker images`` lists them (untagged parents hidden), newest
    first. LayersSize counts every layer some image uses once, whatever the number of
    images sharing it; layers no image uses (an interrupted pull's) are not counted.
    """
    with store.locked():
        images = store.images()
        layers = store.layers()
        references = store.all_references()
    parents = imagelist.with_children(r.parent for r in images)
    refcount = imagelist.layer_users(rec.layers for rec in images)
    sizes = {c: la.size for c, la in layers.items()}
    layers_size = sum(sizes[c] for c in refcount if c in sizes)
    out = []
    for rec in images:
        image_refs = references.get(rec.id, [])
        tags = [r.familiar_string() for r in image_refs if r.tag]
        digests = [r.familiar_string() for r in image_refs if r.digest]
        if not imagelist.listed(
            tagged=bool(tags), referenced=bool(image_refs), has_child=rec.id in parents
        ):
            continue
        if not image_refs:
            tags, digests = list(imagelist.NONE_TAGS), list(imagelist.NONE_DIGESTS)
        size = sum(sizes[c] for c in rec.layers if c in sizes)
        shared = imagelist.shared_size(rec.layers, refcount, sizes)
        out.append(
            {
                "Id": rec.id,
                "ParentId": rec.parent,
                "RepoTags": tags,
                "RepoDigests": digests,
                "Created": go_unix(rec.created),
                "Size": size,
                "VirtualSize": size,
                "SharedSize": shared,
                "Containers": sum(1 for _, iid, _ in used if iid == rec.id),
                "Labels": (rec.config.get("config") or {}).get("Labels"),
            }
        )
    out.sort(key=lambda s: (s["Created"], s["Id"]), reverse=True)
    return out, layers_size


def disk_usage(
    store: Store,
    manager,
    *,
    container_summary: Callable[[object, tuple[int, int]], dict] | None = None,
) -> dict:
    """moby's ``types.DiskUsage``: LayersSize, Images, Containers, Volumes, BuildCache.

    ``manager`` is a ContainerManager (its ``volumes`` too). ``container_summary(c, size)``
    shapes a runtime container as ``types.Container`` (the CLI passes its own); without it
    a minimal dict with Id, Image, ImageID, State, SizeRw, SizeRootFs and Mounts is made.
    Sizes are apparent sizes as moby's ``directory.Size`` counts them.
    """
    containers = manager.list(all=True)
    used = [(c.id, c.image_id, c.status.is_active) for c in containers]
    images, layers_size = image_summaries(store, used)
    csums = []
    for c in containers:
        try:
            size = manager.size(c.id)
        except (DockwebError, OSError):
            size = (0, 0)
        if container_summary is not None:
            csums.append(container_summary(c, size))
        else:
            csums.append(
                {
                    "Id": c.id,
                    "Names": ["/" + c.name],
                    "Image": c.image,
                    "ImageID": c.image_id,
                    "State": c.status.value,
                    "SizeRw": size[0],
                    "SizeRootFs": size[1],
                    "Mounts": [
                        {"Type": m["type"], "Name": m.get("name", ""), "Driver": "local"}
                        for m in c.mounts
                        if m["type"] == "volume"
                    ],
                }
            )
    volumes = []
    for v in manager.volumes.list():
        volumes.append(
            {
                "Name": v.name,
                "Driver": v.driver,
                "Mountpoint": v.mountpoint,
                "CreatedAt": v.created_at,
                "Labels": v.labels or None,
                "Scope": v.scope,
                "Options": None,
                "UsageData": {
                    "Size": dir_size(v.mountpoint),
                    "RefCount": len(manager.volumes.users(v.name)),
                },
            }
        )
    return {
        "LayersSize": layers_size,
        "Images": images,
        "Containers": csums,
        "Volumes": volumes,
        "BuildCache": [],
        "BuilderSize": 0,
    }


def _active_state(state: str) -> bool:
    # docker/cli's diskUsageContainersContext.isActive
    return any(s in state for s in ("running", "paused", "restarting"))


def summary(du: dict) -> list[dict]:
    """The four rows of ``docker system df``, in bytes, with docker/cli's definitions.

    Images: SIZE is LayersSize (shared layers once); ACTIVE the images a container uses;
    RECLAIMABLE is SIZE less the unique size of the active images. Containers: the
    writable layers; reclaimable those of stopped containers. Volumes: reclaimable those
    no container uses. ``percent`` is None when SIZE is 0 (docker prints no percentage).
    """
    images, containers, volumes = du["Images"], du["Containers"], du["Volumes"]
    used = sum(
        i["VirtualSize"] - i["SharedSize"]
        for i in images
        if i["Containers"] and i["VirtualSize"] != -1 and i["SharedSize"] != -1
    )
    rows = [
        (
            "Images",
            len(images),
            sum(1 for i in images if i["Containers"] > 0),
            du["LayersSize"],
            du["LayersSize"] - used,
        ),
        (
            "Containers",
            len(containers),
            sum(1 for c in containers if _active_state(c["State"])),
            sum(c.get("SizeRw", 0) for c in containers),
            sum(c.get("SizeRw", 0) for c in containers if not _active_state(c["State"])),
        ),
        (
            "Local Volumes",
            len(volumes),
            sum(1 for v in volumes if v["UsageData"]["RefCount"] > 0),
            sum(v["UsageData"]["Size"] for v in volumes if v["UsageData"]["Size"] != -1),
            sum(
                v["UsageData"]["Size"]
                for v in volumes
                if v["UsageData"]["RefCount"] == 0 and v["UsageData"]["Size"] != -1
            ),
        ),
        ("Build Cache", len(du["BuildCache"]), 0, du["BuilderSize"], 0),
    ]
    out = []
    for kind, total, active, size, reclaimable in rows:
        # docker/cli: integer division, and no percentage for the build cache
        percent = reclaimable * 100 // size if size > 0 and kind != "Build Cache" else None
        out.append(
            {
                "type": kind,
                "total": total,
                "active": active,
                "size": size,
                "reclaimable": reclaimable,
                "percent": percent,
            }
        )
    return out


# -- filters -----------------------------------------------------------------------------

def parse_until(value: str, now: datetime | None = None) -> datetime:
    """``until=`` as moby's ``timetypes.GetTimestamp`` (``units.get_timestamp``). Raises
    InvalidPruneFilter."""
    try:
        return datetime.fromtimestamp(get_timestamp(value, now), UTC)
    except TimestampError as e:
        raise InvalidPruneFilter(str(e)) from None


def check_filters(filters: dict[str, list[str]], accepted: set[str]) -> None:
    for key in filters:
        if key not in accepted:
            raise InvalidPruneFilter(f"Invalid filter '{key}'")


def match_labels(filters: dict[str, list[str]], labels: dict | None) -> bool:
    """moby's matchLabels: every ``label`` matches, and not every ``label!`` does (its
    MatchKVList on ``label!``: an item is kept only when it has all of them)."""
    labels = labels or {}

    def matches(item: str) -> bool:
        key, eq, value = item.partition("=")
        return key in labels and (not eq or labels[key] == value)

    if not all(matches(x) for x in filters.get("label", [])):
        return False
    excluded = filters.get("label!", [])
    return not (excluded and all(matches(x) for x in excluded))


def _until(filters: dict[str, list[str]]) -> datetime | None:
    values = filters.get("until", [])
    if len(values) > 1:
        raise InvalidPruneFilter("more than one until filter specified")
    return parse_until(values[0]) if values else None


# -- prune -------------------------------------------------------------------------------


def prunable_images(
    store: Store, *, dangling_only: bool = True, filters: dict[str, list[str]] | None = None
) -> list[ImageRecord]:
    """The images ``image prune`` considers (moby's topImages), newest first.

    Dangling only: images without a tag (digest references do not count as tags), not
    parents of other images. With ``dangling_only=False``, every image; containers using
    one make its removal fail with a conflict, which prune skips, as dockerd does.
    """
    filters = dict(filters or {})
    check_filters(filters, IMAGE_PRUNE_FILTERS)
    until = _until(filters)
    images = store.images()
    references = store.all_references()
    children = imagelist.with_children(r.parent for r in images)
    out = []
    for rec in images:
        image_refs = references.get(rec.id, [])
        if not imagelist.prune_candidate(
            tagged=any(r.tag for r in image_refs),
            referenced=bool(image_refs),
            has_child=rec.id in children,
            dangling_only=dangling_only,
        ):
            continue
        if until is not None and parse_time(rec.created) > until:
            continue
        if not match_labels(filters, (rec.config.get("config") or {}).get("Labels")):
            continue
        out.append(rec)
    out.sort(key=lambda r: (r.created, r.id), reverse=True)
    return out


def prune_images(
    store: Store,
    containers: list[tuple[str, str, bool]] | Callable[[], list[tuple[str, str, bool]]],
    *,
    dangling_only: bool = True,
    filters: dict[str, list[str]] | None = None,
    only: Iterable[str] | None = None,
) -> tuple[list[tuple[str, str]], int, list[str]]:
    """moby's ImagesPrune. Returns (records, reclaimed bytes, skipped image IDs).

    Records are ("untagged", ref) and ("deleted", ID or chain ID) in Docker's order; the
    reclaimed bytes are the sizes of the deleted layers. An image is removed through each
    of its references (or by ID when it has none) with ``force=False``: one a container
    uses is refused and skipped. Layers no image uses are then removed too
    (``Store.reconcile(orphan_layers=True)``) unless ``only`` restricts the prune; their
    bytes count. ``only``: image IDs to consider; those no longer prunable are skipped.
    """
    layers = store.layers()
    candidates = prunable_images(store, dangling_only=dangling_only, filters=filters)
    skipped: list[str] = []
    if only is not None:
        wanted = list(only)
        ids = {r.id for r in candidates}
        skipped = [i for i in wanted if i not in ids]
        candidates = [r for r in candidates if r.id in set(wanted)]
    records: list[tuple[str, str]] = []
    for rec in candidates:
        refs_now = store.references(rec.id)
        if refs_now:
            if dangling_only and any(r.tag for r in refs_now):
                skipped.append(rec.id)
                continue
            names = [r.string() for r in refs_now]
        else:
            names = [rec.id.split(":", 1)[1]]
        for name in names:
            try:
                got = store.remove(name, force=False, prune=True, containers=containers)
            except (Conflict, NotFound):
                continue  # moby's imageDeleteFailed: skip conflicts and vanished images
            records.extend((k.lower(), v) for k, v in got)
    reclaimed = sum(layers[v].size for k, v in records if k == "deleted" and v in layers)
    if only is None:
        before = store.layers()
        store.reconcile(orphan_layers=True)
        after = store.layers()
        reclaimed += sum(la.size for c, la in before.items() if c not in after)
    events.emit(store.root, "image", "prune", "", {"reclaimed": str(reclaimed)})
    return records, reclaimed, skipped


def orphan_layers(store: Store) -> dict[str, int]:
    """Layers no image uses (an interrupted pull's): chain ID -> size."""
    used = set()
    for rec in store.images():
        used.update(rec.layers)
    return {c: la.size for c, la in store.layers().items() if c not in used}


def prune_containers(
    manager,
    *,
    filters: dict[str, list[str]] | None = None,
    only: Iterable[str] | None = None,
) -> tuple[list[str], int, list[str]]:
    """moby's ContainersPrune: remove stopped containers. (IDs, reclaimed, skipped IDs).

    Running, paused and restarting containers are kept. Reclaimed bytes are the writable
    layers' sizes. ``only``: container IDs to consider; one that runs now or is gone is
    skipped.
    """
    filters = dict(filters or {})
    check_filters(filters, CONTAINER_PRUNE_FILTERS)
    until = _until(filters)
    wanted = set(only) if only is not None else None
    removed: list[str] = []
    skipped: list[str] = []
    space = 0
    seen = set()
    for c in manager.list(all=True):
        seen.add(c.id)
        if wanted is not None and c.id not in wanted:
            continue
        if c.status.is_active:
            if wanted is not None:
                skipped.append(c.id)
            continue
        if until is not None and parse_time(c.created) > until:
            continue
        if not match_labels(filters, c.spec.labels):
            continue
        try:
            size = manager.size(c.id)[0]
        except (DockwebError, OSError):
            size = 0
        try:
            manager.remove(c.id)
        except DockwebError:
            skipped.append(c.id)
            continue
        removed.append(c.id)
        space += size
    if wanted is not None:
        skipped.extend(sorted(wanted - seen))
    events.emit(manager.root, "container", "prune", "", {"reclaimed": str(space)})
    return removed, space, skipped


def prune_volumes(
    volumes, *, filters: dict[str, list[str]] | None = None, only: Iterable[str] | None = None
) -> tuple[list[str], int, list[str]]:
    """Docker 20.10's volume prune: every local volume no container uses (named ones too).
    (names, reclaimed bytes, skipped names). ``only``: the names to consider."""
    filters = dict(filters or {})
    check_filters(filters, VOLUME_PRUNE_FILTERS)
    wanted = set(only) if only is not None else None
    removed, skipped, space = [], [], 0
    present = set()
    for vol in volumes.list():
        present.add(vol.name)
        if wanted is not None and vol.name not in wanted:
            continue
        if not match_labels(filters, vol.labels):
            continue
        if volumes.users(vol.name):
            if wanted is not None:
                skipped.append(vol.name)
            continue
        size = dir_size(vol.mountpoint)
        try:
            volumes.remove(vol.name)
        except DockwebError:
            skipped.append(vol.name)
            continue
        removed.append(vol.name)
        space += size
    if wanted is not None:
        skipped.extend(sorted(wanted - present))
    events.emit(volumes.root, "volume", "prune", "", {"reclaimed": str(space)})
    return removed, space, skipped
