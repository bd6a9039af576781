"""Images in and out of the store: ``docker save``, ``docker load`` and ``docker push``.

* ``layer_tar_stream(store, chain_id)`` gives back a layer's tar. Layers unpacked with
  tar-split metadata (``tarsplit``; pulls and loads keep it) come back byte for byte, so
  their sha256 is the DiffID the image config names. Others are regenerated from the
  overlay-form ``diff/`` (``directory_tar``): whiteouts and opaque directories turned back
  into ``.wh.`` entries, owners, modes, mtimes, xattrs, hard links, symlinks and devices
  kept, entries in sorted order, so the same directory always gives the same bytes.
* ``save(store, names, out)`` writes the tarball ``docker save`` writes since Docker 25: an
  OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/``) whose
  ``manifest.json`` and ``repositories`` let Docker 20.10 load it too; the legacy
  ``<id>/layer.tar`` and ``<config>.json`` entries are hard links to the blobs.
* ``load(store, tarball, on_output)`` reads what ``docker save`` writes (20.10's legacy
  layout, newer OCI ones, gzip- or zstd-compressed), verifies every layer against its
  DiffID, and commits nothing unless everything verified.
* ``push(store, client, ref, on_progress)`` pushes an image as dockerd does: layers gzip
  compressed (isal, deterministic, so a second push finds them), config, Docker schema2
  manifest; blobs the registry has are skipped, blobs another repository of the same
  registry has are mounted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

from dockweb.runtime import events, overlay
from dockweb.runtime import manifest as mf
from dockweb.runtime import reference as refs
from dockweb.runtime.archive import apply_layer
from dockweb.runtime.compression import compression_of_media_type, open_decompressed
from dockweb.runtime.digest import HashingReader, chain_ids, sha256_digest, short_id
from dockweb.runtime.errors import DockwebError, ImageNotFound
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import LayerRecord, Store, parse_time
from dockweb.runtime.tarsplit import FILE_NAME as TAR_SPLIT
from dockweb.runtime.tarsplit import TarSplitError, iter_tar

try:
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    import zlib as _zlib

__all__ = [
    "LoadError",
    "PushResult",
    "directory_tar",
    "layer_tar_stream",
    "load",
    "push",
    "save",
]

Callback = Callable[[dict], None]

_BLOCK = 512
_READ_SIZE = 1 << 20
_OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'
_ANNOTATION_NAME = "io.containerd.image.name"
_ANNOTATION_REF = "org.opencontainers.image.ref.name"
_PUSH_CONCURRENCY = 5  # dockerd's max-concurrent-uploads
_GZIP_LEVEL = 1


class LoadError(DockwebError):
    """The tarball is not a ``docker save`` archive, or a layer in it is damaged."""


# --- layer tars -------------------------------------------------------------------------


def layer_tar_stream(store: Store, chain_id: str) -> Iterator[bytes]:
    """The layer's tar, in chunks: its original bytes when tar-split metadata exists (the
    sha256 is then the DiffID), else regenerated from ``diff/`` (``directory_tar``)."""
    layer_dir = store.layer_dir(chain_id)
    split = os.path.join(layer_dir, TAR_SPLIT)
    if os.path.exists(split):
        return iter_tar(split, os.path.join(layer_dir, "diff"))
    return directory_tar(os.path.join(layer_dir, "diff"))


def _write_layer_tar(store: Store, rec: LayerRecord, out: IO[bytes]) -> int:
    """Write the layer's tar to ``out``; check it against the DiffID. Returns its size.

    Tries tar-split first; if that fails or gives other bytes, regenerates; if that does
    not match either, raises DockwebError rather than hand out an inconsistent image.
    """
    layer_dir = store.layer_dir(rec.chain_id)
    diff = os.path.join(layer_dir, "diff")
    split = os.path.join(layer_dir, TAR_SPLIT)
    sources: list[Callable[[], Iterator[bytes]]] = []
    if os.path.exists(split):
        sources.append(lambda: iter_tar(split, diff))
    sources.append(lambda: directory_tar(diff))
    found = ""
    for make in sources:
        out.seek(0)
        out.truncate()
        h = hashlib.sha256()
        size = 0
        try:
            for chunk in make():
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
        except TarSplitError:
            continue
        found = "sha256:" + h.hexdigest()
        if found == rec.diff_id:
            out.flush()
            return size
    raise DockwebError(
        f"layer {short_id(rec.diff_id)} cannot be reproduced: its tar gives {found}, the "
        f"image names {rec.diff_id} (the layer has no tar-split metadata; pull or load the "
        "image again to get it)"
    )


def directory_tar(diff: str) -> Iterator[bytes]:
    """A deterministic PAX tar of an overlay-form layer directory, in chunks.

    0/0 character devices become ``.wh.<name>`` whiteouts, ``trusted.overlay.opaque=y``
    a ``.wh..wh..opq`` entry after its directory. Entries are in byte order of their names,
    parents first; the second path of a hard-linked inode is a link to the first; mtimes
    are whole seconds; every xattr but ``trusted.overlay.*`` goes into PAX records.
    Sockets are skipped, as Docker does.
    """
    root = os.fsencode(diff)
    seen: dict[tuple[int, int], bytes] = {}
    stack: list[bytes] = [b""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(root + b"/" + rel_dir if rel_dir else root) as it:
            names = sorted(e.name for e in it)
        children: list[bytes] = []
        for name in names:
            rel = rel_dir + b"/" + name if rel_dir else name
            path = root + b"/" + rel
            st = os.lstat(path)
            mode = st.st_mode
            if stat.S_ISSOCK(mode):
                continue
            common = {
                "mode": stat.S_IMODE(mode),
                "uid": st.st_uid,
                "gid": st.st_gid,
                "mtime": int(st.st_mtime),
                "xattrs": _xattrs(path),
            }
            if overlay.is_whiteout(st):
                parent = rel_dir + b"/" if rel_dir else b""
                common.update(mode=0o600, xattrs=[])
                yield _header(parent + b".wh." + name, b"0", size=0, **common)
            elif stat.S_ISDIR(mode):
                opaque = overlay.is_opaque(path)
                yield _header(rel + b"/", b"5", **common)
                if opaque:
                    common.update(xattrs=[])
                    yield _header(rel + b"/.wh..wh..opq", b"0", size=0, **common)
                children.append(rel)
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    yield _header(rel, b"1", linkname=seen[key], **common)
                    continue
                if st.st_nlink > 1:
                    seen[key] = rel
                yield _header(rel, b"0", size=st.st_size, **common)
                yield from _file_chunks(path, st.st_size)
            elif stat.S_ISLNK(mode):
                yield _header(rel, b"2", linkname=os.readlink(path), **common)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                kind = b"3" if stat.S_ISCHR(mode) else b"4"
                dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
                yield _header(rel, kind, dev=dev, **common)
            elif stat.S_ISFIFO(mode):
                yield _header(rel, b"6", **common)
        stack.extend(reversed(children))
    yield bytes(2 * _BLOCK)


def _getxattr(path: bytes, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def _xattrs(path: bytes) -> list[tuple[str, bytes]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        if overlay.is_overlay_xattr(name):
            continue
        value = _getxattr(path, name)
        if value is not None:
            out.append((name, value))
    return out


def _file_chunks(path: bytes, size: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        left = size
        while left:
            chunk = f.read(min(_READ_SIZE, left))
            if not chunk:
                raise DockwebError(f"{os.fsdecode(path)}: file shrank while being read")
            left -= len(chunk)
            yield chunk
    if size % _BLOCK:
        yield bytes(_BLOCK - size % _BLOCK)


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _header(
    name: bytes,
    typeflag: bytes,
    *,
    mode: int,
    uid: int,
    gid: int,
    mtime: int,
    size: int = 0,
    linkname: bytes = b"",
    dev: tuple[int, int] = (0, 0),
    xattrs: list[tuple[str, bytes]] = (),
) -> bytes:
    """A ustar header, preceded by a PAX header when something does not fit in ustar."""
    pax: list[bytes] = []
    if len(name) > 100:
        pax.append(_pax_record(b"path", name))
    if len(linkname) > 100:
        pax.append(_pax_record(b"linkpath", linkname))
    if uid > 0o7777777:
        pax.append(_pax_record(b"uid", str(uid).encode()))
    if gid > 0o7777777:
        pax.append(_pax_record(b"gid", str(gid).encode()))
    if size > 0o77777777777:
        pax.append(_pax_record(b"size", str(size).encode()))
    if mtime < 0 or mtime > 0o77777777777:
        pax.append(_pax_record(b"mtime", str(mtime).encode()))
    for key, value in xattrs:
        pax.append(_pax_record(b"SCHILY.xattr." + os.fsencode(key), value))
    out = b""
    if pax:
        data = b"".join(pax)
        base = posixpath.basename(name.rstrip(b"/")) or b"root"
        pax_name = (b"PaxHeaders.0/" + base)[:100]
        out = _ustar(pax_name, b"x", 0o644, 0, 0, 0, len(data), b"", (0, 0))
        out += data + bytes(-len(data) % _BLOCK)
    return out + _ustar(
        name[:100],
        typeflag,
        mode,
        min(uid, 0o7777777),
        min(gid, 0o7777777),
        min(max(mtime, 0), 0o77777777777),
        min(size, 0o77777777777),
        linkname[:100],
        dev,
    )


def _ustar(name, typeflag, mode, uid, gid, mtime, size, linkname, dev) -> bytes:
    block = bytearray(_BLOCK)
    block[0 : len(name)] = name
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(uid, 8)
    block[116:124] = _octal(gid, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(mtime, 12)
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = b"ustar\x0000"
    block[329:337] = _octal(dev[0], 8)
    block[337:345] = _octal(dev[1], 8)
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


# --- save -------------------------------------------------------------------------------


@dataclass
class _Saved:
    image_id: str
    tags: list[refs.Reference]


def _resolve_names(store: Store, names: list[str]) -> list[_Saved]:
    """Images and tags to save, as moby's tarexporter.parseNames picks them."""
    found: dict[str, _Saved] = {}

    def add(image_id: str, ref: refs.Reference | None) -> None:
        item = found.setdefault(image_id, _Saved(image_id, []))
        if ref is None or ref.digest:
            return
        ref = refs.tag_name_only(ref)
        if all(t.string() != ref.string() for t in item.tags):
            item.tags.append(ref)

    for name in names:
        parsed = refs.parse_any_reference(name)
        if not parsed.path and parsed.digest:
            add(store.lookup(parsed.digest).id, None)
            continue
        if parsed.familiar_name == "sha256" or parsed.is_name_only:
            by_name = [
                (image_id, r)
                for image_id, rs in store.all_references().items()
                for r in rs
                if r.name == parsed.name and not parsed.familiar_name == "sha256"
            ]
            for image_id, r in sorted(by_name, key=lambda p: p[1].string()):
                add(image_id, r)
            if not by_name:
                try:
                    add(store.lookup(name).id, None)
                except ImageNotFound:
                    # moby names the argument as given (no ":latest" added)
                    raise ImageNotFound(f"No such image: {name}") from None
            continue
        image_id = store.resolve_reference(parsed)
        if not image_id or not store.has_image(image_id):
            raise ImageNotFound(f"No such image: {parsed.familiar_string()}")
        add(image_id, parsed)
    return list(found.values())


