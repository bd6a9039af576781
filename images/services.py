"""Image operations shared by the `dockweb` CLI, the Celery workers and the pages.

Each function opens the one store configured in settings (``DOCKWEB_ROOT``) and calls the
runtime; results are plain dicts shaped like Docker's API types (ImageSummary,
ImageInspect, HistoryResponseItem), so the CLI and the templates format the same data.
"""

from __future__ import annotations

import abc
import logging
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import ngettext

from dockweb.runtime import layerfs
from dockweb.runtime import manifest as mf
from dockweb.runtime import reference as refs
from dockweb.runtime.archive import LayerLimits
from dockweb.runtime.errors import Conflict, DockwebError, ImageNotFound, InvalidReference
from dockweb.runtime.pull import (
    DEFAULT_LAYER_LIMITS,
    PullCancelled,
    PullResult,
    parse_pull_reference,
    pull,
)
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import ImageRecord, LayerRecord, Store, parse_time
from dockweb.runtime.units import human_size
from images.models import (
    Build,
    BuildStep,
    Image,
    ImageAnalysis,
    ImageAnalysisDir,
    ImageAnalysisLayer,
    ImageLayer,
    Layer,
    MirrorGeneration,
    Operation,
    Pull,
    PullLayer,
    Reference,
    Repository,
)

log = logging.getLogger(__name__)


class InvalidFilter(DockwebError):
    """An ``image ls`` filter Docker would refuse."""


_ACCEPTED_FILTERS = {"dangling", "label", "before", "since", "reference"}


def get_store() -> Store:
    return Store(str(settings.DOCKWEB_ROOT))


def get_client(credentials: dict[str, tuple[str, str]] | None = None) -> RegistryClient:
    """A registry client; ``credentials`` (host -> (user, password)) come before config.json."""
    # the docker CLI's own credentials (`docker login`), as `docker pull` would use them
    config = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    config_path = os.path.join(config, "config.json")
    return RegistryClient(
        insecure_registries=tuple(settings.DOCKWEB_INSECURE_REGISTRIES),
        auth_config_path=config_path,
        credentials=credentials,
    )


def containers_using_images(store: Store | None = None) -> list[tuple[str, str, bool]]:
    """(container ID, image ID, running) for every container the runtime has, so that
    image removal refuses (or forces past) the images containers use, as Docker does."""
    from dockweb.runtime.containers import ContainerManager

    return ContainerManager(store or get_store()).used_images()


def pull_image(
    reference: str,
    *,
    platform: str | None = None,
    on_progress: Callable[[dict], None] | None = None,
    cancel=None,
    credentials: dict[str, tuple[str, str]] | None = None,
) -> PullResult:
    """Pull into the store, then bring the database mirror up to date."""
    store = get_store()
    store.reconcile()
    result = pull(
        store,
        get_client(credentials),
        reference,
        platform=platform,
        on_progress=on_progress,
        max_concurrent=settings.DOCKWEB_MAX_CONCURRENT_DOWNLOADS,
        cancel=cancel,
        limits=layer_limits(),
    )
    _sync_after_change(store)
    _analyze_after_pull(store, result.image_id)
    return result


def layer_limits() -> LayerLimits:
    """The tar-bomb guards for pulls: the runtime's defaults, each overridable in settings
    (``DOCKWEB_LAYER_MAX_ENTRIES``, ``_MAX_BYTES``, ``_MAX_RATIO``, ``_RATIO_FLOOR``)."""
    d = DEFAULT_LAYER_LIMITS
    return LayerLimits(
        max_entries=getattr(settings, "DOCKWEB_LAYER_MAX_ENTRIES", d.max_entries),
        max_bytes=getattr(settings, "DOCKWEB_LAYER_MAX_BYTES", d.max_bytes),
        max_ratio=getattr(settings, "DOCKWEB_LAYER_MAX_RATIO", d.max_ratio),
        ratio_floor=getattr(settings, "DOCKWEB_LAYER_RATIO_FLOOR", d.ratio_floor),
    )


def remove_image(
    ref_or_id: str, *, force: bool = False, prune: bool = True
) -> list[tuple[str, str]]:
    store = get_store()
    try:
        # listed under the store's lock, which create holds while it resolves its image:
        # a container created meanwhile is either seen here or finds the image gone
        return store.remove(
            ref_or_id,
            force=force,
            prune=prune,
            containers=lambda: containers_using_images(store),
        )
    finally:
        # a removal that fails half-way (disk error) may still have changed the store
        _sync_after_change(store)


def tag_image(source: str, target: str) -> None:
    store = get_store()
    store.tag(source, target)
    _sync_after_change(store)


def mount_image(ref_or_id: str) -> str:
    store = get_store()
    return store.mount_image(store.lookup(ref_or_id).id)


def unmount_image(ref_or_id: str) -> bool:
    store = get_store()
    return store.unmount_image(store.lookup(ref_or_id).id)


def save_images(names: list[str], out, *, on_progress: Callable[[dict], None] | None = None):
    """``docker save``: write the images as one tarball to the binary stream ``out``."""
    from dockweb.runtime import imageio

    imageio.save(get_store(), names, out, on_progress=on_progress)


def load_images(
    tarball, *, on_output: Callable[[dict], None] | None = None, quiet: bool = False
) -> list[str]:
    """``docker load``: all or nothing, then bring the database mirror up to date."""
    from dockweb.runtime import imageio

    store = get_store()
    try:
        return imageio.load(store, tarball, on_output, quiet=quiet)
    finally:
        _sync_after_change(store)


def push_image(
    reference: str,
    *,
    on_progress: Callable[[dict], None] | None = None,
    credentials: dict[str, tuple[str, str]] | None = None,
):
    """``docker push``; the pushed digest becomes a reference, mirrored in the database."""
    from dockweb.runtime import imageio

    store = get_store()
    result = imageio.push(store, get_client(credentials), reference, on_progress)
    _sync_after_change(store)
    return result


# -- listing -----------------------------------------------------------------------------


def parse_filters(pairs: list[str]) -> dict[str, list[str]]:
    """``-f key=value`` flags into Docker's filter map (keys lower-cased, values kept)."""
    out: dict[str, list[str]] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidFilter("Bad format of filter (expected name=value)")
        key, value = pair.split("=", 1)
        out.setdefault(key.strip().lower(), []).append(value.strip())
    return out


