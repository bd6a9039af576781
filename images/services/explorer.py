"""The layer explorer: analyze an image's layers (worker) and read the analysis for the
pages (database only)."""

from __future__ import annotations

import logging
import posixpath

from django.db import connection, transaction

from dockweb.engine import get_store
from dockweb.runtime import layerfs
from dockweb.runtime.store import Store
from images.models import (
    Image,
    ImageAnalysis,
    ImageAnalysisDir,
    ImageAnalysisLayer,
    Layer,
    short_id,
)

log = logging.getLogger(__name__)


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


def analyze_after_pull(store: Store, image_id: str) -> None:
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
        chain: short_id(blob or chain)
        for chain, blob in Layer.objects.filter(
            chain_id__in=[la["chain_id"] for la in layers]
        ).values_list("chain_id", "blob_digest")
    }
    commands = [h.get("created_by", "") for h in image.history if not h.get("empty_layer")]
    return [
        {
            **la,
            "number": la["position"] + 1,
            "short_id": short_ids.get(la["chain_id"], short_id(la["chain_id"])),
            "created_by": commands[la["position"]] if la["position"] < len(commands) else "",
        }
        for la in layers
    ]


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
