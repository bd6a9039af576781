"""What each layer of an image adds, changes and deletes, and what that costs on disk (as dive).

``analyze_image(store, image_id)`` walks each layer's ``diff`` directory once, bottom to top,
with ``os.scandir`` and lstat data only (no file is opened), and replays overlayfs'
rules on the paths:

* a 0/0 character device deletes the path below it (and everything under it);
* a directory with ``trusted.overlay.opaque=y`` hides every lower entry under it;
* a non-directory over a lower directory hides the lower directory's whole subtree;
* any other entry over a lower one replaces it (a change); otherwise it is an addition.
  A directory listed again with the same mode and owner (a layer tar names the parents of
  what it changes) is neither: it is not counted.

Bytes are counted as moby's ``directory.Size`` counts a layer: lstat sizes of
non-directories, a hard-linked inode once per layer. A lower file's bytes are *wasted* once
a later layer hides every path of its inode: they stay on disk in the lower layer, yet
nothing in the final image can reach them. Efficiency is ``1 - wasted / total`` over the
bytes of all layers, in percent.

The result also holds the merged tree, indexed by directory (``dirs["/usr/bin"]``), so a
page can show one directory without loading the rest.

``load_or_analyze`` caches the result as ``<root>/images/<id>/analysis.json``: an image
(hence its layers) never changes for its ID, so the cache never goes stale; it is keyed by
``VERSION`` to survive changes of this module.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from dockweb.runtime.overlay import is_opaque, is_whiteout
from dockweb.runtime.store import Store

__all__ = [
    "VERSION",
    "FileChange",
    "ImageAnalysis",
    "LayerAnalysis",
    "TreeEntry",
    "analyze_image",
    "load_or_analyze",
]

# Bump when the analysis or its JSON changes: cached analysis.json files are then redone.
VERSION = 1
CACHE_NAME = "analysis.json"

# Entry types, as the pages show them.
DIR = "dir"
FILE = "file"
SYMLINK = "symlink"
WHITEOUT = "whiteout"
_TYPES = {
    stat.S_IFDIR: DIR,
    stat.S_IFREG: FILE,
    stat.S_IFLNK: SYMLINK,
    stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}

# FileChange.change
ADDED = "added"
CHANGED = "changed"
DELETED = "deleted"
NOOP_WHITEOUT = "whiteout"  # a whiteout with nothing below it to delete

# FileChange.note
OPAQUE = "opaque"  # added/changed: an opaque directory; deleted: hidden by one above it
HARDLINK = "hardlink"  # added/changed: its inode's bytes were counted with another path
BY_WHITEOUT = "whiteout"  # deleted: the path a whiteout names
UNDER_WHITEOUT = "under-whiteout"  # deleted: under a directory a whiteout deletes
REPLACED = "replaced"  # deleted: under a directory a non-directory replaces


class TreeEntry(NamedTuple):
    """One entry of a directory of the final image.

    ``size`` is the lstat size; for a directory, the sum of the sizes of everything under
    it in the final image (each path counted, hard links included). ``mode`` holds the
    permission bits with setuid, setgid and sticky. ``layer`` is the position (0 = bottom)
    of the layer the entry comes from. ``links`` is the inode's link count in that layer.
    """

    name: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    layer: int
    links: int


class FileChange(NamedTuple):
    """One path a layer adds, changes or deletes (see the module's notes on ``note``).

    For a deletion, the type, size, mode and owner are the deleted entry's, and
    ``lower_layer`` the layer holding it; for a change, ``lower_layer`` and ``lower_size``
    describe the entry replaced. ``lower_layer`` is -1 for an addition.
    """

    path: str
    change: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    note: str
    lower_layer: int
    lower_size: int


@dataclass
class LayerAnalysis:
    """One layer's changes. Byte counts follow moby's DiffSize (hard links once)."""

    position: int
    chain_id: str
    size: int = 0  # bytes the layer holds on disk
    entries: int = 0  # entries in its diff directory, whiteouts included
    added: int = 0
    added_bytes: int = 0
    changed: int = 0
    changed_bytes: int = 0  # the new copies' bytes
    deleted: int = 0
    deleted_bytes: int = 0  # the deleted paths' bytes
    wasted_caused: int = 0  # bytes of lower layers this layer makes unreachable
    wasted_held: int = 0  # bytes of this layer later layers make unreachable
    files: list[FileChange] = field(default_factory=list)

    def summary(self) -> dict:
        """Everything but the file list."""
        return {k: v for k, v in self.__dict__.items() if k != "files"}


@dataclass
class ImageAnalysis:
    """The layer explorer's view of one image. ``dirs`` maps a directory of the final image
    ("/" for the root, else "/usr/bin") to its entries sorted by name."""

    image_id: str
    layers: list[LayerAnalysis]
    dirs: dict[str, list[TreeEntry]]
    total_bytes: int
    wasted_bytes: int
    file_count: int  # entries of the final image, directories included, "/" excluded
    seconds: float = 0.0  # how long the walk took
    version: int = VERSION

    @property
    def efficiency(self) -> float:
        """Percent of the layers' bytes still reachable in the final image (100 when empty)."""
        if not self.total_bytes:
            return 100.0
        return 100.0 * (1 - self.wasted_bytes / self.total_bytes)

    def to_json(self) -> bytes:
        doc = {
            "version": self.version,
            "image_id": self.image_id,
            "total_bytes": self.total_bytes,
            "wasted_bytes": self.wasted_bytes,
            "efficiency": self.efficiency,
            "file_count": self.file_count,
            "seconds": self.seconds,
            "layers": [{**la.summary(), "files": la.files} for la in self.layers],
            "dirs": self.dirs,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ImageAnalysis:
        """The analysis ``to_json`` wrote; ValueError when it is not one of this VERSION."""
        with gc_paused():
            doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise ValueError(f"read analysis: not of version {VERSION}")
        layers = []
        with gc_paused():
            for la in doc["layers"]:
                files = [FileChange(*f) for f in la.pop("files")]
                layers.append(LayerAnalysis(**la, files=files))
            dirs = {d: [TreeEntry(*e) for e in entries] for d, entries in doc["dirs"].items()}
        return cls(
            image_id=doc["image_id"],
            layers=layers,
            dirs=dirs,
            total_bytes=doc["total_bytes"],
            wasted_bytes=doc["wasted_bytes"],
            file_count=doc["file_count"],
            seconds=doc["seconds"],
        )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: an analysis allocates a few tuples per file and
    frees none, so the collector would scan the growing heap again and again for nothing
    (a third of the time). Nothing here makes reference cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# An entry as the walk saw it: (type, size, mode, uid, gid, inode, links, opaque) and, once
# merged, the layer it comes from. Plain tuples: the walk makes one per file.
_TYPE, _SIZE, _MODE, _UID, _GID, _INO, _LINKS, _OPAQUE = range(8)


def _clean(name: str) -> str:
    """A name that is not valid UTF-8 (kept by surrogateescape), shown with escapes instead,
    so that it can be stored as JSON anywhere."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _scan(diff: str) -> tuple[list[tuple[str, list[tuple[str, tuple]]]], bool]:
    """The directories under ``diff``, parents before children, each as (path in the image,
    [(name, entry)]), and whether ``diff`` itself is opaque. One scandir per directory, one
    lstat per entry, one getxattr per directory; no file is opened."""
    out: list[tuple[str, list[tuple[str, tuple]]]] = []
    types = _TYPES
    ifdir = stat.S_IFDIR
    ifmt, imode = stat.S_IFMT, stat.S_IMODE
    stack = [("", diff)]
    while stack:
        prefix, where = stack.pop()
        listing: list[tuple[str, tuple]] = []
        with os.scandir(where) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                name = e.name if e.name.isascii() else _clean(e.name)
                fmt = ifmt(st.st_mode)
                if fmt == ifdir:
                    entry = (
                        DIR,
                        0,
                        imode(st.st_mode),
                        st.st_uid,
                        st.st_gid,
                        st.st_ino,
                        1,
                        is_opaque(e.path),
                    )
                    stack.append((prefix + "/" + name, e.path))
                else:
                    kind = WHITEOUT if is_whiteout(st) else types.get(fmt, FILE)
                    entry = (
                        kind,
                        st.st_size,
                        imode(st.st_mode),
                        st.st_uid,
                        st.st_gid,
                        st.st_ino,
                        st.st_nlink,
                        False,
                    )
                listing.append((name, entry))
        out.append((prefix, listing))
    return out, is_opaque(diff)


class _Merge:
    """The merged tree while layers are laid over it, and the bytes each layer wastes.

    ``dirs`` maps each directory of the tree so far ("" for the root) to its entries by name,
    each as ``(layer, entry)``.
    """

    def __init__(self, n_layers: int):
        self.dirs: dict[str, dict[str, tuple[int, tuple]]] = {"": {}}
        # per layer: inode -> [its paths in the layer, how many of them are hidden]
        self.links: list[dict[int, list[int]]] = [{} for _ in range(n_layers)]
        self.wasted_held = [0] * n_layers
        self.wasted_caused = [0] * n_layers

    def waste(self, layer: int, e: tuple, by: int) -> None:
        """``e``, of ``layer``, is out of reach since layer ``by``: are its bytes wasted now?"""
        size = e[_SIZE]
        if not size or e[_TYPE] == DIR:
            return
        if e[_LINKS] > 1:
            group = self.links[layer].get(e[_INO])
            if group is not None:
                group[1] += 1
                if group[1] < group[0]:
                    return  # another path of the inode is still reachable
        self.wasted_held[layer] += size
        self.wasted_caused[by] += size

    def hide_under(self, path: str, by: int, note: str, files: list[FileChange]) -> None:
        """Take everything under the directory ``path`` out of the tree, as deletions."""
        stack = [path]
        while stack:
            d = stack.pop()
            for name, (layer, e) in self.dirs.pop(d, {}).items():
                p = d + "/" + name
                self.waste(layer, e, by)
                files.append(
                    FileChange(
                        p,
                        DELETED,
                        e[_TYPE],
                        e[_SIZE],
                        e[_MODE],
                        e[_UID],
                        e[_GID],
                        note,
                        layer,
                        e[_SIZE],
                    )
                )
                if e[_TYPE] == DIR:
                    stack.append(p)
        self.dirs[path] = {}


def analyze_image(store: Store, image_id: str) -> ImageAnalysis:
    """Analyze the image ``image_id`` of ``store`` (ImageNotFound if absent). Reads only.

    The store's layers must be complete (they are, once the image record exists).
    """
    started = time.perf_counter()
    rec = store.get_image(image_id)
    merge = _Merge(len(rec.layers))
    layers: list[LayerAnalysis] = []
    with gc_paused():
        for position, chain_id in enumerate(rec.layers):
            listings, root_opaque = _scan(store.layer_diff(chain_id))
            layers.append(_apply(merge, position, chain_id, listings, root_opaque))
        dirs, count = _tree(merge)
    for la in layers:
        la.wasted_held = merge.wasted_held[la.position]
        la.wasted_caused = merge.wasted_caused[la.position]
    return ImageAnalysis(
        image_id=rec.id,
        layers=layers,
        dirs=dirs,
        total_bytes=sum(la.size for la in layers),
        wasted_bytes=sum(la.wasted_held for la in layers),
        file_count=count,
        seconds=time.perf_counter() - started,
    )


def _apply(
    merge: _Merge,
    position: int,
    chain_id: str,
    listings: list[tuple[str, list[tuple[str, tuple]]]],
    root_opaque: bool,
) -> LayerAnalysis:
    """Lay one layer over the merged tree; what it adds, changes and deletes."""
    la = LayerAnalysis(position=position, chain_id=chain_id)
    files: list[FileChange] = []
    counted: set[int] = set()  # hard-linked inodes whose bytes this layer counted already
    links = merge.links[position]
    dirs = merge.dirs
    if root_opaque:
        merge.hide_under("", position, OPAQUE, files)
    for d, listing in listings:
        la.entries += len(listing)
        here = dirs[d]  # made when its parent's listing was applied (parents come first)
        for name, e in listing:
            kind = e[_TYPE]
            path = d + "/" + name
            if kind == WHITEOUT:
                below = here.pop(name, None)
                if below is None:
                    files.append(
                        FileChange(
                            path, NOOP_WHITEOUT, WHITEOUT, 0, e[_MODE], e[_UID], e[_GID], "", -1, 0
                        )
                    )
                    continue
                layer, b = below
                if b[_TYPE] == DIR:
                    merge.hide_under(path, position, UNDER_WHITEOUT, files)
                    del dirs[path]
                merge.waste(layer, b, position)
                files.append(
                    FileChange(
                        path,
                        DELETED,
                        b[_TYPE],
                        b[_SIZE],
                        b[_MODE],
                        b[_UID],
                        b[_GID],
                        BY_WHITEOUT,
                        layer,
                        b[_SIZE],
                    )
                )
                continue

            note = ""
            size = e[_SIZE]
            if size and kind != DIR:
                if e[_LINKS] > 1:
                    group = links.get(e[_INO])
                    if group is None:
                        links[e[_INO]] = [1, 0]
                    else:
                        group[0] += 1
                    if e[_INO] in counted:
                        note, size = HARDLINK, 0
                    else:
                        counted.add(e[_INO])
                la.size += size
            elif e[_OPAQUE]:
                note = OPAQUE
            below = here.get(name)
            here[name] = (position, e)
            if below is None:
                if kind == DIR:
                    dirs[path] = {}
                files.append(
                    FileChange(path, ADDED, kind, e[_SIZE], e[_MODE], e[_UID], e[_GID], note, -1, 0)
                )
                la.added += 1
                la.added_bytes += size
                continue
            layer, b = below
            merge.waste(layer, b, position)
            if b[_TYPE] == DIR:
                if kind != DIR:
                    merge.hide_under(path, position, REPLACED, files)
                    del dirs[path]
                elif e[_OPAQUE]:
                    merge.hide_under(path, position, OPAQUE, files)
                elif (e[_MODE], e[_UID], e[_GID]) == (b[_MODE], b[_UID], b[_GID]):
                    continue  # a parent named again (a layer tar names them): no change
            elif kind == DIR:
                dirs[path] = {}
            files.append(
                FileChange(
                    path, CHANGED, kind, e[_SIZE], e[_MODE], e[_UID], e[_GID], note, layer, b[_SIZE]
                )
            )
            la.changed += 1
            la.changed_bytes += size
    for f in files:
        if f.change == DELETED:
            la.deleted += 1
            la.deleted_bytes += f.size
    files.sort()
    la.files = files
    return la


def _tree(merge: _Merge) -> tuple[dict[str, list[TreeEntry]], int]:
    """The final image's directories ("/" for the root), each with its entries sorted by
    name, a directory's size being the sum of what is under it; and the number of entries."""
    totals: dict[str, int] = {}
    out: dict[str, list[TreeEntry]] = {}
    count = 0
    # deepest first, so that every subdirectory's total is known before its parent's
    for d in sorted(merge.dirs, key=lambda p: p.count("/"), reverse=True):
        children = merge.dirs[d]
        count += len(children)
        rows = []
        total = 0
        for name, (layer, e) in children.items():
            size = totals[d + "/" + name] if e[_TYPE] == DIR else e[_SIZE]
            total += size
            rows.append(
                TreeEntry(name, e[_TYPE], size, e[_MODE], e[_UID], e[_GID], layer, e[_LINKS])
            )
        rows.sort()
        totals[d] = total
        out[d or "/"] = rows
    return out, count


def cache_path(store: Store, image_id: str) -> str:
    return os.path.join(store.image_dir(image_id), CACHE_NAME)


def load_or_analyze(store: Store, image_id: str, *, refresh: bool = False) -> ImageAnalysis:
    """The image's analysis from its cache file, else analyzed now and cached.

    The cache is written atomically (a temporary file in the store's ``tmp/``, then a
    rename), so readers never see half of it; a cache that cannot be read or is of another
    VERSION is redone, and a cache that cannot be written (the image was removed meanwhile,
    a read-only store) is skipped. Idempotent; ``refresh`` ignores the cache.
    """
    path = cache_path(store, image_id)
    if not refresh:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            with open(path, "rb") as f:
                return ImageAnalysis.from_json(f.read())
    analysis = analyze_image(store, image_id)
    tmp = os.path.join(store.tmp_dir, f"write-{os.getpid()}-{secrets.token_hex(6)}")
    try:
        with open(tmp, "xb") as f:
            f.write(analysis.to_json())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return analysis
