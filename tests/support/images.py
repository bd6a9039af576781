"""An independent image builder and pusher, to check dockweb against code it did not write.

Nothing here imports dockweb: layers are written with `tarfile`, hashed with `hashlib`,
compressed with zlib (gzip) or `zstandard`, and pushed with `urllib3` over plain HTTP, so a
bug shared by dockweb's runtime and this module would have to be written twice.

Building blocks
---------------
- `Entry` and its constructors `dir_`, `file`, `symlink`, `hardlink`, `fifo`, `chardev`,
  `blockdev`, `whiteout` (`.wh.<name>`) and `opaque` (`<dir>/.wh..wh..opq`). Every entry takes
  `uid`, `gid`, `mode` (permission bits including setuid, setgid and sticky), `mtime` (seconds,
  may be negative or fractional: then it is written as a PAX `mtime` record) and `xattrs`
  (written as PAX `SCHILY.xattr.<name>` records; values are bytes). Paths are `str` or `bytes`
  (bytes that are not UTF-8 are kept as they are); they are written exactly as given, so
  `../x` and `/x` make hostile layers.
- `Layer(entries, compression="gzip"|"zstd"|"none", tar_format="pax"|"gnu"|"ustar")` builds a
  layer in memory. `Layer.from_tar(raw_bytes, compression)` wraps a tar made by hand;
  `Layer.from_blob(data, media_type)` wraps a non-tar blob (attestations);
  `Layer.stream(path, fill, compression)` writes a large layer to disk without holding it in
  memory (`fill(tarfile.TarFile)` adds the members). A layer exposes `diff_id` (sha256 of
  the tar), `digest` and `size` (of the blob as pushed), `compression`, `media_type(format)`,
  `read_blob()` and `open_blob()`. Compression is deterministic (gzip header mtime 0), so
  the same entries always give the same digests.
- `Image(layers, config=None, os=, architecture=, variant=, created=, history=, format=)`:
  `config` overrides keys of the image's runtime config (`Cmd`, `Entrypoint`, `Env`,
  `WorkingDir`, `User`, `Labels`, `ExposedPorts`, `Volumes`, ...). `format` is `"docker"`
  (schema2) or `"oci"`. It exposes `config_bytes`, `image_id` (the config digest, as
  `docker images --no-trunc` shows it), `manifest_bytes`, `manifest_digest`,
  `manifest_media_type`, `platform` and `chain_ids`.
- `Index(images, format)`: a Docker manifest list or an OCI image index over images, each
  entry carrying the image's platform (and `index_annotations`).
- `push_image(host, repo, tag_or_None, image)`, `push_index(host, repo, tag, images, format)`
  and `push(host, repo, tag, image_or_index)` push over plain HTTP (blob: HEAD, then
  monolithic POST + PUT; manifest: PUT with the manifest's media type as Content-Type) and
  return the manifest digest after checking it against the registry's
  `Docker-Content-Digest`. Pushing is idempotent. `fetch_manifest` and `fetch_blob` read
  back, for tests.

Corpus
------
Functions returning an `Image` (or an `Index`, or a pair) that exercise one tricky case
each. `corpus()` maps a name to each pushable item; `HOSTILE` names those whose tar tries to
write outside the layer; `DOCKER_REFUSES` those Docker 20.10 fails to pull, and why. All
images but the index's foreign platforms start with `busybox_base()`'s layer, so they run
`sh`. `large_layer(size, path)` streams a layer of incompressible data to disk for memory
tests.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import random
import shutil
import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import urllib3
import zstandard

# Media types ---------------------------------------------------------------------------------

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = {
    "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "zstd": "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "none": "application/vnd.docker.image.rootfs.diff.tar",
}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
IN_TOTO = "application/vnd.in-toto+json"

# Every file in the corpus gets this mtime unless it says otherwise: 2023-11-14T22:13:20Z.
MTIME = 1_700_000_000
CREATED = "2024-01-01T00:00:00Z"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    """Compact JSON with sorted keys: stable bytes, so stable digests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# Entries --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One tar member. `kind` is a tarfile type constant; see the constructors below."""

    path: str | bytes
    kind: bytes
    data: bytes = b""
    linkname: str | bytes = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: float = MTIME
    xattrs: dict[str, bytes] = field(default_factory=dict)
    devmajor: int = 0
    devminor: int = 0

    def tarinfo(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(_text(self.path))
        info.type = self.kind
        info.size = len(self.data) if self.kind == tarfile.REGTYPE else 0
        info.linkname = _text(self.linkname)
        info.mode = self.mode
        info.uid, info.gid = self.uid, self.gid
        info.uname = info.gname = ""
        info.devmajor, info.devminor = self.devmajor, self.devminor
        pax: dict[str, str] = {}
        if self.mtime < 0 or self.mtime != int(self.mtime):
            # ustar holds only non-negative whole seconds; PAX holds anything.
            pax["mtime"] = f"{self.mtime:.9f}".rstrip("0").rstrip(".")
            info.mtime = 0
        else:
            info.mtime = int(self.mtime)
        for name, value in self.xattrs.items():
            # tarfile encodes PAX values with utf-8/surrogateescape, so this round-trips bytes.
            pax["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
        info.pax_headers = pax
        return info


def _text(name: str | bytes) -> str:
    # tarfile takes str; surrogateescape keeps non-UTF-8 bytes as they are on the way out.
    return name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name


def dir_(path: str | bytes, mode: int = 0o755, **kw) -> Entry:
    return Entry(path, tarfile.DIRTYPE, mode=mode, **kw)


def file(path: str | bytes, data: bytes = b"", mode: int = 0o644, **kw) -> Entry:
    return Entry(path, tarfile.REGTYPE, data=data, mode=mode, **kw)


def symlink(path: str | bytes, target: str | bytes, **kw) -> Entry:
    return Entry(path, tarfile.SYMTYPE, linkname=target, mode=kw.pop("mode", 0o777), **kw)


def hardlink(path: str | bytes, target: str | bytes, **kw) -> Entry:
    """A hard link to `target`, a path inside the same layer as the tar names it."""
    return Entry(path, tarfile.LNKTYPE, linkname=target, **kw)


def fifo(path: str | bytes, mode: int = 0o644, **kw) -> Entry:
    return Entry(path, tarfile.FIFOTYPE, mode=mode, **kw)


def chardev(path: str | bytes, major: int, minor: int, mode: int = 0o666, **kw) -> Entry:
    return Entry(path, tarfile.CHRTYPE, mode=mode, devmajor=major, devminor=minor, **kw)


def blockdev(path: str | bytes, major: int, minor: int, mode: int = 0o660, **kw) -> Entry:
    return Entry(path, tarfile.BLKTYPE, mode=mode, devmajor=major, devminor=minor, **kw)


def whiteout(path: str) -> Entry:
    """Deletes `path` (a file or a whole directory) of the layers below."""
    parent, _, name = path.rstrip("/").rpartition("/")
    return file(f"{parent}/.wh.{name}" if parent else f".wh.{name}", mode=0o600)


def opaque(dir_path: str) -> Entry:
    """Hides everything the layers below have in `dir_path`; the directory itself stays."""
    return file(f"{dir_path.rstrip('/')}/.wh..wh..opq", mode=0o600)


# Layers ---------------------------------------------------------------------------------------


class _Compressor:
    """Streaming compressor with deterministic output: gzip without a timestamp, or zstd."""

    def __init__(self, compression: str) -> None:
        if compression == "gzip":
            # wbits 31 writes a gzip header with mtime 0 and no file name.
            self._obj = zlib.compressobj(6, zlib.DEFLATED, 31)
        elif compression == "zstd":
            self._obj = zstandard.ZstdCompressor(level=3).compressobj()
        elif compression == "none":
            self._obj = None
        else:
            raise ValueError(f"unknown compression {compression!r}: use gzip, zstd or none")

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data) if self._obj else data

    def flush(self) -> bytes:
        return self._obj.flush() if self._obj else b""


def compress(data: bytes, compression: str) -> bytes:
    c = _Compressor(compression)
    return c.compress(data) + c.flush()


class _HashingWriter(io.RawIOBase):
    """A write-only stream: hashes the tar, compresses it, hashes and writes the blob."""

    def __init__(self, out: BinaryIO, compression: str) -> None:
        self._out = out
        self._compressor = _Compressor(compression)
        self.tar_hash = hashlib.sha256()
        self.blob_hash = hashlib.sha256()
        self.tar_size = 0
        self.blob_size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        self.tar_hash.update(data)
        self.tar_size += len(data)
        self._emit(self._compressor.compress(data))
        return len(data)

    def finish(self) -> None:
        self._emit(self._compressor.flush())

    def _emit(self, chunk: bytes) -> None:
        if chunk:
            self.blob_hash.update(chunk)
            self.blob_size += len(chunk)
            self._out.write(chunk)


_TAR_FORMATS = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT}