def go_path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``: ``*`` and ``?`` never cross a ``/``."""
    rx = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            rx.append("[^/]*")
        elif c == "?":
            rx.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                raise InvalidFilter("syntax error in pattern")
            body = pattern[i + 1 : j]
            if body.startswith("^"):
                body = "!" + body[1:]
            rx.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            rx.append(re.escape(pattern[i]))
        else:
            rx.append(re.escape(c))
        i += 1
    return re.fullmatch("".join(rx), name) is not None


def _familiar_match(pattern: str, ref: refs.Reference) -> bool:
    return go_path_match(pattern, ref.familiar_string()) or go_path_match(
        pattern, ref.familiar_name
    )


def _match_kv_list(wanted: list[str], labels: dict | None) -> bool:
    labels = labels or {}
    for item in wanted:
        key, _, value = item.partition("=")
        if key not in labels:
            return False
        if "=" in item and labels[key] != value:
            return False
    return True


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
    parents = {r.parent for r in images if r.parent}
    containers = containers_using_images()

    summaries = []
    for rec in images:
        if dangling_only and rec.id in parents:
            continue  # dockerd lists only heads for dangling=true
        created = created_unix(rec)
        if before is not None and created >= created_unix(before):
            continue
        if since is not None and created <= created_unix(since):
            continue
        labels = (rec.config.get("config") or {}).get("Labels")
        if "label" in filters and not _match_kv_list(filters["label"], labels):
            continue
        repo_tags: list[str] = []
        repo_digests: list[str] = []
        skip = False
        for ref in references.get(rec.id, []):
            if "reference" in filters and not any(
                _familiar_match(p, ref) for p in filters["reference"]
            ):
                continue
            if ref.digest:
                repo_digests.append(ref.familiar_string())
            if ref.tag:
                if dangling_only:
                    skip = True
                    break
                repo_tags.append(ref.familiar_string())
        if skip:
            continue
        if not repo_tags and not repo_digests:
            if (
                (not all and rec.id in parents)
                or ("dangling" in filters and not dangling_only)
                or "reference" in filters
            ):
                continue
            repo_digests = ["<none>@<none>"]
            repo_tags = ["<none>:<none>"]
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
        refcount: dict[str, int] = {}
        for rec in images:
            for chain in rec.layers:
                refcount[chain] = refcount.get(chain, 0) + 1
        for s in summaries:
            s["SharedSize"] = sum(
                layers[c].size for c in s["Layers"] if refcount.get(c, 0) > 1 and c in layers
            )
    summaries.sort(key=lambda s: (s["Created"], s["Id"]), reverse=True)
    return summaries


# -- inspect and history -----------------------------------------------------------------

_CONTAINER_CONFIG_FIELDS = [
    ("Hostname", ""),
    ("Domainname", ""),
    ("User", ""),
    ("AttachStdin", False),
    ("AttachStdout", False),
    ("AttachStderr", False),
    ("ExposedPorts", "omit"),
    ("Tty", False),
    ("OpenStdin", False),
    ("StdinOnce", False),
    ("Env", None),
    ("Cmd", None),
    ("Healthcheck", "omit"),
    ("ArgsEscaped", "omit"),
    ("Image", ""),
    ("Volumes", None),
    ("WorkingDir", ""),
    ("Entrypoint", None),
    ("NetworkDisabled", "omit"),
    ("MacAddress", "omit"),
    ("OnBuild", None),
    ("Labels", None),
    ("StopSignal", "omit"),
    ("StopTimeout", "omit"),
    ("Shell", "omit"),
]


def _container_config(raw: dict | None) -> dict:
    """An image config's ``config`` as dockerd re-marshals it (container.Config order)."""
    raw = raw or {}
    out = {}
    for key, zero in _CONTAINER_CONFIG_FIELDS:
        if key in raw and raw[key] not in (None, "", False, [], {}):
            out[key] = raw[key]
        elif zero != "omit":
            out[key] = raw.get(key, zero) if zero is None else zero
    return out


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
        "ContainerConfig": _container_config(cfg.get("container_config")),
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": _container_config(cfg.get("config")),
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


def now() -> datetime:
    return datetime.now(UTC)


# -- database mirror of the store --------------------------------------------------------


def _sync_after_change(store: Store) -> None:
    """Mirror the store after a change, unless the database has no tables yet.

    The CLI may run before ``manage.py migrate`` ever did (a fresh DOCKWEB_DATA): then there
    is nothing to keep in step, and the worker's start-up sync catches up later.
    """
    if Image._meta.db_table not in connection.introspection.table_names():
        log.warning("database not migrated: images not mirrored (run `manage.py migrate`)")
        return
    sync_images(store)


def _time_or_none(value: str) -> datetime | None:
    if not value:
        return None
    parsed = parse_time(value)
    return None if parsed.year == 1 else parsed


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