def save(store: Store, names: list[str], out: IO[bytes], *, on_progress: Callback | None = None):
    """Write the images ``names`` name as one ``docker save`` tarball to ``out``.

    Streams: ``out`` needs only ``write``. Each layer's tar goes through an unnamed
    temporary file of the store's ``tmp/`` (its size must precede it in the tarball), one
    layer at a time. Deterministic: the same images give the same bytes. Raises
    ImageNotFound, or DockwebError when a layer cannot be reproduced.
    """
    emit = on_progress or (lambda event: None)
    items = _resolve_names(store, names)
    if not items:
        raise DockwebError("empty export - not implemented")
    tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
    dirs_done: set[str] = set()

    def add_dir(name: str) -> None:
        if name not in dirs_done:
            dirs_done.add(name)
            tar.addfile(_tarinfo(name, tarfile.DIRTYPE, mode=0o755))

    def add_bytes(name: str, data: bytes, mtime: int = 0) -> None:
        tar.addfile(_tarinfo(name, size=len(data), mtime=mtime), io.BytesIO(data))

    add_dir("blobs")
    add_dir("blobs/sha256")
    layer_sizes: dict[str, int] = {}
    manifest_items = []
    index_manifests = []
    repositories: dict[str, dict[str, str]] = {}
    legacy: list[tuple[str, str, bytes]] = []  # (v1 id, layer blob path, v1 json)
    for item in items:
        rec = store.get_image(item.image_id)
        if not rec.layers:
            raise DockwebError("empty export - not implemented")
        created = int(parse_time(rec.created).timestamp()) if rec.config.get("created") else 0
        created = max(created, 0)
        layer_paths = []
        parent_v1 = ""
        for i, chain in enumerate(rec.layers):
            layer = store.get_layer(chain)
            blob = "blobs/sha256/" + layer.diff_id.split(":", 1)[1]
            if layer.diff_id not in layer_sizes:
                emit({"kind": "layer", "id": short_id(layer.diff_id), "status": "Saving layer"})
                with tempfile.TemporaryFile(dir=store.tmp_dir) as tmp:
                    size = _write_layer_tar(store, layer, tmp)
                    tmp.seek(0)
                    tar.addfile(_tarinfo(blob, size=size, mtime=created), tmp)
                layer_sizes[layer.diff_id] = size
            layer_paths.append(blob)
            top = i == len(rec.layers) - 1
            v1_id, v1_json = _v1_layer(chain, parent_v1, rec.config if top else None)
            legacy.append((v1_id, blob, v1_json))
            parent_v1 = v1_id
        config_bytes = _read_config(store, rec.id)
        config_blob = "blobs/sha256/" + rec.id.split(":", 1)[1]
        add_bytes(config_blob, config_bytes, created)
        oci_manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mf.OCI_MANIFEST,
                "config": {
                    "mediaType": mf.OCI_CONFIG,
                    "digest": rec.id,
                    "size": len(config_bytes),
                },
                "layers": [
                    {"mediaType": mf.OCI_LAYER, "digest": d, "size": layer_sizes[d]}
                    for d in rec.diff_ids
                ],
            },
            separators=(",", ":"),
        ).encode()
        manifest_digest = sha256_digest(oci_manifest)
        add_bytes("blobs/sha256/" + manifest_digest.split(":", 1)[1], oci_manifest)
        descriptor = {
            "mediaType": mf.OCI_MANIFEST,
            "digest": manifest_digest,
            "size": len(oci_manifest),
        }
        platform = {
            "architecture": rec.config.get("architecture", ""),
            "os": rec.config.get("os", ""),
        }
        if rec.config.get("variant"):
            platform["variant"] = rec.config["variant"]
        descriptor["platform"] = platform
        for ref in item.tags:
            index_manifests.append(
                dict(
                    descriptor,
                    annotations={_ANNOTATION_NAME: ref.string(), _ANNOTATION_REF: ref.tag},
                )
            )
            repositories.setdefault(ref.familiar_name, {})[ref.tag] = parent_v1.split(":")[-1]
        if not item.tags:
            index_manifests.append(descriptor)
        manifest_items.append(
            {
                "Config": config_blob,
                "RepoTags": [r.familiar_string() for r in item.tags] or None,
                "Layers": layer_paths,
            }
        )
        legacy.append(("config:" + rec.id.split(":", 1)[1], config_blob, b""))
    # the layout Docker wrote before 25, as hard links to the blobs: no bytes twice
    for v1_id, target, v1_json in legacy:
        if v1_id.startswith("config:"):
            tar.addfile(_tarinfo(v1_id[7:] + ".json", tarfile.LNKTYPE, linkname=target))
            continue
        if v1_id in dirs_done:
            continue
        add_dir(v1_id)
        add_bytes(f"{v1_id}/VERSION", b"1.0")
        add_bytes(f"{v1_id}/json", v1_json)
        tar.addfile(_tarinfo(f"{v1_id}/layer.tar", tarfile.LNKTYPE, linkname=target))
    add_bytes(
        "index.json",
        json.dumps(
            {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": index_manifests},
            separators=(",", ":"),
        ).encode()
        + b"\n",
    )
    add_bytes("manifest.json", json.dumps(manifest_items, separators=(",", ":")).encode() + b"\n")
    add_bytes("oci-layout", _OCI_LAYOUT)
    if repositories:
        add_bytes("repositories", json.dumps(repositories, separators=(",", ":")).encode() + b"\n")
    tar.close()
    for image_id in dict.fromkeys(item.image_id for item in items):
        events.image(store.root, "save", image_id, image_id, events.image_labels(store, image_id))


def _read_config(store: Store, image_id: str) -> bytes:
    with open(os.path.join(store.image_dir(image_id), "config.json"), "rb") as f:
        return f.read()


def _v1_layer(chain: str, parent: str, config: dict | None) -> tuple[str, bytes]:
    """A v1 ID and ``json`` for the legacy layer directory (shaped as Docker's, not
    byte-identical: nothing reads them when ``manifest.json`` is there)."""
    doc: dict = {"created": "1970-01-01T00:00:00Z", "layer_id": chain}
    if config is not None:
        doc = {k: v for k, v in config.items() if k not in ("rootfs", "history")}
        doc["layer_id"] = chain
    if parent:
        doc["parent"] = "sha256:" + parent
    v1_id = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    doc.pop("layer_id")
    doc["id"] = v1_id
    if parent:
        doc["parent"] = parent
    return v1_id, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _tarinfo(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    *,
    size: int = 0,
    mode: int = 0o644,
    mtime: int = 0,
    linkname: str = "",
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = mtime
    info.linkname = linkname
    info.uname = info.gname = ""
    return info


# --- load -------------------------------------------------------------------------------


@dataclass
class _LoadImage:
    config: bytes
    layers: list[str]  # member names, bottom first
    layer_types: list[str]  # compression per layer: "auto" or a media type's
    tags: list[refs.Reference]
    blob_digests: list[str | None]  # verify the blob itself too (OCI layouts)


def load(
    store: Store,
    tarball: IO[bytes],
    on_output: Callback | None = None,
    *,
    quiet: bool = False,
) -> list[str]:
    """Load what ``docker save`` wrote; returns the loaded image IDs.

    All or nothing: every layer is unpacked into scratch space and checked against its
    DiffID first; layers, images and tags are committed only when all verified. Layers the
    store has are not unpacked again. ``on_output`` gets Docker's lines as
    ``{"kind": "message", "text": ...}`` and, unless ``quiet``, ``Loading layer`` progress.
    Raises LoadError.
    """
    emit = on_output or (lambda event: None)
    with _seekable(tarball, store.tmp_dir) as raw:
        try:
            archive = tarfile.open(fileobj=raw, mode="r:")
        except tarfile.TarError as e:
            raise LoadError(f"invalid tar file: {e}") from None
        with archive:
            members = {_clean(m.name): m for m in archive.getmembers()}
            wanted = _read_layout(archive, members)
            return _load_images(store, archive, members, wanted, emit, quiet)


@contextlib.contextmanager
def _seekable(stream: IO[bytes], tmp_dir: str) -> Iterator[IO[bytes]]:
    """``stream`` itself when it is an uncompressed seekable file, else a spooled copy of its
    decompressed bytes (gzip and zstd, as ``docker load`` accepts)."""
    try:
        pos = stream.tell()
        head = stream.read(6)
        stream.seek(pos)
        seekable = True
    except (OSError, ValueError, AttributeError):
        seekable, head = False, b""
    if seekable and not (head.startswith(b"\x1f\x8b") or head.startswith(b"\x28\xb5\x2f\xfd")):
        yield stream
        return
    with tempfile.TemporaryFile(dir=tmp_dir) as spool:
        reader = open_decompressed(stream, "auto")
        while chunk := reader.read(_READ_SIZE):
            spool.write(chunk)
        spool.seek(0)
        yield spool


def _clean(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _member_bytes(
    archive: tarfile.TarFile, members: dict, name: str, limit: int = 64 << 20
) -> bytes:
    f = _open_member(archive, members, name)
    data = f.read(limit + 1)
    if len(data) > limit:
        raise LoadError(f"{name}: too large")
    return data


def _open_member(archive: tarfile.TarFile, members: dict, name: str) -> IO[bytes]:
    member = members.get(_clean(name))
    seen = 0
    while member is not None and member.issym() and seen < 40:
        target = posixpath.join(posixpath.dirname(_clean(member.name)), member.linkname)
        member = members.get(_clean(target))
        seen += 1
    if member is None:
        raise LoadError(f"open {name}: no such file or directory")
    try:
        f = archive.extractfile(member)
    except (KeyError, tarfile.TarError) as e:
        raise LoadError(f"open {name}: {e}") from None
    if f is None:
        raise LoadError(f"open {name}: not a regular file")
    return f


def _read_layout(archive: tarfile.TarFile, members: dict) -> list[_LoadImage]:
    if "manifest.json" in members:
        try:
            items = json.loads(_member_bytes(archive, members, "manifest.json"))
        except ValueError as e:
            raise LoadError(f"manifest.json: {e}") from None
        if items is None:
            raise LoadError("invalid manifest, manifest cannot be null (but can be [])")
        out = []
        for item in items:
            tags = []
            for t in item.get("RepoTags") or []:
                ref = refs.parse_normalized_named(t)
                if not ref.tag:
                    raise LoadError(f'invalid tag "{t}"')
                tags.append(ref)
            layers = list(item.get("Layers") or [])
            out.append(
                _LoadImage(
                    _member_bytes(archive, members, item.get("Config", "")),
                    layers,
                    ["auto"] * len(layers),
                    tags,
                    [None] * len(layers),
                )
            )
        return out
    if "index.json" in members:
        return _read_oci(archive, members)
    raise LoadError("open manifest.json: no such file or directory")


def _read_oci(archive: tarfile.TarFile, members: dict) -> list[_LoadImage]:
    def blob(digest: str) -> bytes:
        data = _member_bytes(archive, members, "blobs/" + digest.replace(":", "/"))
        if sha256_digest(data) != digest:
            raise LoadError(f"blob {digest}: digest mismatch")
        return data

    index = mf.parse_manifest(_member_bytes(archive, members, "index.json"), mf.OCI_INDEX)
    out: list[_LoadImage] = []
    for desc in index.manifests:
        parsed = mf.parse_manifest(blob(desc.digest), desc.media_type)
        if isinstance(parsed, mf.Index):
            present = tuple(
                d
                for d in parsed.manifests
                if not d.is_attestation and _clean("blobs/" + d.digest.replace(":", "/")) in members
            )
            chosen = mf.select_manifest(mf.Index(parsed.media_type, present))
            parsed = mf.parse_manifest(blob(chosen.digest), chosen.media_type)
        tags = []
        name = desc.annotations.get(_ANNOTATION_NAME) or desc.annotations.get(_ANNOTATION_REF, "")
        with contextlib.suppress(DockwebError):
            ref = refs.parse_normalized_named(name) if name else None
            if ref is not None and ref.tag:
                tags.append(ref)
        out.append(
            _LoadImage(
                blob(parsed.config.digest),
                ["blobs/" + d.digest.replace(":", "/") for d in parsed.layers],
                [compression_of_media_type(d.media_type) for d in parsed.layers],
                tags,
                [d.digest for d in parsed.layers],
            )
        )
    return out


def _load_images(store, archive, members, wanted, emit, quiet) -> list[str]:
    scratch: dict[str, tuple[str, LayerRecord]] = {}  # chain -> (scratch dir, record)
    locks = []
    try:
        for item in wanted:
            try:
                config = json.loads(item.config)
            except ValueError as e:
                raise LoadError(f"invalid image config: {e}") from None
            diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
            if len(diff_ids) != len(item.layers):
                raise LoadError(
                    f"invalid manifest, layers length mismatch: expected {len(item.layers)}, "
                    f"got {len(diff_ids)}"
                )
            if config.get("os", "linux") != "linux":
                raise LoadError(f"cannot load {config.get('os')} image on linux")
            chains = chain_ids(diff_ids)
            for i, (diff_id, chain) in enumerate(zip(diff_ids, chains, strict=True)):
                if chain in scratch:
                    continue
                lock = store.layer_lock(chain)
                locks.append(lock)
                if store.has_layer(chain):
                    lock.acquire(shared=True)
                    if store.has_layer(chain):
                        continue
                lock.acquire()
                if store.has_layer(chain):
                    continue
                scratch[chain] = _unpack_layer(
                    store,
                    archive,
                    members,
                    item,
                    i,
                    diff_id,
                    chain,
                    chains[i - 1] if i else "",
                    emit,
                    quiet,
                )
        # every layer verified: now make them visible, parents first
        for path, record in scratch.values():
            store.commit_layer(path, record)
        loaded = []
        with store.locked():
            for item in wanted:
                rec = store.put_image(item.config)
                loaded.append(rec.id)
                for ref in item.tags:
                    previous = store.resolve_reference(ref)
                    if previous and previous != rec.id:
                        text = (
                            f"The image {ref.familiar_string()} already exists, renaming "
                            f"the old one with ID {previous} to empty string"
                        )
                        emit({"kind": "message", "text": text})
                    store.add_reference(ref, rec.id, force=True)
                    emit({"kind": "message", "text": f"Loaded image: {ref.familiar_string()}"})
        if wanted and not wanted[-1].tags:
            # as moby: the IDs are printed when the last image had no tag
            for image_id in loaded:
                emit({"kind": "message", "text": f"Loaded image ID: {image_id}"})
        for image_id in loaded:
            events.image(
                store.root, "load", image_id, image_id, events.image_labels(store, image_id)
            )
        return loaded
    finally:
        for path, _ in scratch.values():
            if os.path.exists(path):
                shutil.rmtree(path, ignore_errors=True)
        for lock in locks:
            lock.release()


def _unpack_layer(store, archive, members, item, i, diff_id, chain, parent, emit, quiet):
    name = item.layers[i]
    member = members.get(_clean(name))
    total = member.size if member is not None else None
    layer_id = short_id(diff_id)

    def on_bytes(count: int) -> None:
        if not quiet:
            emit(
                {
                    "kind": "layer",
                    "id": layer_id,
                    "status": "Loading layer",
                    "current": count,
                    "total": total,
                }
            )

    path = store.new_layer_dir(chain)
    f = _open_member(archive, members, name)
    blob = HashingReader(f, on_bytes)
    try:
        unpacked = HashingReader(open_decompressed(blob, item.layer_types[i]))
        size = apply_layer(
            unpacked, os.path.join(path, "diff"), tar_split=os.path.join(path, TAR_SPLIT)
        )
        while unpacked.read(_READ_SIZE):
            pass
    except DockwebError as e:
        shutil.rmtree(path, ignore_errors=True)
        raise LoadError(f"load layer {layer_id} ({name}): {e}") from e
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    expected_blob = item.blob_digests[i]
    if expected_blob and blob.digest() != expected_blob:
        shutil.rmtree(path, ignore_errors=True)
        raise LoadError(
            f"layer {name}: blob digest mismatch: expected {expected_blob}, got {blob.digest()}"
        )
    if unpacked.digest() != diff_id:
        shutil.rmtree(path, ignore_errors=True)
        raise LoadError(
            f'invalid diffID for layer {i}: expected "{diff_id}", got "{unpacked.digest()}"'
        )
    return path, LayerRecord(chain_id=chain, diff_id=diff_id, parent=parent, size=size, link="")


# --- push -------------------------------------------------------------------------------


@dataclass
class PushResult:
    tag: str
    digest: str
    size: int


class _Gzip:
    """Compress a chunk stream into ``out`` while hashing both sides (deterministic)."""

    def __init__(self, out: IO[bytes]):
        self.out = out
        self.obj = _zlib.compressobj(_GZIP_LEVEL, _zlib.DEFLATED, 31)
        self.blob_hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._emit(self.obj.compress(data))

    def close(self) -> None:
        self._emit(self.obj.flush())

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob_hash.update(data)
            self.size += len(data)
            self.out.write(data)


class _ProgressReader:
    def __init__(self, f: IO[bytes], on_bytes: Callable[[int], None]):
        self.f = f
        self.count = 0
        self.on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.count += len(data)
        self.on_bytes(self.count)
        return data


def push(
    store: Store,
    client: RegistryClient,
    reference: str,
    on_progress: Callback | None = None,
    *,
    max_concurrent: int = _PUSH_CONCURRENCY,
) -> PushResult:
    """``docker push NAME[:TAG]``: layers, config, then a Docker schema2 manifest.

    Idempotent. Progress events as ``pull`` (``kind`` "message" or "layer"; layer IDs are
    the DiffIDs' short form, as Docker shows). After the push the image gets the
    ``NAME@digest`` reference, as ``docker push`` records it.
    """
    emit = on_progress or (lambda event: None)
    lock = threading.Lock()

    def safe_emit(event: dict) -> None:
        with lock, contextlib.suppress(Exception):
            emit(event)

    ref = refs.parse_normalized_named(reference)
    if ref.digest:
        raise DockwebError("cannot push a digest reference")
    ref = refs.tag_name_only(ref)
    safe_emit({"kind": "message", "text": f"The push refers to repository [{ref.name}]"})
    if not any(r.name == ref.name for rs in store.all_references().values() for r in rs):
        raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
    image_id = store.resolve_reference(ref)
    if not image_id or not store.has_image(image_id):
        raise ImageNotFound(f"tag does not exist: {ref.familiar_string()}")
    rec = store.get_image(image_id)
    host, repo = ref.domain, ref.path
    layers = [store.get_layer(c) for c in rec.layers]
    top_first = list(reversed(layers))
    for layer in top_first:
        safe_emit({"kind": "layer", "id": short_id(layer.diff_id), "status": "Preparing"})
    for layer in top_first[max_concurrent:]:
        safe_emit({"kind": "layer", "id": short_id(layer.diff_id), "status": "Waiting"})
    mount_from = _mount_candidates(store, host, repo)

    def one(layer: LayerRecord) -> dict:
        return _push_layer(
            store, client, host, repo, layer, mount_from.get(layer.chain_id, []), safe_emit
        )

    with ThreadPoolExecutor(max_workers=max(1, max_concurrent)) as pool:
        descriptors = {layer.chain_id: pool.submit(one, layer) for layer in top_first}
        ordered = [descriptors[layer.chain_id].result() for layer in layers]
    config_bytes = _read_config(store, rec.id)
    client.push_blob(host, repo, config_bytes, rec.id, len(config_bytes))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mf.DOCKER_MANIFEST,
            "config": {"mediaType": mf.DOCKER_CONFIG, "size": len(config_bytes), "digest": rec.id},
            "layers": ordered,
        },
        indent=3,
    ).encode()
    digest = client.put_manifest(host, repo, ref.tag, manifest, mf.DOCKER_MANIFEST)
    with store.locked():
        store.put_manifest(digest, manifest)
        with contextlib.suppress(DockwebError):
            store.add_reference(refs.Reference(ref.domain, ref.path, None, digest), rec.id)
    safe_emit({"kind": "message", "text": f"{ref.tag}: digest: {digest} size: {len(manifest)}"})
    events.image(
        store.root,
        "push",
        ref.familiar_string(),
        ref.familiar_name,
        events.image_labels(store, rec.id),
    )
    return PushResult(tag=ref.tag, digest=digest, size=len(manifest))


def _mount_candidates(store: Store, host: str, repo: str) -> dict[str, list[str]]:
    """Chain ID -> other repositories of the same registry whose images hold that layer."""
    out: dict[str, list[str]] = {}
    for image_id, rs in store.all_references().items():
        repos = sorted({r.path for r in rs if r.domain == host and r.path != repo})
        if not repos:
            continue
        with contextlib.suppress(ImageNotFound):
            for chain in store.get_image(image_id).layers:
                lst = out.setdefault(chain, [])
                lst.extend(r for r in repos if r not in lst)
    return out


def _push_layer(store, client, host, repo, layer: LayerRecord, candidates, emit) -> dict:
    layer_id = short_id(layer.diff_id)

    def status(text: str, current: int | None = None, total: int | None = None) -> None:
        emit({"kind": "layer", "id": layer_id, "status": text, "current": current, "total": total})

    # the blob a pull brought is what the registry most likely has already
    if layer.blob_digest and compression_of_media_type_safe(layer.media_type) == "gzip":
        known = {
            "mediaType": mf.DOCKER_LAYER,
            "size": layer.compressed_size,
            "digest": layer.blob_digest,
        }
        if client.blob_exists(host, repo, layer.blob_digest):
            status("Layer already exists")
            return known
        for source in candidates:
            with contextlib.suppress(DockwebError):
                if client.mount_blob(host, repo, layer.blob_digest, source):
                    status(f"Mounted from {source}")
                    return known
    with tempfile.TemporaryFile(dir=store.tmp_dir) as tmp:
        gz = _Gzip(tmp)
        with tempfile.TemporaryFile(dir=store.tmp_dir) as tar_tmp:
            _write_layer_tar(store, layer, tar_tmp)
            tar_tmp.seek(0)
            while chunk := tar_tmp.read(_READ_SIZE):
                gz.write(chunk)
        gz.close()
        digest = "sha256:" + gz.blob_hash.hexdigest()
        descriptor = {"mediaType": mf.DOCKER_LAYER, "size": gz.size, "digest": digest}
        if client.blob_exists(host, repo, digest):
            status("Layer already exists")
            return descriptor
        tmp.seek(0)
        reader = _ProgressReader(tmp, lambda n: status("Pushing", n, gz.size))
        client.push_blob(host, repo, reader, digest, gz.size)
    status("Pushed")
    return descriptor


def compression_of_media_type_safe(media_type: str) -> str:
    try:
        return compression_of_media_type(media_type)
    except (DockwebError, ValueError, KeyError):
        return ""