def tar_bytes(entries: Iterable[Entry], tar_format: str = "pax") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf,
        mode="w",
        format=_TAR_FORMATS[tar_format],
        encoding="utf-8",
        errors="surrogateescape",
    ) as tar:
        for entry in entries:
            info = entry.tarinfo()
            if tar_format != "pax":
                info.pax_headers = {}
            tar.addfile(info, io.BytesIO(entry.data) if info.isreg() else None)
    return buf.getvalue()


class Layer:
    """A layer blob and what describes it. Immutable once built."""

    def __init__(
        self,
        entries: Iterable[Entry] = (),
        *,
        compression: str = "gzip",
        tar_format: str = "pax",
    ) -> None:
        self._init_from_tar(tar_bytes(entries, tar_format), compression)

    def _init_from_tar(self, tar: bytes, compression: str) -> None:
        self.compression = compression
        self.tar = tar
        self.diff_id = sha256(tar)
        self._blob: bytes | None = compress(tar, compression)
        self._blob_path: Path | None = None
        self.digest = sha256(self._blob)
        self.size = len(self._blob)
        self._media_type: str | None = None

    @classmethod
    def from_tar(cls, raw: bytes, compression: str = "gzip") -> Layer:
        """A layer from tar bytes made by hand (truncated, odd headers, hostile names)."""
        layer = cls.__new__(cls)
        layer._init_from_tar(raw, compression)
        return layer

    @classmethod
    def from_blob(cls, data: bytes, media_type: str) -> Layer:
        """A blob that is not a tar, such as an in-toto statement; diff_id is its digest."""
        layer = cls.from_tar(data, "none")
        layer._media_type = media_type
        return layer

    @classmethod
    def stream(
        cls, path: Path, fill: Callable[[tarfile.TarFile], None], compression: str = "gzip"
    ) -> Layer:
        """Write a layer blob to `path` without holding it in memory; `fill` adds members.

        The file is written under a temporary name and renamed when complete.
        """
        path = Path(path)
        part = path.with_name(path.name + ".part")
        with open(part, "wb") as out:
            writer = _HashingWriter(out, compression)
            with tarfile.open(
                fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT, bufsize=1 << 20
            ) as tar:
                fill(tar)
            writer.finish()
        part.rename(path)
        layer = cls.__new__(cls)
        layer.compression = compression
        layer.tar = None
        layer.diff_id = "sha256:" + writer.tar_hash.hexdigest()
        layer.digest = "sha256:" + writer.blob_hash.hexdigest()
        layer.size = writer.blob_size
        layer._blob = None
        layer._blob_path = path
        layer._media_type = None
        layer.tar_size = writer.tar_size
        return layer

    @classmethod
    def from_file(
        cls, path: Path, *, diff_id: str, digest: str, size: int, compression: str
    ) -> Layer:
        """A layer already on disk, described by what `stream` measured (for caches)."""
        layer = cls.__new__(cls)
        layer.compression = compression
        layer.tar = None
        layer.diff_id, layer.digest, layer.size = diff_id, digest, size
        layer._blob, layer._blob_path, layer._media_type = None, Path(path), None
        return layer

    def media_type(self, format: str = "docker") -> str:
        if self._media_type:
            return self._media_type
        return (OCI_LAYER if format == "oci" else DOCKER_LAYER)[self.compression]

    def descriptor(self, format: str = "docker") -> dict:
        return {"mediaType": self.media_type(format), "size": self.size, "digest": self.digest}

    def open_blob(self) -> BinaryIO:
        if self._blob_path is not None:
            return open(self._blob_path, "rb")
        return io.BytesIO(self._blob)

    def read_blob(self) -> bytes:
        with self.open_blob() as f:
            return f.read()

    def __repr__(self) -> str:
        return f"<Layer {self.digest[:19]} {self.compression} {self.size}B>"


