"""Read side for the image pages, from the database only: image lookup, the images table
(cached per mirror generation) and the image detail page."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime

from django.db.models import Count

from containers.models import Container
from dockweb.docker.filters import go_path_match
from dockweb.docker.images import group_references
from dockweb.runtime import imagelist
from dockweb.runtime import reference as refs
from dockweb.runtime.digest import short_id
from dockweb.runtime.errors import ImageNotFound
from dockweb.runtime.units import parse_go_time
from images.models import Image, ImageLayer, Layer, MirrorGeneration, Reference

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
    generation, users = _generation_and_containers()
    if generation is not None:
        # the Containers column changes with the Container rows, which the generation
        # does not follow: both together are what the table shows
        generation = (generation, tuple(sorted(users.items())))
    key = (generation, all, digests, no_trunc, dangling, reference)
    if generation is not None and (hit := _tables.get(key)) is not None:
        return hit
    result = _image_table(
        all=all,
        digests=digests,
        no_trunc=no_trunc,
        dangling=dangling,
        reference=reference,
        containers=users,
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
    containers: dict[str, int] | None = None,
) -> tuple[list[dict], dict]:
    """``docker images`` from the database: rows grouped as docker/cli groups them, and totals.

    ``containers`` (image ID -> how many containers use it, ``containers_by_image``) fills
    the Containers column; read here when not given.

    ``dangling`` and ``reference`` filter as ``-f dangling=`` and ``-f reference=`` (Go
    ``path.Match`` on the familiar reference or name). Totals cover the images shown:
    ``on_disk`` and ``compressed`` count each shared layer once, ``sum_of_sizes`` does not,
    ``shared_savings`` is the difference. Five queries, whatever the number of images.
    """
    if containers is None:
        containers = containers_by_image()
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
    parents = imagelist.with_children(im["parent_image_id"] for im in images)
    users = {la: len(pks) for la, pks in users_of.items()}
    sizes = {pk: size for pk, (size, _csize) in layer_sizes.items()}
    rows: list[dict] = []
    shown: list[dict] = []
    for im in images:
        image_refs = references.get(im["pk"], [])
        if reference:
            image_refs = [
                r
                for r in image_refs
                if go_path_match(reference, _familiar_ref(r)) or go_path_match(reference, r[1])
            ]
        if not imagelist.listed(
            tagged=any(r[2] for r in image_refs),
            referenced=bool(image_refs),
            has_child=im["image_id"] in parents,
            all=all,
            dangling=dangling,
            reference_filter=bool(reference),
        ):
            continue
        shared = imagelist.shared_size(layers_of.get(im["pk"], []), users, sizes)
        base = {
            "image": im["pk"],
            "image_id": im["image_id"],
            "id": im["image_id"] if no_trunc else short_id(im["image_id"]),
            "created": im["created"],
            "size": im["size"],
            "compressed_size": im["compressed_size"],
            "shared_size": shared,
            "unique_size": im["size"] - shared,
            "containers": containers.get(im["image_id"], 0),
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


def containers_by_image() -> dict[str, int]:
    """Image ID -> how many containers (running or not) the mirror has of it, as the
    CONTAINERS column of ``docker images --format '{{.Containers}}'`` counts them."""
    rows = Container.objects.exclude(image_id="").values("image_id").annotate(n=Count("pk"))
    return {row["image_id"]: row["n"] for row in rows}


def _generation_and_containers() -> tuple[int | None, dict[str, int]]:
    """``MirrorGeneration.current()`` and ``containers_by_image()`` in one query: an
    unchanged Images table is served from the cache in one query."""
    from django.db import connections, router

    connection = connections[router.db_for_read(MirrorGeneration)]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT value, NULL, NULL FROM {quote(MirrorGeneration._meta.db_table)} "
            "WHERE id = 1 UNION ALL "
            f"SELECT NULL, image_id, COUNT(*) FROM {quote(Container._meta.db_table)} "
            "WHERE image_id <> '' GROUP BY image_id"
        )
        rows = cursor.fetchall()
    generation = next((value for value, image, _n in rows if image is None), None)
    return generation, {image: n for _value, image, n in rows if image is not None}


def _familiar_ref(r: tuple[str, str, str, str]) -> str:
    return f"{r[1]}:{r[2]}" if r[2] else f"{r[1]}@{r[3]}"


def _group_rows(
    image_refs: list[tuple[str, str, str, str]], digests: bool
) -> list[tuple[str, str, str]]:
    """docker/cli's imageFormat (``group_references``) for one image's reference rows: a
    row with a tag is a tag reference, one without a tag a digest reference."""
    tags = [(familiar, tag) for _name, familiar, tag, _digest in image_refs if tag]
    digest_refs = [
        (familiar, digest) for _name, familiar, tag, digest in image_refs if not tag and digest
    ]
    return group_references(tags, digest_refs, tag_digests=digests, digest_rows=digests)


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
                    (pk, short_id(other_ids[pk]), first_tag.get(pk, "<none>:<none>"))
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
                "created": parse_go_time(h.get("created", "")),
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