def _sync_layers(layers: dict[str, LayerRecord]) -> dict[str, int]:
    """Create and update Layer rows; returns chain ID -> pk for every layer in the store."""
    existing = {la.chain_id: la for la in Layer.objects.all()}
    new = [
        Layer(
            chain_id=rec.chain_id,
            diff_id=rec.diff_id,
            blob_digest=rec.blob_digest,
            media_type=rec.media_type,
            size=rec.size,
            compressed_size=rec.compressed_size,
        )
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
        want = (
            rec.diff_id,
            rec.blob_digest,
            rec.media_type,
            rec.size,
            rec.compressed_size,
            pks.get(rec.parent) if rec.parent else None,
        )
        have = (
            row.diff_id,
            row.blob_digest,
            row.media_type,
            row.size,
            row.compressed_size,
            row.parent_id,
        )
        if want != have:
            (
                row.diff_id,
                row.blob_digest,
                row.media_type,
                row.size,
                row.compressed_size,
                row.parent_id,
            ) = want
            changed.append(row)
    Layer.objects.bulk_update(
        changed,
        ["diff_id", "blob_digest", "media_type", "size", "compressed_size", "parent"],
        batch_size=500,
    )
    return pks


def _image_fields(rec: ImageRecord, layers: dict[str, LayerRecord]) -> dict:
    present = [layers[c] for c in rec.layers if c in layers]
    return {
        "size": sum(la.size for la in present),
        "compressed_size": rec.compressed_size or sum(la.compressed_size for la in present),
        "parent_image_id": rec.parent,
        "last_tag_time": _time_or_none(rec.last_tag_time),
        "pulled_at": _time_or_none(rec.pulled_at),
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
                created=_time_or_none(rec.created),
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


# -- references --------------------------------------------------------------------------


def normalize_reference(text: str) -> str:
    """The full reference ``docker pull`` pulls: ``ubuntu`` -> ``docker.io/library/ubuntu:latest``.

    Raises InvalidReference with Docker's message.
    """
    text = text.strip()
    if not text:
        raise InvalidReference("invalid reference format")
    return parse_pull_reference(text).string()


# -- pulls -------------------------------------------------------------------------------


def start_pull(reference: str, *, platform: str = "", user=None) -> Pull:
    """Queue a pull; the worker runs it (images.tasks.pull_image) once this transaction commits.

    Raises InvalidReference for a malformed reference and ValueError for a malformed
    platform. When the same reference and platform are already being pulled, that pull is
    returned instead of a second one.
    """
    normalized = normalize_reference(reference)
    platform = platform.strip()
    if platform:
        mf.parse_platform(platform)  # ValueError: '"x/": invalid platform specifier'
    with transaction.atomic():
        active = active_pulls().filter(normalized=normalized, platform=platform).first()
        if active:
            return active
        pull_row = Pull.objects.create(
            reference=reference.strip(),
            normalized=normalized,
            platform=platform,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        from images import tasks  # Celery stays out of the CLI, which imports this module

        pull_id = pull_row.id
        transaction.on_commit(
            lambda: _enqueue(tasks.pull_image, pull_id, Pull.objects.filter(pk=pull_id))
        )
    return pull_row


def _enqueue(task, row_id: int, rows: QuerySet) -> None:
    """Send a task; if the broker cannot be reached, fail the row now rather than leave it
    queued forever."""
    try:
        task.delay(row_id)
    except Exception as err:  # kombu's OperationalError, redis errors, DNS ...
        broker = task.app.conf.broker_url
        rows.filter(status="queued").update(
            status="failed",
            finished_at=timezone.now(),
            error=(
                f"could not reach the task queue at {broker}: {err}. Start redis-server "
                "(scripts/run starts one) or set CELERY_BROKER_URL, then try again."
            ),
        )


def active_pulls() -> QuerySet[Pull]:
    """Pulls queued or running, newest first."""
    return Pull.objects.filter(status__in=Pull.ACTIVE).order_by("-created_at", "-pk")


def cancel_pull(pull_row: Pull) -> None:
    """Ask a pull to stop. Idempotent; a finished pull is left as it is.

    A queued pull is cancelled at once (the worker then finds nothing to claim); a running
    one is stopped by its worker within a fraction of a second.
    """
    now = timezone.now()
    Pull.objects.filter(pk=pull_row.pk, status=Pull.Status.QUEUED).update(
        status=Pull.Status.CANCELLED, cancel_requested=True, finished_at=now, updated_at=now
    )
    Pull.objects.filter(pk=pull_row.pk, status=Pull.Status.RUNNING).update(
        cancel_requested=True, updated_at=now
    )
    pull_row.refresh_from_db()


def worker_identity() -> str:
    """``host:pid:start time`` of this process, to tell later whether it is still alive."""
    import socket

    import psutil

    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.2f}"


def worker_is_alive(identity: str) -> bool:
    """False when ``identity`` (from worker_identity) names a process of this host that is gone.

    Another host's worker is assumed alive: only that host can tell.
    """
    import socket

    import psutil

    try:
        host, pid, started = identity.rsplit(":", 2)
        pid_n, started_f = int(pid), float(started)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    try:
        return f"{psutil.Process(pid_n).create_time():.2f}" == f"{started_f:.2f}"
    except psutil.NoSuchProcess:
        return False


_DOWNLOADED_STATES = {"Verifying Checksum", "Download complete", "Extracting", "Pull complete"}


class _RowWriter(abc.ABC):
    """Progress kept in memory and written to database rows at a bounded rate.

    Subclasses keep state under ``self.lock``, set ``self.dirty`` when it changes and
    implement ``flush()``. A writer thread calls ``flush()`` at most once per ``interval``
    (so a change shows within ``interval``) and then ``tick()``; ``close()`` stops the
    thread and makes the final write.
    """

    kind = "row"

    def __init__(self, row_id: int, interval: float):
        self.row_id = row_id
        self.interval = interval
        self.dirty = False
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"{self.kind}-{row_id}-writer", daemon=True
        )

    def start(self):
        self.thread.start()
        return self

    @abc.abstractmethod
    def flush(self) -> None:
        """Write what changed since the last flush."""

    def tick(self) -> None:  # noqa: B027 - optional hook, most writers need none
        """Called by the writer thread after each flush."""

    def _run(self) -> None:
        try:
            while not self.stop.wait(self.interval):
                self.flush()
                self.tick()
        except Exception:
            log.exception("%s %s: progress writer stopped", self.kind, self.row_id)
        finally:
            connection.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.flush()


def _failure(what: str, err: BaseException) -> str:
    """What to tell a person about a failed pull or build: the runtime's (Docker's) words,
    else the OS's."""
    if isinstance(err, DockwebError):
        return str(err)
    if isinstance(err, OSError):
        return f"{what} failed: {err.strerror or err}" + (
            f": {err.filename}" if getattr(err, "filename", None) else ""
        )
    return f"{what} failed: {err.__class__.__name__}: {err}"


class PullProgress(_RowWriter):
    """A pull's progress, kept in memory and written to its rows at a bounded rate.

    Call the instance with runtime progress events (from any thread; it only takes a lock
    and updates dicts). A writer thread writes what changed at most once per ``interval``
    (so state changes show within ``interval``), and checks ``Pull.cancel_requested``,
    setting ``cancel`` when a person asked to stop. ``close()`` stops the thread and makes
    the final write.
    """

    kind = "pull"

    def __init__(self, pull_row: Pull, cancel: threading.Event, *, interval: float = 0.2):
        super().__init__(pull_row.pk, interval)
        self.pull_id = pull_row.pk
        self.cancel = cancel
        self.layers: dict[int, dict] = {}
        self.positions: dict[str, int] = {}
        self.messages: list[str] = list(pull_row.messages or [])
        self.dirty_layers: set[int] = set()

    def __call__(self, event: dict) -> None:
        with self.lock:
            self.dirty = True
            if event.get("kind") == "message":
                self.messages.append(event["text"])
                return
            index = event.get("index")
            if index is None:
                index = self.positions.setdefault(event["digest"], len(self.positions))
            state = self.layers.setdefault(
                index,
                {
                    "short_id": event["id"],
                    "digest": event["digest"],
                    "status": "",
                    "current": 0,
                    "total": 0,
                },
            )
            state["status"] = event["status"]
            if event.get("total"):
                state["total"] = event["total"]
            if event.get("current") is not None:
                state["current"] = event["current"]
            if event["status"] in _DOWNLOADED_STATES and state["total"]:
                state["current"] = state["total"]
            self.dirty_layers.add(index)

    def totals(self) -> tuple[int, int]:
        """(bytes to download, bytes downloaded): layers already here count in neither."""
        total = done = 0
        for st in self.layers.values():
            if st["status"] == "Already exists":
                continue
            total += st["total"]
            if st["status"] in _DOWNLOADED_STATES:
                done += st["total"] or st["current"]
            elif st["status"] == "Downloading":
                done += st["current"]
        return total, done

    def flush(self) -> None:
        with self.lock:
            if not self.dirty:
                return
            rows = [
                PullLayer(pull_id=self.pull_id, position=i, **self.layers[i])
                for i in sorted(self.dirty_layers)
            ]
            messages = list(self.messages)
            total, done = self.totals()
            dirty_layers, self.dirty_layers, self.dirty = self.dirty_layers, set(), False
        now = timezone.now()
        try:
            with transaction.atomic():
                for row in rows:
                    row.updated_at = now
                PullLayer.objects.bulk_create(
                    rows,
                    update_conflicts=True,
                    unique_fields=["pull", "position"],
                    update_fields=[
                        "short_id",
                        "digest",
                        "status",
                        "current",
                        "total",
                        "updated_at",
                    ],
                )
                Pull.objects.filter(pk=self.pull_id).update(
                    total_bytes=total, downloaded_bytes=done, messages=messages, updated_at=now
                )
        except Exception:
            # the database was busy for longer than its timeout: try again next time
            log.exception("pull %s: could not write progress", self.pull_id)
            with self.lock:
                self.dirty = True
                self.dirty_layers |= dirty_layers

    def tick(self) -> None:
        if Pull.objects.filter(pk=self.pull_id, cancel_requested=True).exists():
            self.cancel.set()


def run_pull(pull_id: int) -> None:
    """Run a queued pull in this process (the worker). Does nothing unless the row is queued.

    Claims the row with a conditional update, so a duplicate delivery of the task is a no-op.
    Ends the row done, failed (with an error a person can act on) or cancelled; never raises
    for a failed pull.
    """
    now = timezone.now()
    claimed = Pull.objects.filter(pk=pull_id, status=Pull.Status.QUEUED).update(
        status=Pull.Status.RUNNING, started_at=now, updated_at=now, worker=worker_identity()
    )
    if not claimed:
        return
    pull_row = Pull.objects.get(pk=pull_id)
    cancel = threading.Event()
    if pull_row.cancel_requested:
        cancel.set()
    from images.credentials import credentials_map

    progress = PullProgress(pull_row, cancel, interval=_progress_interval()).start()
    outcome: dict = {}
    try:
        if cancel.is_set():
            raise PullCancelled("pull cancelled")
        result = pull_image(
            pull_row.normalized or pull_row.reference,
            platform=pull_row.platform or None,
            on_progress=progress,
            cancel=cancel,
            credentials=credentials_map(),
        )
    except PullCancelled:
        outcome = {"status": Pull.Status.CANCELLED}
    except Exception as err:
        if cancel.is_set():
            outcome = {"status": Pull.Status.CANCELLED}
        else:
            if not isinstance(err, DockwebError):
                log.exception("pull %s of %s failed", pull_id, pull_row.normalized)
            outcome = {"status": Pull.Status.FAILED, "error": _failure("pull", err)}
    else:
        status = "Downloaded newer image for " if result.updated else "Image is up to date for "
        outcome = {
            "status": Pull.Status.DONE,
            "manifest_digest": result.manifest_digest,
            "image_id": result.image_id,
            "status_text": status + result.familiar,
        }
    finally:
        progress.close()
    now = timezone.now()
    Pull.objects.filter(pk=pull_id).update(finished_at=now, updated_at=now, **outcome)
    if outcome["status"] == Pull.Status.DONE:
        Image.objects.filter(image_id=outcome["image_id"]).update(pulled_at=now)


def _progress_interval() -> float:
    return float(getattr(settings, "DOCKWEB_PROGRESS_INTERVAL", 0.2))


WORKER_STOPPED = (
    "the worker stopped during the pull; pull again to resume — finished layers are reused"
)


def fail_abandoned_work() -> int:
    """Mark pulls, operations and builds left running by a worker process that is gone as
    failed.

    Run at worker start. Returns how many rows it changed.
    """
    now = timezone.now()
    changed = 0
    for pk, worker in Pull.objects.filter(status=Pull.Status.RUNNING).values_list("pk", "worker"):
        if not worker_is_alive(worker):
            changed += Pull.objects.filter(pk=pk, status=Pull.Status.RUNNING).update(
                status=Pull.Status.FAILED,
                error=WORKER_STOPPED,
                finished_at=now,
                updated_at=now,
            )
    for pk, worker in Operation.objects.filter(status=Operation.Status.RUNNING).values_list(
        "pk", "worker"
    ):
        if not worker_is_alive(worker):
            changed += Operation.objects.filter(pk=pk, status=Operation.Status.RUNNING).update(
                status=Operation.Status.FAILED,
                finished_at=now,
                error="the worker stopped during the operation; look at the image and try again",
            )
    for pk, worker in Build.objects.filter(status=Build.Status.RUNNING).values_list("pk", "worker"):
        if not worker_is_alive(worker):
            changed += Build.objects.filter(pk=pk, status=Build.Status.RUNNING).update(
                status=Build.Status.FAILED,
                finished_at=now,
                updated_at=now,
                error="the worker stopped during the build; start the build again",
            )
    return changed


# -- removal and tagging -----------------------------------------------------------------


def start_removal(
    ref_or_id: str, *, force: bool = False, prune: bool = True, user=None
) -> Operation:
    """Queue ``docker rmi [--force] [--no-prune]``; the worker runs it after commit."""
    ref_or_id = ref_or_id.strip()
    if not ref_or_id:
        raise InvalidReference("invalid reference format")
    refs.parse_any_reference(ref_or_id)  # InvalidReference, with Docker's message
    return _start_operation(
        Operation.Kind.REMOVE, {"ref": ref_or_id, "force": bool(force), "prune": bool(prune)}, user
    )


def start_tag(source: str, target: str, user=None) -> Operation:
    """Queue ``docker tag SOURCE TARGET``; the worker runs it after commit."""
    source, target = source.strip(), target.strip()
    if not source:
        raise InvalidReference("invalid reference format")
    if refs.parse_normalized_named(target).digest:
        raise DockwebError("refusing to create a tag with a digest reference")
    return _start_operation(Operation.Kind.TAG, {"source": source, "target": target}, user)


def _start_operation(kind: str, args: dict, user) -> Operation:
    with transaction.atomic():
        op = Operation.objects.create(
            kind=kind,
            args=args,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        from images import tasks

        op_id = op.id
        transaction.on_commit(
            lambda: _enqueue(tasks.run_operation, op_id, Operation.objects.filter(pk=op_id))
        )
    return op


def run_operation(op_id: int) -> None:
    """Run a queued removal or tag in this process (the worker). A no-op unless queued.

    Records Docker's result lines, the bytes freed, and on failure the error; a conflict
    that forcing may resolve sets ``conflict``.
    """
    claimed = Operation.objects.filter(pk=op_id, status=Operation.Status.QUEUED).update(
        status=Operation.Status.RUNNING, worker=worker_identity()
    )
    if not claimed:
        return
    op = Operation.objects.get(pk=op_id)
    fields: dict = {}
    store = get_store()
    try:
        if op.kind == Operation.Kind.REMOVE:
            fields = _run_removal(store, op.args)
        elif op.kind == Operation.Kind.TAG:
            image_id = store.lookup(op.args["source"]).id
            tag_image(op.args["source"], op.args["target"])
            target = refs.parse_normalized_named(op.args["target"])
            target = target if target.tag else target.with_tag("latest")
            fields = {
                "result": [["Tagged", target.familiar_string()]],
                "image_id": image_id,
                "references_left": len(store.references(image_id)),
            }
        else:
            raise DockwebError(f"unknown operation {op.kind!r}")
        fields["status"] = Operation.Status.DONE
    except Exception as err:
        if not isinstance(err, DockwebError):
            log.exception("operation %s failed", op_id)
        fields = {
            "status": Operation.Status.FAILED,
            "error": str(err) if isinstance(err, DockwebError) else _failure("pull", err),
            # a hard conflict (dependent child images, running container) survives --force
            "conflict": isinstance(err, Conflict) and not getattr(err, "hard", False),
        }
    Operation.objects.filter(pk=op_id).update(finished_at=timezone.now(), **fields)


def _run_removal(store: Store, args: dict) -> dict:
    try:
        image_id = store.lookup(args["ref"]).id
    except DockwebError:
        image_id = ""  # remove_image raises the error Docker gives
    sizes = {chain: la.size for chain, la in store.layers().items()}
    records = remove_image(
        args["ref"], force=args.get("force", False), prune=args.get("prune", True)
    )
    deleted_layers = [v for k, v in records if k == "Deleted" and v in sizes]
    return {
        "result": [list(r) for r in records],
        "image_id": image_id,
        "freed_bytes": sum(sizes[c] for c in deleted_layers),
        "deleted_layers": len(deleted_layers),
        "references_left": len(store.references(image_id)) if store.has_image(image_id) else 0,
    }


def untag_summary(op: Operation) -> str:
    """One sentence on what a finished removal did ("" while it runs or when it failed)."""
    if op.kind != Operation.Kind.REMOVE or op.status != Operation.Status.DONE:
        return ""
    if not op.deleted:
        return ngettext(
            "Untagged only: %(n)d other reference keeps this image",
            "Untagged only: %(n)d other references keep this image",
            op.references_left,
        ) % {"n": op.references_left}
    return ngettext(
        "Deleted: the image and %(k)d layer, %(size)s freed",
        "Deleted: the image and %(k)d layers, %(size)s freed",
        op.deleted_layers,
    ) % {"k": op.deleted_layers, "size": human_size(op.freed_bytes, 3)}


# -- read side for the pages (database only) ---------------------------------------------


def get_image(key: str | int) -> Image:
    """An Image row by pk (int), full ID, reference, or unique ID prefix, in Docker's order.

    Raises ImageNotFound ("No such image: ...") or InvalidReference.
    """
    if isinstance(key, int):
        try:
            return Image.objects.get(pk=key)
        except Image.DoesNotExist:
            raise ImageNotFound(f"No such image: {key}") from None
    key = key.strip()
    parsed = refs.parse_any_reference(key)
    if parsed.domain == "" and parsed.digest:
        found = Image.objects.filter(image_id=parsed.digest).first()
        if found:
            return found
        raise ImageNotFound(f"No such image: {parsed.digest}")
    ref = parsed
    if ref.digest:
        found = Image.objects.filter(
            references__repository__name=ref.name, references__digest=ref.digest
        ).first()
    else:
        found = Image.objects.filter(
            references__repository__name=ref.name,
            references__tag=ref.tag or "latest",
            references__digest="",
        ).first()
    if found:
        return found
    prefix = key[7:] if key.startswith("sha256:") else key
    if re.fullmatch(r"[a-f0-9]+", prefix):
        matches = list(Image.objects.filter(image_id__startswith="sha256:" + prefix)[:2])
        if len(matches) == 1:
            return matches[0]
    if key.isdigit():
        # last, as a digits-only string may also be an ID prefix: pages link by pk
        found = Image.objects.filter(pk=int(key)).first()
        if found:
            return found
    shown = ref if ref.tag or ref.digest else ref.with_tag("latest")
    raise ImageNotFound(f"No such image: {shown.familiar_string()}")


def _layer_users() -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """(image pk -> layer pks bottom to top, layer pk -> image pks using it): one query."""
    by_image: dict[int, list[int]] = {}
    by_layer: dict[int, list[int]] = {}
    for image_pk, layer_pk in ImageLayer.objects.order_by("image_id", "position").values_list(
        "image_id", "layer_id"
    ):
        by_image.setdefault(image_pk, []).append(layer_pk)
        by_layer.setdefault(layer_pk, []).append(image_pk)
    return by_image, by_layer


def _references_by_image() -> dict[int, list[tuple[str, str, str, str]]]:
    """image pk -> (full name, familiar name, tag, digest), sorted as Docker sorts them."""
    out: dict[int, list[tuple[str, str, str, str]]] = {}
    rows = Reference.objects.values_list(
        "image_id", "repository__name", "repository__familiar_name", "tag", "digest"
    )
    for image_pk, name, familiar, tag, digest in rows:
        out.setdefault(image_pk, []).append((name, familiar, tag, digest))
    for lst in out.values():
        # the reference's string(): name:tag or name@digest
        lst.sort(key=lambda r: f"{r[0]}:{r[2]}" if r[2] else f"{r[0]}@{r[3]}")
    return out


# image_table's results in this process, under the mirror generation they were read at
_tables: dict[tuple, tuple[list[dict], dict]] = {}
_tables_lock = threading.Lock()
_TABLES_KEPT = 32  # option combinations kept per generation


def image_table(
    *,
    all: bool = False,
    digests: bool = False,
    no_trunc: bool = False,
    dangling: bool | None = None,
    reference: str = "",
) -> tuple[list[dict], dict]:
    """``docker images`` from the database (see _image_table), cached in this process.

    The cache is keyed by MirrorGeneration, which triggers renew on any change to the rows
    the table reads, and it is read first: a result is never older than the database at the
    call. One query when nothing changed, one more than _image_table otherwise. The rows
    are shared between callers: do not change them.
    """
    generation = MirrorGeneration.current()
    key = (generation, all, digests, no_trunc, dangling, reference)
    if generation is not None and (hit := _tables.get(key)) is not None:
        return hit
    result = _image_table(
        all=all, digests=digests, no_trunc=no_trunc, dangling=dangling, reference=reference
    )
    if generation is not None:
        with _tables_lock:
            if len(_tables) >= _TABLES_KEPT or any(k[0] != generation for k in _tables):
                _tables.clear()
            _tables[key] = result
    return result


def _image_table(
    *,
    all: bool = False,
    digests: bool = False,
    no_trunc: bool = False,
    dangling: bool | None = None,
    reference: str = "",
) -> tuple[list[dict], dict]:
    """``docker images`` from the database: rows grouped as docker/cli groups them, and totals.

    ``dangling`` and ``reference`` filter as ``-f dangling=`` and ``-f reference=`` (Go
    ``path.Match`` on the familiar reference or name). Totals cover the images shown:
    ``on_disk`` and ``compressed`` count each shared layer once, ``sum_of_sizes`` does not,
    ``shared_savings`` is the difference. Five queries, whatever the number of images.
    """
    images = list(
        Image.objects.order_by("-created", "-image_id").values(
            "pk", "image_id", "created", "size", "compressed_size", "parent_image_id"
        )
    )
    images.sort(
        key=lambda im: (im["created"] or datetime.min.replace(tzinfo=UTC), im["image_id"]),
        reverse=True,
    )
    layer_sizes = {
        pk: (size, csize)
        for pk, size, csize in Layer.objects.values_list("pk", "size", "compressed_size")
    }
    layers_of, users_of = _layer_users()
    references = _references_by_image()
    parents = {im["parent_image_id"] for im in images if im["parent_image_id"]}
    rows: list[dict] = []
    shown: list[dict] = []
    for im in images:
        if dangling is True and im["image_id"] in parents:
            continue  # dockerd lists only heads for dangling=true
        image_refs = references.get(im["pk"], [])
        if reference:
            image_refs = [
                r
                for r in image_refs
                if go_path_match(reference, _familiar_ref(r)) or go_path_match(reference, r[1])
            ]
        if dangling is True and any(r[2] for r in image_refs):
            continue
        if not image_refs:
            if (not all and im["image_id"] in parents) or dangling is False or reference:
                continue
        shared = sum(
            layer_sizes[la][0] for la in layers_of.get(im["pk"], []) if len(users_of[la]) > 1
        )
        base = {
            "image": im["pk"],
            "image_id": im["image_id"],
            "id": im["image_id"] if no_trunc else im["image_id"].split(":", 1)[-1][:12],
            "created": im["created"],
            "size": im["size"],
            "compressed_size": im["compressed_size"],
            "shared_size": shared,
            "unique_size": im["size"] - shared,
            "containers": 0,
        }
        for repo, tag, digest in _group_rows(image_refs, digests):
            rows.append({**base, "repository": repo, "tag": tag, "digest": digest})
        shown.append(im)

    distinct = {la for im in shown for la in layers_of.get(im["pk"], [])}
    on_disk = sum(layer_sizes[la][0] for la in distinct)
    total = sum(im["size"] for im in shown)
    totals = {
        "images": len(shown),
        "on_disk": on_disk,
        "compressed": sum(layer_sizes[la][1] for la in distinct),
        "sum_of_sizes": total,
        "shared_savings": total - on_disk,
    }
    return rows, totals


def _familiar_ref(r: tuple[str, str, str, str]) -> str:
    return f"{r[1]}:{r[2]}" if r[2] else f"{r[1]}@{r[3]}"


def _group_rows(
    image_refs: list[tuple[str, str, str, str]], digests: bool
) -> list[tuple[str, str, str]]:
    """docker/cli's imageFormat: (repository, tag, digest) rows for one image."""
    if not image_refs:
        return [("<none>", "<none>", "<none>")]
    repo_tags: dict[str, list[str]] = {}
    repo_digests: dict[str, list[str]] = {}
    for _name, familiar, tag, digest in image_refs:
        if tag:
            repo_tags.setdefault(familiar, []).append(tag)
        elif digest:
            repo_digests.setdefault(familiar, []).append(digest)
    out = []
    for repo, tags in repo_tags.items():
        ds = repo_digests.pop(repo, [])
        if not digests:
            ds = []
        for tag in tags:
            if not ds:
                out.append((repo, tag, "<none>"))
            out.extend((repo, tag, d) for d in ds)
    for repo, ds in repo_digests.items():
        if digests:
            out.extend((repo, "<none>", d) for d in ds)
        else:
            out.append((repo, "<none>", ""))
    return out


_CONFIG_SUMMARY_KEYS = (
    "Entrypoint",
    "Cmd",
    "Env",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
)


def image_detail(image: Image) -> dict:
    """Everything the image page shows, from the database: a handful of queries.

    ``layers`` run bottom to top, each with the command that made it (the non-empty
    history entries, in order), its sizes and the other images sharing it as
    (image pk, short ID, first tag or "<none>:<none>"). ``history`` is the config's, oldest
    first, with each entry's layer size (0 for empty layers).
    """
    image_refs = _references_for(image.pk)
    layers = list(
        ImageLayer.objects.filter(image=image).order_by("position").select_related("layer")
    )
    layer_pks = [il.layer_id for il in layers]
    sharing: dict[int, list[int]] = {}
    others: set[int] = set()
    for layer_pk, image_pk in (
        ImageLayer.objects.filter(layer_id__in=layer_pks)
        .exclude(image=image)
        .order_by("image_id")
        .values_list("layer_id", "image_id")
    ):
        sharing.setdefault(layer_pk, []).append(image_pk)
        others.add(image_pk)
    other_ids = dict(Image.objects.filter(pk__in=others).values_list("pk", "image_id"))
    first_tag: dict[int, str] = {}
    for image_pk, familiar, tag in (
        Reference.objects.filter(image_id__in=others)
        .exclude(tag="")
        .order_by("repository__familiar_name", "tag")
        .values_list("image_id", "repository__familiar_name", "tag")
    ):
        first_tag.setdefault(image_pk, f"{familiar}:{tag}")

    history = image.history
    commands = [h.get("created_by", "") for h in history if not h.get("empty_layer")]
    layer_rows = []
    for il in layers:
        la = il.layer
        layer_rows.append(
            {
                "position": il.position,
                "chain_id": la.chain_id,
                "diff_id": la.diff_id,
                "digest": la.blob_digest,
                "short_id": la.short_id,
                "media_type": la.media_type,
                "size": la.size,
                "compressed_size": la.compressed_size,
                "created_by": commands[il.position] if il.position < len(commands) else "",
                "shared_with": [
                    (pk, other_ids[pk].split(":", 1)[-1][:12], first_tag.get(pk, "<none>:<none>"))
                    for pk in sharing.get(la.pk, [])
                ],
            }
        )
    sizes = [row["size"] for row in layer_rows]
    history_rows = []
    i = 0
    for h in history:
        size = 0
        if not h.get("empty_layer"):
            size = sizes[i] if i < len(sizes) else 0
            i += 1
        history_rows.append(
            {
                "created": _time_or_none(h.get("created", "")),
                "created_by": h.get("created_by", ""),
                "comment": h.get("comment", ""),
                "empty_layer": bool(h.get("empty_layer")),
                "size": size,
            }
        )
    runtime = image.runtime_config
    return {
        "image": image.pk,
        "image_id": image.image_id,
        "id": image.short_id,
        "created": image.created,
        "os": image.os,
        "architecture": image.architecture,
        "variant": image.variant,
        "size": image.size,
        "compressed_size": image.compressed_size,
        "parent": image.parent_image_id,
        "last_tag_time": image.last_tag_time,
        "pulled_at": image.pulled_at,
        "tags": [_familiar_ref(r) for r in image_refs if r[2]],
        "digests": [_familiar_ref(r) for r in image_refs if not r[2]],
        "dangling": not image_refs,
        "layers": layer_rows,
        "config": {key: runtime.get(key) for key in _CONFIG_SUMMARY_KEYS},
        "history": history_rows,
    }


def _references_for(image_pk: int) -> list[tuple[str, str, str, str]]:
    lst = list(
        Reference.objects.filter(image_id=image_pk).values_list(
            "repository__name", "repository__familiar_name", "tag", "digest"
        )
    )
    lst.sort(key=lambda r: f"{r[0]}:{r[2]}" if r[2] else f"{r[0]}@{r[3]}")
    return lst


# -- layer explorer ----------------------------------------------------------------------

EXPLORER_ROWS = 500  # rows of a file list or directory a page shows at once


def analyze_image(
    image: Image, *, store: Store | None = None, refresh: bool = False
) -> ImageAnalysis:
    """Analyze an image's layers (dockweb.runtime.layerfs) and keep the result for the pages.

    Reads the store: run by the worker after a pull and by ``manage.py analyze_images``,
    never by the web process. Idempotent: an image already analyzed by this version of
    layerfs is left as it is, unless ``refresh`` (which also ignores the store's cache).
    Raises ImageNotFound when the store no longer has the image.
    """
    current = ImageAnalysis.objects.filter(image=image).first()
    if current is not None and current.version == layerfs.VERSION and not refresh:
        return current
    result = layerfs.load_or_analyze(store or get_store(), image.image_id, refresh=refresh)
    with transaction.atomic():
        ImageAnalysis.objects.filter(image=image).delete()
        row = ImageAnalysis.objects.create(
            image=image,
            version=result.version,
            total_bytes=result.total_bytes,
            wasted_bytes=result.wasted_bytes,
            file_count=result.file_count,
            seconds=result.seconds,
            layers=[la.summary() for la in result.layers],
        )
        ImageAnalysisLayer.objects.bulk_create(
            [
                ImageAnalysisLayer(analysis=row, position=la.position, files=la.files)
                for la in result.layers
            ],
            batch_size=50,
        )
        ImageAnalysisDir.objects.bulk_create(
            [
                ImageAnalysisDir(analysis=row, path=path, entries=entries)
                for path, entries in result.dirs.items()
            ],
            batch_size=500,
        )
    return row


def _analyze_after_pull(store: Store, image_id: str) -> None:
    """Analyze a freshly pulled image; a failure is logged and never fails the pull."""
    if ImageAnalysis._meta.db_table not in connection.introspection.table_names():
        return  # not migrated yet: `manage.py analyze_images` catches up
    image = Image.objects.filter(image_id=image_id).first()
    if image is None:
        return
    try:
        analyze_image(image, store=store)
    except Exception:
        log.exception("analyze image %s after its pull", image_id)


def _layer_labels(image: Image, layers: list[dict]) -> list[dict]:
    """The analysis' layer summaries with the short ID and command the image page shows."""
    short_ids = {
        chain: short_id_of(blob or chain)
        for chain, blob in Layer.objects.filter(
            chain_id__in=[la["chain_id"] for la in layers]
        ).values_list("chain_id", "blob_digest")
    }
    commands = [h.get("created_by", "") for h in image.history if not h.get("empty_layer")]
    return [
        {
            **la,
            "number": la["position"] + 1,
            "short_id": short_ids.get(la["chain_id"], short_id_of(la["chain_id"])),
            "created_by": commands[la["position"]] if la["position"] < len(commands) else "",
        }
        for la in layers
    ]


def short_id_of(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def layer_explorer(image: Image) -> dict | None:
    """The image page's explorer, from the database: efficiency, wasted bytes and each
    layer's counts, bottom to top. None when the image was not analyzed yet."""
    analysis = ImageAnalysis.objects.filter(image=image).first()
    if analysis is None:
        return None
    return {
        "efficiency": analysis.efficiency,
        "wasted_bytes": analysis.wasted_bytes,
        "total_bytes": analysis.total_bytes,
        "file_count": analysis.file_count,
        "layers": _layer_labels(image, analysis.layers),
    }


def _page(rows: list, page: int) -> tuple[list, int, int]:
    """(rows of page ``page``, the page shown, number of pages); pages count from 1."""
    pages = max(1, -(-len(rows) // EXPLORER_ROWS))
    page = min(max(1, page), pages)
    return rows[(page - 1) * EXPLORER_ROWS : page * EXPLORER_ROWS], page, pages


LAYER_CHANGES = (layerfs.ADDED, layerfs.CHANGED, layerfs.DELETED)


def layer_changes(
    image: Image, position: int, *, query: str = "", change: str = "", page: int = 1
) -> dict | None:
    """One layer's added, changed and deleted paths (``layerfs.FileChange``), sorted by path.

    ``query`` keeps paths containing it (case-insensitive), ``change`` one kind of change;
    ``EXPLORER_ROWS`` rows a page. None when the image or that layer was not analyzed.
    Three queries, whatever the number of files.
    """
    analysis = ImageAnalysis.objects.filter(image=image).first()
    if analysis is None:
        return None
    row = ImageAnalysisLayer.objects.filter(analysis=analysis, position=position).first()
    if row is None:
        return None
    files = row.files
    if change in LAYER_CHANGES:
        files = [f for f in files if f[1] == change]
    query = query.strip()
    if query:
        needle = query.casefold()
        files = [f for f in files if needle in f[0].casefold()]
    shown, page, pages = _page(files, page)
    layers = _layer_labels(image, analysis.layers)
    return {
        "layer": layers[position],
        "layers": layers,
        "rows": [layerfs.FileChange(*f) for f in shown],
        "matching": len(files),
        "total": len(row.files),
        "page": page,
        "pages": pages,
        "query": query,
        "change": change if change in LAYER_CHANGES else "",
    }


def directory_listing(image: Image, path: str, *, query: str = "", page: int = 1) -> dict | None:
    """One directory of the image's final tree (``layerfs.TreeEntry`` rows, by name).

    ``path`` is normalized ("usr//bin/" is "/usr/bin"); ``query`` keeps names containing
    it, ``EXPLORER_ROWS`` rows a page. None when the image was not analyzed or has no such
    directory. Three queries: of the tree, only that directory's row is read.
    """
    parts = [p for p in posixpath.normpath("/" + path.strip()).split("/") if p]
    path = "/" + "/".join(parts)
    found = (
        ImageAnalysisDir.objects.filter(analysis__image=image, path=path)
        .values_list("entries", flat=True)
        .first()
    )
    if found is None:
        return None
    entries = found
    query = query.strip()
    if query:
        needle = query.casefold()
        entries = [e for e in entries if needle in e[0].casefold()]
    shown, page, pages = _page(entries, page)
    crumbs = [(name, "/" + "/".join(parts[: i + 1])) for i, name in enumerate(parts)]
    summary = ImageAnalysis.objects.filter(image=image).values_list("layers", flat=True)[0]
    layer_ids = [la["short_id"] for la in _layer_labels(image, summary)]
    rows = []
    for raw in shown:
        e = layerfs.TreeEntry(*raw)
        rows.append(
            {"entry": e, "path": posixpath.join(path, e.name), "layer_id": layer_ids[e.layer]}
        )
    return {
        "path": path,
        "parent": posixpath.dirname(path) if path != "/" else "",
        "crumbs": crumbs,
        "rows": rows,
        "matching": len(entries),
        "total": len(found),
        "page": page,
        "pages": pages,
        "query": query,
    }


# -- build and commit --------------------------------------------------------------------


def _pull_for_build(reference: str, out: Callable[[str], None]) -> None:
    """Pull a FROM image the store lacks, printing the lines ``docker build`` prints."""

    def progress(event: dict) -> None:
        if event["kind"] == "message":
            out(event["text"] + "\n")
        elif event.get("current") is None:
            out(f"{event['id']}: {event['status']}\n")

    pull_image(reference, on_progress=progress)


def build_image(options, *, on_output: Callable[[str], None] | None = None):
    """``docker build`` (dockweb.runtime.build) with this store and container manager, then
    mirror images and containers and analyze the result for the layer explorer.

    Raises BuildError with Docker's message; the steps that succeeded keep their images.
    """
    from containers.services import get_manager, sync_containers
    from dockweb.runtime.build import build

    store = get_store()
    try:
        result = build(store, get_manager(), options, on_output=on_output, pull=_pull_for_build)
    finally:
        _sync_after_change(store)
        sync_containers()  # a failed RUN leaves its container, as Docker's does
    _analyze_after_pull(store, result.image_id)
    return result


def commit_container(
    container: str,
    repo_tag: str = "",
    *,
    message: str = "",
    author: str = "",
    changes: list[str] | tuple[str, ...] = (),
    pause: bool = True,
) -> str:
    """``docker commit``: the new image's ID (``sha256:...``), mirrored and analyzed."""
    from containers.services import get_manager
    from dockweb.runtime.build import commit

    store = get_store()
    try:
        image_id = commit(
            store,
            get_manager(),
            container,
            repo_tag,
            message=message,
            author=author,
            changes=changes,
            pause=pause,
        )
    finally:
        _sync_after_change(store)
    _analyze_after_pull(store, image_id)
    return image_id


# -- builds from the Build page ----------------------------------------------------------


class BuildRefused(DockwebError):
    """A build the Build page cannot queue (bad upload, tag or Dockerfile); ``str(e)`` says
    what to change."""


def _builds_dir() -> str:
    return os.path.join(str(settings.DOCKWEB_DATA), "builds")


def _context_limit() -> int:
    """Bytes a build context may hold once unpacked (DOCKWEB_BUILD_CONTEXT_LIMIT)."""
    return int(getattr(settings, "DOCKWEB_BUILD_CONTEXT_LIMIT", 2 << 30))


def _unsafe_member(m: tarfile.TarInfo) -> str:
    """Why a context archive's entry cannot be extracted ("" when it can)."""
    parts = m.name.replace("\\", "/").split("/")
    if m.name.startswith("/") or ".." in parts:
        return "its path leaves the context"
    if m.islnk() and (m.linkname.startswith("/") or ".." in m.linkname.split("/")):
        return "it is a hard link to a file outside the context"
    if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
        return "devices and pipes cannot be part of a build context"
    return ""


def _extract_context(archive, dest: str) -> int:
    """Unpack a .tar / .tar.gz upload into ``dest``; bytes unpacked.

    Every entry is checked before anything is written, so a refused archive leaves nothing;
    extraction then goes through tarfile's "tar" filter too, which also refuses writing
    through a symlink the archive made.
    """
    try:
        with tarfile.open(fileobj=archive, mode="r:*") as tar:
            members = tar.getmembers()
            total = 0
            for m in members:
                why = _unsafe_member(m)
                if why:
                    raise BuildRefused(f"refused the context archive: {m.name}: {why}")
                total += m.size if m.isfile() else 0
            if total > _context_limit():
                raise BuildRefused(
                    f"refused the context archive: it unpacks to {human_size(total)}, more than "
                    f"the {human_size(_context_limit())} allowed (DOCKWEB_BUILD_CONTEXT_LIMIT)"
                )
            tar.extractall(dest, members=members, filter="tar")
    except tarfile.FilterError as err:
        raise BuildRefused(f"refused the context archive: {err}") from None
    except (tarfile.TarError, EOFError, OSError) as err:
        raise BuildRefused(
            f"cannot read the context archive: {err}; upload a .tar or .tar.gz file"
        ) from None
    return total


def _save_context_files(files, dest: str) -> int:
    """Save individually uploaded files at the top of the context; bytes saved."""
    total = 0
    for f in files:
        name = os.path.basename(f.name or "")
        if name in ("", ".", "..") or "\0" in name:
            raise BuildRefused(f"refused the uploaded file {f.name!r}: name it something else")
        total += f.size or 0
        if total > _context_limit():
            raise BuildRefused(
                f"refused the uploaded files: more than the {human_size(_context_limit())} "
                "allowed (DOCKWEB_BUILD_CONTEXT_LIMIT)"
            )
        with open(os.path.join(dest, name), "wb") as out:
            for chunk in f.chunks():
                out.write(chunk)
    return total


def _check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        try:
            ref = refs.parse_normalized_named(tag)
        except DockwebError:
            ref = None
        if ref is None or ref.digest:
            raise BuildRefused(
                f'invalid argument "{tag}" for "-t, --tag" flag: invalid reference format'
            )
    return tags


def start_build(
    dockerfile: str,
    *,
    archive=None,
    files=(),
    tags: list[str] | tuple[str, ...] = (),
    no_cache: bool = False,
    build_args: dict[str, str] | None = None,
    user=None,
) -> Build:
    """Save the context, queue the build; the worker runs it (images.tasks.run_build) once
    this transaction commits.

    ``archive`` is an uploaded .tar/.tar.gz unpacked as the context, ``files`` uploaded
    files put at its top; with neither the build has no context (COPY then fails as
    Docker's does). An empty ``dockerfile`` takes the context's ``Dockerfile``. Raises
    BuildRefused for an unsafe or unreadable upload, a bad tag or a Dockerfile that does not
    parse (with its line), before anything is queued or kept.
    """
    from dockweb.runtime.build import parse_dockerfile

    tags = _check_tags([t for t in tags if t])
    os.makedirs(_builds_dir(), exist_ok=True)
    upload = tempfile.mkdtemp(prefix="upload-", dir=_builds_dir())
    try:
        context = os.path.join(upload, "context")
        os.mkdir(context)
        size = 0
        if archive is not None:
            size += _extract_context(archive, context)
        size += _save_context_files(files, context)
        has_context = archive is not None or bool(files)
        if not dockerfile.strip():
            path = os.path.join(context, "Dockerfile")
            if not (has_context and os.path.isfile(path) and not os.path.islink(path)):
                raise BuildRefused(
                    "enter a Dockerfile, or upload a context with a Dockerfile at its top"
                )
            with open(path, encoding="utf-8", errors="replace") as f:
                dockerfile = f.read()
        try:
            parse_dockerfile(dockerfile)
        except DockwebError as err:
            raise BuildRefused(str(err)) from None
        with transaction.atomic():
            row = Build.objects.create(
                dockerfile=dockerfile,
                tags=tags,
                no_cache=no_cache,
                build_args=dict(build_args or {}),
                context_size=size,
                created_by=user if user is not None and user.is_authenticated else None,
            )
            if has_context:
                final = os.path.join(_builds_dir(), str(row.pk))
                shutil.rmtree(final, ignore_errors=True)  # left by a database reset
                os.rename(upload, final)
                row.context_dir = os.path.join(final, "context")
                row.save(update_fields=["context_dir"])
            from images import tasks

            build_id = row.pk
            transaction.on_commit(
                lambda: _enqueue(tasks.run_build, build_id, Build.objects.filter(pk=build_id))
            )
    finally:
        shutil.rmtree(upload, ignore_errors=True)  # gone already when renamed
    return row


_STEP_LINE = re.compile(r"^Step (\d+)/\d+ : (.*)$")
_STEP_DONE = re.compile(r"^ ---> ([0-9a-f]{12})$")
MAX_BUILD_LINES = 10_000


class BuildProgress(_RowWriter):
    """A build's output and steps, kept in memory and written to its rows at a bounded rate.

    Call the instance with the text ``docker build`` prints (any chunks: lines are split
    here). ``Step n/N`` lines start a step record; `` ---> <id>`` ends it, with the size of
    the layer the step added, read from the store (this runs in the worker). A writer thread
    writes what changed at most once per ``interval``; ``close()`` stops it and makes the
    final write. Only the last MAX_BUILD_LINES lines are kept.
    """

    kind = "build"

    def __init__(self, build_row: Build, store: Store, *, interval: float = 0.2):
        super().__init__(build_row.pk, interval)
        self.build_id = build_row.pk
        self.store = store
        self.lines: list[str] = list(build_row.output or [])
        self.dropped = 0
        self.partial = ""
        self.steps: dict[int, dict] = {}
        self.current: int = 0
        self.dirty_steps: set[int] = set()

    def __call__(self, text: str) -> None:
        with self.lock:
            self.dirty = True
            *complete, self.partial = (self.partial + text).split("\n")
            for line in complete:
                self._line(line)

    def _line(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) > MAX_BUILD_LINES:
            self.dropped += len(self.lines) - MAX_BUILD_LINES
            del self.lines[: len(self.lines) - MAX_BUILD_LINES]
        m = _STEP_LINE.match(line)
        if m and int(m.group(1)) == self.current + 1:
            self.current = int(m.group(1))
            self.steps[self.current] = {
                "instruction": m.group(2),
                "image_id": "",
                "cached": False,
                "layer_size": None,
            }
            self.dirty_steps.add(self.current)
            return
        step = self.steps.get(self.current)
        if step is None or step["image_id"]:
            return
        if line == " ---> Using cache":
            step["cached"] = True
        elif m := _STEP_DONE.match(line):
            step["image_id"], step["layer_size"] = self._made(m.group(1), step)
            self.dirty_steps.add(self.current)

    def _made(self, short: str, step: dict) -> tuple[str, int | None]:
        """The step's full image ID and the size of the layer it added (None: none)."""
        try:
            rec = self.store.lookup(short)
        except DockwebError:
            return "sha256:" + short, None
        history = rec.config.get("history") or []
        new_layer = (
            not step["cached"]
            and not step["instruction"].upper().startswith("FROM ")
            and rec.layers
            and history
            and not history[-1].get("empty_layer")
        )
        if not new_layer:
            return rec.id, None
        try:
            return rec.id, self.store.get_layer(rec.layers[-1]).size
        except DockwebError:
            return rec.id, None

    def finish(self, steps) -> None:
        """Take the builder's own step results (runtime StepResult) as the final records."""
        with self.lock:
            for s in steps:
                self.steps[s.number] = {
                    "instruction": s.instruction,
                    "image_id": s.image_id,
                    "cached": s.cached,
                    "layer_size": s.layer_size,
                }
                self.dirty_steps.add(s.number)
            self.dirty = True

    def output(self) -> list[str]:
        lines = self.lines + ([self.partial] if self.partial else [])
        if self.dropped:
            lines = [f"[{self.dropped} earlier lines not kept]", *lines]
        return lines

    def flush(self) -> None:
        with self.lock:
            if not self.dirty:
                return
            rows = [
                BuildStep(build_id=self.build_id, number=n, **self.steps[n])
                for n in sorted(self.dirty_steps)
            ]
            output = self.output()
            dirty_steps, self.dirty_steps, self.dirty = self.dirty_steps, set(), False
        try:
            with transaction.atomic():
                BuildStep.objects.bulk_create(
                    rows,
                    update_conflicts=True,
                    unique_fields=["build", "number"],
                    update_fields=["instruction", "image_id", "cached", "layer_size"],
                )
                Build.objects.filter(pk=self.build_id).update(
                    output=output, updated_at=timezone.now()
                )
        except Exception:
            log.exception("build %s: could not write progress", self.build_id)
            with self.lock:
                self.dirty = True
                self.dirty_steps |= dirty_steps



def run_build(build_id: int) -> None:
    """Run a queued build in this process (the worker). Does nothing unless the row is queued.

    Claims the row with a conditional update, so a duplicate delivery is a no-op. Ends the
    row done (with the image ID) or failed (with Docker's message and the Dockerfile line
    it names); never raises for a failed build. The saved context is removed either way.
    """
    from dockweb.runtime.build import BuildOptions
    from dockweb.runtime.errors import BuildError

    now = timezone.now()
    claimed = Build.objects.filter(pk=build_id, status=Build.Status.QUEUED).update(
        status=Build.Status.RUNNING, started_at=now, updated_at=now, worker=worker_identity()
    )
    if not claimed:
        return
    row = Build.objects.get(pk=build_id)
    progress = BuildProgress(row, get_store(), interval=_progress_interval()).start()
    options = BuildOptions(
        dockerfile=row.dockerfile,
        context_dir=row.context_dir or None,
        tags=list(row.tags),
        build_args=dict(row.build_args),
        no_cache=row.no_cache,
    )
    outcome: dict = {}
    try:
        result = build_image(options, on_output=progress)
    except Exception as err:
        if not isinstance(err, DockwebError):
            log.exception("build %s failed", build_id)
        outcome = {"status": Build.Status.FAILED, "error": _failure("build", err)}
        if isinstance(err, BuildError):
            outcome["error_line"] = err.line
    else:
        progress.finish(result.steps)
        outcome = {"status": Build.Status.DONE, "image_id": result.image_id}
    finally:
        progress.close()
        if row.context_dir:
            shutil.rmtree(os.path.dirname(row.context_dir), ignore_errors=True)
    now = timezone.now()
    Build.objects.filter(pk=build_id).update(finished_at=now, updated_at=now, **outcome)