# Images and indexes ---------------------------------------------------------------------------


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainID of each layer: the layer store's key for the stack up to it."""
    chain: list[str] = []
    for diff_id in diff_ids:
        chain.append(diff_id if not chain else sha256(f"{chain[-1]} {diff_id}".encode()))
    return chain


class Image:
    """A single-platform image: config and manifest bytes with their digests."""

    def __init__(
        self,
        layers: list[Layer],
        config: dict | None = None,
        *,
        os: str = "linux",
        architecture: str = "amd64",
        variant: str | None = None,
        created: str = CREATED,
        history: list[dict] | None = None,
        format: str = "docker",
        index_annotations: dict[str, str] | None = None,
        config_media_type: str | None = None,
        raw_config: dict | None = None,
    ) -> None:
        if format not in ("docker", "oci"):
            raise ValueError(f"unknown format {format!r}: use docker or oci")
        self.layers = list(layers)
        self.format = format
        self.os, self.architecture, self.variant = os, architecture, variant
        self.index_annotations = index_annotations or {}
        if raw_config is None:
            runtime = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
            runtime.update(config or {})
            raw_config = {
                "architecture": architecture,
                "os": os,
                "created": created,
                "config": runtime,
                "rootfs": {"type": "layers", "diff_ids": [la.diff_id for la in self.layers]},
                "history": history
                if history is not None
                else [
                    {"created": created, "created_by": f"tests.support.images layer {i}"}
                    for i in range(len(self.layers))
                ],
            }
            if variant:
                raw_config["variant"] = variant
        self.config = raw_config
        self.config_bytes = canonical_json(raw_config)
        self.image_id = sha256(self.config_bytes)
        if config_media_type is None:
            config_media_type = OCI_CONFIG if format == "oci" else DOCKER_CONFIG
        self.manifest_media_type = OCI_MANIFEST if format == "oci" else DOCKER_MANIFEST
        manifest = {
            "schemaVersion": 2,
            "mediaType": self.manifest_media_type,
            "config": {
                "mediaType": config_media_type,
                "size": len(self.config_bytes),
                "digest": self.image_id,
            },
            "layers": [la.descriptor(format) for la in self.layers],
        }
        self.manifest_bytes = json.dumps(manifest, indent=3).encode()
        self.manifest_digest = sha256(self.manifest_bytes)

    @property
    def diff_ids(self) -> list[str]:
        return [la.diff_id for la in self.layers]

    @property
    def chain_ids(self) -> list[str]:
        return chain_ids(self.diff_ids)

    @property
    def platform(self) -> dict[str, str]:
        p = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            p["variant"] = self.variant
        return p

    def descriptor(self) -> dict:
        d = {
            "mediaType": self.manifest_media_type,
            "size": len(self.manifest_bytes),
            "digest": self.manifest_digest,
            "platform": self.platform,
        }
        if self.index_annotations:
            d["annotations"] = self.index_annotations
        return d

    def __repr__(self) -> str:
        return f"<Image {self.manifest_digest[:19]} {self.format} {len(self.layers)} layers>"


