"""``docker image ls``, ``image inspect`` and ``image history`` from the store, as Docker's
API types (ImageSummary, ImageInspect, HistoryResponseItem), with dockerd's filters and
config field order."""

from __future__ import annotations

from dockweb.docker.filters import InvalidFilter, familiar_match, match_labels
from dockweb.engine import get_store
from dockweb.runtime import imagelist
from dockweb.runtime.errors import DockwebError, ImageNotFound
from dockweb.runtime.imageconfig import inspect_config
from dockweb.runtime.store import ImageRecord, parse_time
from images.services.common import containers_using_images

_ACCEPTED_FILTERS = {"dangling", "label", "before", "since", "reference"}


# -- listing -----------------------------------------------------------------------------


def created_unix(rec: ImageRecord) -> int:
    return int(parse_time(rec.created).timestamp())


def list_images(
    *,
    all: bool = False,
    filters: dict[str, list[str]] | None = None,
    shared_size: bool = False,
) -> list[dict]:
    """Docker's ImageList: ImageSummary dicts, newest first, filtered as dockerd filters."""
    filters = filters or {}
    for key in filters:
        if key not in _ACCEPTED_FILTERS:
            raise InvalidFilter(f"Invalid filter '{key}'")
    dangling_only = False
    if "dangling" in filters:
        values = filters["dangling"]
        if "true" in values:
            dangling_only = True
        elif "false" not in values:
            raise InvalidFilter(f"Invalid filter 'dangling=[{' '.join(values)}]'")
    store = get_store()
    before = since = None
    for v in filters.get("before", []):
        before = store.lookup(v)
    for v in filters.get("since", []):
        since = store.lookup(v)

    images = store.images()
    layers = store.layers()
    references = store.all_references()
    parents = imagelist.with_children(r.parent for r in images)
    containers = containers_using_images()
    dangling = True if dangling_only else (False if "dangling" in filters else None)

    summaries = []
    for rec in images:
        created = created_unix(rec)
        if before is not None and created >= created_unix(before):
            continue
        if since is not None and created <= created_unix(since):
            continue
        labels = (rec.config.get("config") or {}).get("Labels")
        if "label" in filters and not match_labels(filters["label"], labels):
            continue
        repo_tags: list[str] = []
        repo_digests: list[str] = []
        for ref in references.get(rec.id, []):
            if "reference" in filters and not any(
                familiar_match(p, ref) for p in filters["reference"]
            ):
                continue
            if ref.digest:
                repo_digests.append(ref.familiar_string())
            if ref.tag:
                repo_tags.append(ref.familiar_string())
        if not imagelist.listed(
            tagged=bool(repo_tags),
            referenced=bool(repo_tags or repo_digests),
            has_child=rec.id in parents,
            all=all,
            dangling=dangling,
            reference_filter="reference" in filters,
        ):
            continue
        if not repo_tags and not repo_digests:
            repo_digests = list(imagelist.NONE_DIGESTS)
            repo_tags = list(imagelist.NONE_TAGS)
        size = sum(layers[c].size for c in rec.layers if c in layers)
        summaries.append(
            {
                "Id": rec.id,
                "ParentId": rec.parent,
                "RepoTags": repo_tags,
                "RepoDigests": repo_digests,
                "Created": created,
                "Size": size,
                "VirtualSize": size,
                "SharedSize": -1,
                "Containers": sum(1 for c in containers if c[1] == rec.id) if shared_size else -1,
                "Labels": labels,
                "CompressedSize": rec.compressed_size,
                "Layers": list(rec.layers),
            }
        )
    if shared_size:
        users = imagelist.layer_users(rec.layers for rec in images)
        sizes = {c: la.size for c, la in layers.items()}
        for s in summaries:
            s["SharedSize"] = imagelist.shared_size(s["Layers"], users, sizes)
    summaries.sort(key=lambda s: (s["Created"], s["Id"]), reverse=True)
    return summaries


# -- inspect and history -----------------------------------------------------------------


def inspect_image(ref_or_id: str) -> dict:
    """``docker image inspect``'s object for one image."""
    store = get_store()
    rec = store.lookup(ref_or_id)
    layers = store.layers()
    repo = store.references(rec.id)
    cfg = rec.config
    size = sum(layers[c].size for c in rec.layers if c in layers)
    diffs = [store.layer_diff(c) for c in reversed(rec.layers)]
    out = {
        "Id": rec.id,
        "RepoTags": [r.familiar_string() for r in repo if r.tag],
        "RepoDigests": [r.familiar_string() for r in repo if r.digest],
        "Parent": rec.parent,
        # dockerd falls back to the last history entry's comment
        "Comment": cfg.get("comment") or ((cfg.get("history") or [{}])[-1].get("comment", "")),
        "Created": cfg.get("created", "0001-01-01T00:00:00Z"),
        "Container": cfg.get("container", ""),
        "ContainerConfig": inspect_config(cfg.get("container_config")),
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": inspect_config(cfg.get("config")),
        "Architecture": cfg.get("architecture", ""),
    }
    if cfg.get("variant"):
        out["Variant"] = cfg["variant"]
    out.update(
        {
            "Os": cfg.get("os", ""),
            "Size": size,
            "VirtualSize": size,
            "GraphDriver": {
                "Data": {
                    "MergedDir": store.mount_path(rec.id),
                    "UpperDir": diffs[0] if diffs else "",
                    "LowerDir": ":".join(diffs[1:]),
                    "WorkDir": "",
                }
                if diffs
                else {},
                "Name": "overlay2",
            },
            "RootFS": {"Type": "layers", "Layers": rec.diff_ids},
            "Metadata": {"LastTagTime": rec.last_tag_time or "0001-01-01T00:00:00Z"},
        }
    )
    return out


def image_history(ref_or_id: str) -> list[dict]:
    """``docker image history``: newest first, layer sizes from the store."""
    store = get_store()
    rec = store.lookup(ref_or_id)
    items: list[dict] = []
    layer_i = 0
    for h in rec.config.get("history") or []:
        size = 0
        if not h.get("empty_layer"):
            if layer_i >= len(rec.layers):
                raise DockwebError("too many non-empty layers in History section")
            size = store.get_layer(rec.layers[layer_i]).size
            layer_i += 1
        items.insert(
            0,
            {
                "Id": "<missing>",
                "Created": int(parse_time(h.get("created", "")).timestamp()),
                "CreatedBy": h.get("created_by", ""),
                "Tags": None,
                "Size": size,
                "Comment": h.get("comment", ""),
            },
        )
    image = rec
    for item in items:
        item["Id"] = image.id
        tags = [r.familiar_string() for r in store.references(image.id) if r.tag]
        item["Tags"] = tags or None
        if not image.parent:
            break
        try:
            image = store.get_image(image.parent)
        except ImageNotFound:
            break
    return items