class Index:
    """A Docker manifest list (`format="docker"`) or OCI image index over `images`."""

    def __init__(self, images: list[Image], format: str = "oci") -> None:
        self.images = list(images)
        self.format = format
        self.manifest_media_type = OCI_INDEX if format == "oci" else DOCKER_MANIFEST_LIST
        body = {
            "schemaVersion": 2,
            "mediaType": self.manifest_media_type,
            "manifests": [image.descriptor() for image in self.images],
        }
        self.manifest_bytes = json.dumps(body, indent=3).encode()
        self.manifest_digest = sha256(self.manifest_bytes)

    def __repr__(self) -> str:
        return f"<Index {self.manifest_digest[:19]} {self.format} {len(self.images)} entries>"


# Pushing --------------------------------------------------------------------------------------

_http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=10, read=300))


class PushError(Exception):
    pass


def _check(resp: urllib3.BaseHTTPResponse, expected: tuple[int, ...], what: str) -> None:
    if resp.status not in expected:
        body = resp.data[:500].decode(errors="replace")
        raise PushError(f"{what}: HTTP {resp.status}: {body}")


def push_blob(host: str, repo: str, digest: str, size: int, open_body: Callable[[], BinaryIO]):
    """Upload one blob unless the repository has it already (idempotent)."""
    base = f"http://{host}/v2/{repo}"
    head = _http.request("HEAD", f"{base}/blobs/{digest}")
    if head.status == 200:
        return
    resp = _http.request("POST", f"{base}/blobs/uploads/")
    _check(resp, (202,), f"start upload of {digest} to {host}/{repo}")
    location = resp.headers["Location"]
    if location.startswith("/"):
        location = f"http://{host}{location}"
    sep = "&" if "?" in location else "?"
    with open_body() as body:
        resp = _http.request(
            "PUT",
            f"{location}{sep}digest={digest}",
            body=body,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
    _check(resp, (201,), f"upload {digest} to {host}/{repo}")


def push_manifest(host: str, repo: str, reference: str, body: bytes, media_type: str) -> str:
    resp = _http.request(
        "PUT",
        f"http://{host}/v2/{repo}/manifests/{reference}",
        body=body,
        headers={"Content-Type": media_type},
    )
    _check(resp, (201,), f"put manifest {host}/{repo}:{reference}")
    digest = sha256(body)
    served = resp.headers.get("Docker-Content-Digest")
    if served != digest:
        raise PushError(f"put manifest {repo}:{reference}: registry says {served}, we say {digest}")
    return digest


def push_image(host: str, repo: str, tag: str | None, image: Image) -> str:
    """Push layers, config and manifest; tag it unless `tag` is None. Returns its digest."""
    for layer in image.layers:
        push_blob(host, repo, layer.digest, layer.size, layer.open_blob)
    push_blob(
        host,
        repo,
        image.image_id,
        len(image.config_bytes),
        lambda: io.BytesIO(image.config_bytes),
    )
    return push_manifest(
        host, repo, tag or image.manifest_digest, image.manifest_bytes, image.manifest_media_type
    )


def push_index(
    host: str, repo: str, tag: str | None, images: list[Image] | Index, format: str = "oci"
) -> str:
    """Push each image by digest, then the index over them. Returns the index's digest."""
    index = images if isinstance(images, Index) else Index(images, format)
    for image in index.images:
        push_image(host, repo, None, image)
    return push_manifest(
        host, repo, tag or index.manifest_digest, index.manifest_bytes, index.manifest_media_type
    )


def push(host: str, repo: str, tag: str | None, item: Image | Index) -> str:
    if isinstance(item, Index):
        return push_index(host, repo, tag, item)
    return push_image(host, repo, tag, item)


def fetch_manifest(host: str, repo: str, reference: str) -> tuple[str, str, bytes]:
    """(Content-Type, Docker-Content-Digest, body) as the registry serves them."""
    accept = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])
    resp = _http.request(
        "GET", f"http://{host}/v2/{repo}/manifests/{reference}", headers={"Accept": accept}
    )
    _check(resp, (200,), f"get manifest {host}/{repo}:{reference}")
    return resp.headers["Content-Type"], resp.headers.get("Docker-Content-Digest", ""), resp.data


def fetch_blob(host: str, repo: str, digest: str) -> bytes:
    resp = _http.request("GET", f"http://{host}/v2/{repo}/blobs/{digest}")
    _check(resp, (200,), f"get blob {host}/{repo}@{digest}")
    return resp.data


def decompress(blob: bytes, compression: str) -> bytes:
    """Independent of `compress`: gzip through zlib's decoder, zstd through zstandard."""
    if compression == "gzip":
        return zlib.decompress(blob, 31)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    return blob


# Corpus ---------------------------------------------------------------------------------------

BUSYBOX = Path("/bin/busybox")
APPLETS = (
    "sh ash ls cat echo sleep true false id env pwd mkdir rmdir rm cp mv ln chmod chown "
    "touch stat readlink find grep sed awk head tail wc sort uniq cut tr tee xargs test [ "
    "printf date uname hostname whoami ps kill du df mount umount od md5sum sha256sum tar "
    "vi wget nc ping mknod mkfifo getfattr sync which basename dirname realpath"
).split()
PASSWD = b"""root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = b"""root:x:0:
daemon:x:1:
app:x:1000:
nogroup:x:65534:
"""


@functools.cache
def busybox_layer() -> Layer:
    """/bin/busybox from busybox-static, applet symlinks, /etc/passwd and group, /tmp 1777."""
    if not BUSYBOX.exists():
        raise FileNotFoundError(f"{BUSYBOX} missing: apt-get install busybox-static")
    entries = [
        dir_("bin"),
        file("bin/busybox", BUSYBOX.read_bytes(), mode=0o755),
        *[symlink(f"bin/{name}", "busybox") for name in APPLETS],
        dir_("dev"),
        dir_("etc"),
        file("etc/passwd", PASSWD),
        file("etc/group", GROUP),
        dir_("home"),
        dir_("home/app", uid=1000, gid=1000),
        dir_("proc", mode=0o555),
        dir_("root", mode=0o700),
        dir_("sys", mode=0o555),
        dir_("tmp", mode=0o1777),
        dir_("usr"),
        dir_("usr/bin"),
        dir_("var"),
        dir_("var/log"),
    ]
    return Layer(entries)


def _image(*layers: Layer, **kw) -> Image:
    kw.setdefault("config", {"Cmd": ["sh"]})
    return Image([busybox_layer(), *layers], **kw)


def busybox_base() -> Image:
    return _image()


def with_whiteouts() -> Image:
    """Layer 2 adds files; layer 3 deletes a file and a whole directory of layer 2, and
    deletes then re-adds another (a whiteout and a new entry in the same layer)."""
    lower = Layer(
        [
            dir_("data"),
            file("data/keep", b"keep\n"),
            file("data/gone", b"gone\n"),
            file("data/readded", b"old\n"),
            dir_("data/subdir"),
            file("data/subdir/inner", b"inner\n"),
            dir_("data/subdir/deeper"),
            file("data/subdir/deeper/x", b"x\n"),
        ]
    )
    upper = Layer(
        [
            dir_("data"),
            whiteout("data/gone"),
            whiteout("data/subdir"),
            whiteout("data/readded"),
            file("data/readded", b"new\n"),
            whiteout("etc/group"),
        ]
    )
    return _image(lower, upper)


def with_opaque_dir() -> Image:
    """Layer 3 makes /opt/app opaque: only its own entries show; /opt/other is untouched."""
    lower = Layer(
        [
            dir_("opt"),
            dir_("opt/app"),
            file("opt/app/old1", b"1\n"),
            dir_("opt/app/olddir"),
            file("opt/app/olddir/f", b"f\n"),
            dir_("opt/other"),
            file("opt/other/stays", b"stays\n"),
        ]
    )
    upper = Layer(
        [
            dir_("opt"),
            dir_("opt/app", mode=0o750),
            opaque("opt/app"),
            file("opt/app/new1", b"new\n"),
            dir_("opt/fresh"),
            opaque("opt/fresh"),  # opaque on a dir the lower layers never had
        ]
    )
    return _image(lower, upper)


def with_hardlinks() -> Image:
    """Hard link groups inside one layer, across directories, and to a setuid file."""
    layer = Layer(
        [
            dir_("links"),
            file("links/original", b"shared content\n", mode=0o640, uid=1000, gid=1000),
            hardlink("links/second", "links/original"),
            dir_("links/sub"),
            hardlink("links/sub/third", "links/original"),
            file("links/suid", b"#!/bin/sh\n", mode=0o4755),
            hardlink("links/suid-link", "links/suid"),
        ]
    )
    return _image(layer)


def hardlink_to_lower_layer() -> Image:
    """A hard link in layer 3 to a file of layer 2. Docker extracts each layer into an empty
    directory, so the target is missing and the pull fails ("link ...: no such file")."""
    lower = Layer([dir_("links"), file("links/original", b"lower\n")])
    upper = Layer([dir_("links"), hardlink("links/upper-to-lower", "links/original")])
    return _image(lower, upper)


def with_symlinks() -> Image:
    layer = Layer(
        [
            dir_("sym"),
            file("sym/target", b"target\n"),
            dir_("sym/dir"),
            symlink("sym/relative", "target"),
            symlink("sym/up", "../sym/target"),
            symlink("sym/absolute", "/sym/target"),
            symlink("sym/dangling", "does/not/exist"),
            symlink("sym/dangling-abs", "/nowhere"),
            symlink("sym/to-dir", "dir"),
            symlink("sym/self", "self"),
            symlink("sym/loop-a", "loop-b"),
            symlink("sym/loop-b", "loop-a"),
            symlink("sym/owned", "target", uid=1000, gid=1000, mtime=1_000_000_000),
        ]
    )
    return _image(layer)


def with_special_files() -> Image:
    """FIFO, devices, setuid/setgid/sticky, non-root owners, odd mtimes, xattrs.

    What Docker 20.10 makes of it (seen in its overlay2 layer dir): mtimes before 1970 are
    clamped to the epoch for everything but symlinks (moby pkg/system.Chtimes), and the
    xattr with an empty value (user.b) is dropped (Go's PAX reader treats an empty record as
    a deletion). dockweb must do the same.
    """
    # VFS_CAP_REVISION_2 granting cap_net_bind_service (bit 10), permitted, effective.
    cap = bytes.fromhex("01000002" + "00040000" + "00000000" * 3)
    layer = Layer(
        [
            dir_("special"),
            fifo("special/fifo", mode=0o600),
            chardev("special/null", 1, 3),
            chardev("special/tty-ish", 136, 257),  # minor > 255: the wide dev_t encoding
            blockdev("special/loop0", 7, 0),
            file("special/setuid", b"x", mode=0o4755),
            file("special/setgid", b"x", mode=0o2755),
            dir_("special/sticky", mode=0o1777),
            dir_("special/setgid-dir", mode=0o2775, gid=1000),
            file("special/owned", b"app\n", uid=1000, gid=1000),
            file("special/high-ids", b"x", uid=100000, gid=200000),
            file("special/no-perms", b"x", mode=0o000),
            file("special/epoch", b"x", mtime=0),
            file("special/pre-1970", b"x", mtime=-86400),
            file("special/fractional", b"x", mtime=1_600_000_000.5),
            file("special/y2038", b"x", mtime=2_200_000_000),
            symlink("special/old-link", "epoch", mtime=-86400),
            file("special/xattr-user", b"x", xattrs={"user.comment": b"hello", "user.b": b""}),
            file("special/cap-bind", b"x", mode=0o755, xattrs={"security.capability": cap}),
            dir_("special/xattr-dir", xattrs={"user.dir": b"yes"}),
        ]
    )
    return _image(layer)


def with_long_names() -> Image:
    """Names past ustar's 100/155 limits through PAX and through GNU long names; unicode;
    bytes that are not UTF-8."""
    long_dir = "d" * 120
    long_name = "n" * 200
    deep = "/".join(f"level{i:02d}" for i in range(30))
    pax = Layer(
        [
            dir_("long"),
            dir_(f"long/{long_dir}"),
            file(f"long/{long_dir}/{long_name}", b"pax long\n"),
            symlink(f"long/{long_dir}/link", f"/long/{long_dir}/{long_name}"),
            hardlink(f"long/{long_dir}/hard-{long_name}", f"long/{long_dir}/{long_name}"),
            *[dir_("long/" + "/".join(deep.split("/")[: i + 1])) for i in range(30)],
            file(f"long/{deep}/bottom", b"bottom\n"),
            file("long/ünïcødé-名前-😀", b"unicode\n"),
            file(b"long/latin1-\xe9\xff", b"not utf-8\n"),
        ]
    )
    gnu = Layer(
        [
            dir_("gnu"),
            file("gnu/" + "g" * 150, b"gnu long\n"),
            symlink("gnu/link", "g" * 150),
            symlink("gnu/long-target", "/" + "t" * 150),
        ],
        tar_format="gnu",
    )
    return _image(pax, gnu)


def shared_base_pair() -> tuple[Image, Image]:
    """Two images over the same busybox and middle layer, with different top layers."""
    middle = Layer([dir_("shared"), file("shared/common", b"common\n")])
    a = _image(middle, Layer([dir_("shared"), file("shared/which", b"a\n")]))
    b = _image(middle, Layer([dir_("shared"), file("shared/which", b"b\n")]))
    return a, b


def push_shared_base_pair(host: str, prefix: str) -> tuple[Image, Image]:
    """``shared_base_pair()`` pushed to ``host`` as ``<prefix>/a:1`` and ``<prefix>/b:1``."""
    a, b = shared_base_pair()
    push_image(host, f"{prefix}/a", "1", a)
    push_image(host, f"{prefix}/b", "1", b)
    return a, b


PLATFORMS = (("amd64", None), ("arm64", "v8"), ("arm", "v7"))


def multi_platform_index(format: str = "oci") -> Index:
    """linux/amd64, linux/arm64/v8, linux/arm/v7, each with /etc/platform naming itself;
    for OCI also an unknown/unknown attestation manifest as buildx pushes it."""
    images: list[Image] = []
    for arch, variant in PLATFORMS:
        name = "/".join(p for p in ("linux", arch, variant) if p)
        marker = Layer([dir_("etc"), file("etc/platform", name.encode() + b"\n")])
        layers = [busybox_layer(), marker] if arch == "amd64" else [marker]
        images.append(
            Image(
                layers,
                {"Cmd": ["cat", "/etc/platform"]},
                architecture=arch,
                variant=variant,
                format=format,
            )
        )
    if format == "oci":
        statement = canonical_json(
            {
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": "https://spdx.dev/Document",
                "subject": [{"name": "corpus", "digest": {"sha256": "0" * 64}}],
                "predicate": {},
            }
        )
        images.append(
            Image(
                [Layer.from_blob(statement, IN_TOTO)],
                os="unknown",
                architecture="unknown",
                format="oci",
                index_annotations={
                    "vnd.docker.reference.digest": images[0].manifest_digest,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
                raw_config={
                    "architecture": "unknown",
                    "os": "unknown",
                    "config": {},
                    "rootfs": {"type": "layers", "diff_ids": [sha256(statement)]},
                },
            )
        )
    return Index(images, format)


def oci_zstd() -> Image:
    top = Layer([dir_("z"), file("z/zstd", b"zstd layer\n" * 100)], compression="zstd")
    return Image([busybox_layer(), top], {"Cmd": ["cat", "/z/zstd"]}, format="oci")


def uncompressed_layers() -> Image:
    """Both layers as plain tar; in Docker format (rootfs.diff.tar)."""
    base = Layer.from_tar(busybox_layer().tar, "none")
    top = Layer([dir_("plain"), file("plain/file", b"plain\n")], compression="none")
    return Image([base, top], {"Cmd": ["sh"]})


def config_variety() -> Image:
    """Every runtime config key the dashboard shows, set to something unusual."""
    return _image(
        Layer([dir_("srv", uid=1000, gid=1000)]),
        config={
            "Cmd": ["-c", "echo hi"],
            "Entrypoint": ["/bin/sh"],
            "Env": ["PATH=/bin", "EMPTY=", "WITH_EQUALS=a=b"],
            "WorkingDir": "/srv",
            "User": "1000:1000",
            "Labels": {"org.opencontainers.image.title": "corpus", "ünïcode": "✓"},
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
            "Volumes": {"/data": {}},
            "StopSignal": "SIGINT",
        },
    )


# Docker 20.10 unpacks a layer in a chroot at the layer's directory (pkg/chrootarchive), so
# names and link targets that climb out resolve against the layer's root, never the host's.


def hostile_dotdot() -> Image:
    """A member named ../../escaped-dotdot: Docker keeps it as escaped-dotdot at the root."""
    return _image(Layer([file("../../escaped-dotdot", b"evil\n")]))


def hostile_absolute() -> Image:
    """Members named /abs and /abs/abs-evil: they land inside the layer as abs/abs-evil."""
    return _image(Layer([dir_("/abs"), file("/abs/abs-evil", b"evil\n")]))


def hostile_symlink_escape() -> Image:
    """`escape -> ../../../../../../tmp`, then a write to escape/evil-symlink: the write must
    land in the layer's own tmp/, never in the host's /tmp."""
    return _image(
        Layer(
            [
                dir_("tmp", mode=0o1777),
                symlink("escape", "../../../../../../tmp"),
                file("escape/evil-symlink", b"x"),
            ]
        )
    )


def hostile_symlink_absolute_write_through() -> Image:
    """`a -> /` then `a/etc/evil-abs`: the write lands in the layer's own etc/."""
    return _image(Layer([symlink("a", "/"), dir_("a/etc"), file("a/etc/evil-abs", b"x")]))


def hostile_hardlink_escape() -> Image:
    """A hard link to ../../../../etc/passwd: resolved in the layer, where there is no such
    file, so Docker fails the pull ("link /etc/passwd /evil-hardlink: no such file")."""
    return _image(Layer([hardlink("evil-hardlink", "../../../../../../etc/passwd")]))


HOSTILE = (
    "hostile_dotdot",
    "hostile_absolute",
    "hostile_symlink_escape",
    "hostile_symlink_absolute_write_through",
    "hostile_hardlink_escape",
)

# Items Docker 20.10.24 (Debian's docker.io) fails to pull, with the reason; found by pulling
# them (python -m benchmarks.compare_rootfs). dockweb should fail these too, except zstd,
# which Docker supports from 23.0 and dockweb supports.
DOCKER_REFUSES = {
    "hardlink_to_lower_layer": "link target is in a lower layer",
    "hostile_hardlink_escape": "link target outside the layer",
    "oci_zstd": "Docker before 23.0 cannot decompress zstd layers",
}


def corpus() -> dict[str, Image | Index]:
    """Every pushable corpus item by name (used as the repository name too)."""
    a, b = shared_base_pair()
    items: dict[str, Image | Index] = {
        "busybox_base": busybox_base(),
        "with_whiteouts": with_whiteouts(),
        "with_opaque_dir": with_opaque_dir(),
        "with_hardlinks": with_hardlinks(),
        "hardlink_to_lower_layer": hardlink_to_lower_layer(),
        "with_symlinks": with_symlinks(),
        "with_special_files": with_special_files(),
        "with_long_names": with_long_names(),
        "shared_base_a": a,
        "shared_base_b": b,
        "multi_platform_index": multi_platform_index("oci"),
        "multi_platform_list": multi_platform_index("docker"),
        "oci_zstd": oci_zstd(),
        "uncompressed_layers": uncompressed_layers(),
        "config_variety": config_variety(),
    }
    for name in HOSTILE:
        items[name] = globals()[name]()
    return items


def large_layer(
    size: int, path: Path, compression: str = "gzip", seed: int = 0, directory: str = "large"
) -> Layer:
    """`size` bytes of incompressible data in 64 MiB files under `directory`, streamed to `path`.

    Deterministic for a given seed; memory stays at one chunk whatever the size.
    """
    chunk = 1 << 20
    per_file = 64 << 20

    def fill(tar: tarfile.TarFile) -> None:
        rng = random.Random(seed)
        info = tarfile.TarInfo(directory)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
        tar.addfile(info)
        left, n = size, 0
        while left > 0:
            this = min(per_file, left)
            info = tarfile.TarInfo(f"{directory}/blob{n:04d}")
            info.size, info.mode, info.mtime = this, 0o644, MTIME
            tar.addfile(info, _RandomReader(rng, this, chunk))
            left -= this
            n += 1

    return Layer.stream(path, fill, compression)


class _RandomReader(io.RawIOBase):
    def __init__(self, rng: random.Random, size: int, chunk: int) -> None:
        self._rng, self._left, self._chunk = rng, size, chunk

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        self._left -= n
        return self._rng.randbytes(n)


def copy_blob(layer: Layer, dest: Path) -> None:
    """Write a layer's blob to `dest` (for tools that want files)."""
    with layer.open_blob() as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
