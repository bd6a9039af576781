"""The content-addressed layer and image store, with Docker Engine's reference semantics.

Layout (see docs/runtime.md): ``layers/<chain-hex>/`` holds one unpacked layer in overlayfs
form plus its ``layer.json``; ``images/<id-hex>/`` the raw config and ``image.json``;
``repositories.json`` the references, keyed as Docker's reference store keys them.

Guarantees:
- A layer directory exists under ``layers/`` only when complete: it is built beside it, as
  the hidden ``layers/.unpack-<chain>-<rand>/`` with its ``layer.json`` inside, then renamed
  into place after its parent. An image record is written (also by rename) only after all
  its layers are there.
- ``layers/`` is marked as a top of directory hierarchies for ext4's Orlov allocator (the
  ``T`` attribute, best effort): each new layer goes to the flex group with the fewest
  directories among those with above-average free space, not next to the inodes the last
  removal freed. A removal frees a layer's files at once (its space comes back) but keeps
  its empty directories for ``SKELETON_AGE`` seconds (``layers/.skeleton-...``), so the
  freed group does not look the emptiest. Why: a journal-less ext4 skips every inode freed
  in the last minute or more one by one when it allocates, which made pulls after a
  removal 3-5 times slower (docs/runtime.md, "Where layers are unpacked").
- Metadata changes (references, image records, deletions) take an exclusive ``flock`` on
  ``<root>/lock``, so the CLI and the workers can share one store.
- Every layer has a lock file. A pull holds it exclusively while it downloads that layer and
  shared while it still needs the layer; a deletion skips layers it cannot lock, so a layer a
  running pull relies on is never removed under it.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import string
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from dockweb.runtime import events, overlay
from dockweb.runtime import reference as refs
from dockweb.runtime.crashpoint import crashpoint
from dockweb.runtime.digest import chain_ids, sha256_digest, short_id
from dockweb.runtime.errors import (
    Conflict,
    DockwebError,
    ImageNotFound,
    OverlayMountError,
    StoreError,
)

_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_LINK_CHARS = string.ascii_uppercase + string.digits
# hidden entries of layers/: a layer being unpacked, a layer being removed
_UNPACK = ".unpack-"
_DELETED = ".deleted-"
_SKELETON = ".skeleton-"
# how long a removed layer's empty directories stay (ext4 treats a freed inode as recent
# for 60 s, 360 s while its inode table block is dirty)
SKELETON_AGE = 600
_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1] if ":" in digest else digest


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _atomic_write(path: str, data: bytes, tmp_dir: str) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new content, never a mix."""
    fd, tmp = _mkstemp(tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        crashpoint("store.atomic_write")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _mkstemp(tmp_dir: str) -> tuple[int, str]:
    name = os.path.join(tmp_dir, f"write-{os.getpid()}-{secrets.token_hex(6)}")
    return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), name


def _disk_error(err: OSError, what: str) -> StoreError:
    if err.errno == errno.ENOSPC:
        return StoreError(f"{what}: no space left on device")
    return StoreError(f"{what}: {err.strerror or err}")


@dataclass
class LayerRecord:
    """One unpacked layer. ``size`` is its on-disk size as Docker counts it (DiffSize)."""

    chain_id: str
    diff_id: str
    parent: str
    size: int
    link: str
    compressed_size: int = 0
    blob_digest: str = ""
    media_type: str = ""
    created_at: str = ""


@dataclass
class ImageRecord:
    """An image: its config (by ID, the config digest) and the chain IDs of its layers."""

    id: str
    config: dict
    layers: list[str]
    compressed: list[dict] = field(default_factory=list)
    parent: str = ""
    last_tag_time: str = ""
    pulled_at: str = ""

    @property
    def created(self) -> str:
        return self.config.get("created") or "0001-01-01T00:00:00Z"

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))

    @property
    def compressed_size(self) -> int:
        return sum(int(c.get("size", 0)) for c in self.compressed)


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 timestamp as Go writes it (nanoseconds, ``Z`` or an offset)."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", value or "")
    if not m:
        return datetime(1, 1, 1, tzinfo=UTC)
    base, frac, tz = m.groups()
    micro = int((frac or ".0")[1:7].ljust(6, "0"))
    parsed = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(microsecond=micro)
    if tz in (None, "Z"):
        return parsed.replace(tzinfo=UTC)
    sign = 1 if tz[0] == "+" else -1
    hours, minutes = int(tz[1:3]), int(tz[4:6])
    from datetime import timedelta, timezone

    return parsed.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))


class LayerLock:
    """An flock on one layer's lock file; exclusive while fetching, shared while in use."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, *, shared: bool = False, blocking: bool = True) -> bool:
        op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not blocking:
            op |= fcntl.LOCK_NB
        try:
            fcntl.flock(self.fd, op)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Store:
    """The image store under ``root``. Safe to share between threads and processes."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.layers_dir = os.path.join(self.root, "layers")
        self.images_dir = os.path.join(self.root, "images")
        self.links_dir = os.path.join(self.root, "l")
        self.locks_dir = os.path.join(self.root, "locks")
        self.mounts_dir = os.path.join(self.root, "mounts")
        self.manifests_dir = os.path.join(self.root, "manifests")
        self.empty_dir = os.path.join(self.root, "empty")
        self.refs_path = os.path.join(self.root, "repositories.json")
        for d in (
            self.root,
            self.tmp_dir,
            self.layers_dir,
            self.images_dir,
            self.links_dir,
            self.locks_dir,
            self.mounts_dir,
            self.manifests_dir,
            self.empty_dir,
        ):
            os.makedirs(d, exist_ok=True)
        _mark_topdir(self.layers_dir)
        self._thread_lock = threading.RLock()
        self._lock_depth = 0
        self._lock_fd = -1

    # -- locking -------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's metadata lock (re-entrant within a process)."""
        with self._thread_lock:
            if self._lock_depth == 0:
                self._lock_fd = os.open(
                    os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT, 0o600
                )
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    os.close(self._lock_fd)
                    self._lock_fd = -1

    def layer_lock(self, chain_id: str) -> LayerLock:
        return LayerLock(os.path.join(self.locks_dir, _hex(chain_id)))

    # -- layers --------------------------------------------------------------------------

    def layer_dir(self, chain_id: str) -> str:
        return os.path.join(self.layers_dir, _hex(chain_id))

    def layer_diff(self, chain_id: str) -> str:
        return os.path.join(self.layer_dir(chain_id), "diff")

    def has_layer(self, chain_id: str) -> bool:
        return os.path.exists(os.path.join(self.layer_dir(chain_id), "layer.json"))

    def get_layer(self, chain_id: str) -> LayerRecord:
        try:
            with open(os.path.join(self.layer_dir(chain_id), "layer.json"), "rb") as f:
                return LayerRecord(**json.loads(f.read()))
        except FileNotFoundError:
            raise StoreError(f"layer {chain_id} does not exist") from None

    def layers(self) -> dict[str, LayerRecord]:
        out = {}
        for name in os.listdir(self.layers_dir):
            if _HEX64.match(name):
                with contextlib.suppress(StoreError):
                    rec = self.get_layer("sha256:" + name)
                    out[rec.chain_id] = rec
        return out

    def new_layer_dir(self, chain_id: str) -> str:
        """A fresh scratch directory for unpacking ``chain_id``; its ``diff/`` is created.

        It is made inside ``layers/`` (hidden, so never listed as a layer), not in ``tmp/``:
        ``tmp/`` also receives files, and every file created there pulls the directory's
        allocation cursor back to its own block group, where the inodes the last removal
        freed are waiting. See the module docstring.
        """
        path = os.path.join(
            self.layers_dir, f"{_UNPACK}{_hex(chain_id)[:16]}-{secrets.token_hex(4)}"
        )
        os.makedirs(os.path.join(path, "diff"))
        return path

    def scratch_entries(self) -> list[str]:
        """Unfinished work on disk: ``tmp/`` entries and hidden scratch under ``layers/``
        (removed layers' empty directories aside, see ``skeletons``). Empty when no pull,
        build or removal is running and none was interrupted."""
        hidden = [
            n for n in os.listdir(self.layers_dir) if n[0] == "." and not n.startswith(_SKELETON)
        ]
        return sorted(os.listdir(self.tmp_dir)) + sorted("layers/" + n for n in hidden)

    def skeletons(self) -> list[str]:
        """The empty directory trees of removed layers still kept (``SKELETON_AGE``)."""
        return sorted(n for n in os.listdir(self.layers_dir) if n.startswith(_SKELETON))

    def commit_layer(self, scratch: str, record: LayerRecord) -> LayerRecord:
        """Make an unpacked layer visible. Idempotent: if the layer exists, ``scratch`` is dropped.

        The parent must already be committed: that keeps "in layers/ means complete" true for
        whole chains, not just single layers.
        """
        if record.parent and not self.has_layer(record.parent):
            raise StoreError(f"commit layer {record.chain_id}: parent {record.parent} missing")
        if self.has_layer(record.chain_id):
            shutil.rmtree(scratch, ignore_errors=True)
            return self.get_layer(record.chain_id)
        record.link = self._new_link()
        record.created_at = _now_rfc3339()
        try:
            with open(os.path.join(scratch, "layer.json"), "wb") as f:
                f.write(json.dumps(asdict(record)).encode())
                f.flush()
                os.fsync(f.fileno())
            crashpoint("store.commit_layer.recorded")
            os.symlink(
                os.path.join("..", "layers", _hex(record.chain_id), "diff"),
                os.path.join(self.links_dir, record.link),
            )
            crashpoint("store.commit_layer.linked")
            os.rename(scratch, self.layer_dir(record.chain_id))
        except OSError as err:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.links_dir, record.link))
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY) and self.has_layer(record.chain_id):
                shutil.rmtree(scratch, ignore_errors=True)
                return self.get_layer(record.chain_id)
            raise _disk_error(err, f"commit layer {record.chain_id}") from err
        return record

    def _new_link(self) -> str:
        while True:
            link = "".join(secrets.choice(_LINK_CHARS) for _ in range(26))
            if not os.path.lexists(os.path.join(self.links_dir, link)):
                return link

    def _delete_layer(self, chain_id: str) -> None:
        """Remove a layer: first out of sight (rename into tmp/), then from the disk.

        The link goes after the rename: a crash in between leaves a dangling link, which
        reconcile removes, never a visible layer whose link is gone (it could not be mounted).
        """
        rec = self.get_layer(chain_id)
        doomed = os.path.join(
            self.layers_dir, f"{_DELETED}{_hex(chain_id)[:16]}-{secrets.token_hex(4)}"
        )
        os.rename(self.layer_dir(chain_id), doomed)
        crashpoint("store.delete_layer.hidden")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.links_dir, rec.link))
        self._empty_out(doomed)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.locks_dir, _hex(chain_id)))

    def _empty_out(self, doomed: str) -> None:
        """Free a hidden removed layer's files and space now; keep its empty directories as
        ``.skeleton-<time>-...`` until ``SKELETON_AGE`` has passed, then drop older ones."""
        _remove_files(doomed)
        crashpoint("store.delete_layer.files_gone")
        name = os.path.basename(doomed).removeprefix(_DELETED)
        with contextlib.suppress(OSError):
            os.rename(
                doomed, os.path.join(self.layers_dir, f"{_SKELETON}{int(time.time())}-{name}")
            )
        self._drop_old_skeletons()

    def _drop_old_skeletons(self) -> None:
        now = time.time()
        for name in self.skeletons():
            stamp = name.removeprefix(_SKELETON).split("-", 1)[0]
            if not stamp.isdigit() or now - int(stamp) >= SKELETON_AGE or int(stamp) > now + 60:
                shutil.rmtree(os.path.join(self.layers_dir, name), ignore_errors=True)

    # -- images --------------------------------------------------------------------------

    def image_dir(self, image_id: str) -> str:
        return os.path.join(self.images_dir, _hex(image_id))

    def has_image(self, image_id: str) -> bool:
        return os.path.exists(os.path.join(self.image_dir(image_id), "image.json"))

    def get_image(self, image_id: str) -> ImageRecord:
        d = self.image_dir(image_id)
        try:
            with open(os.path.join(d, "image.json"), "rb") as f:
                meta = json.loads(f.read())
            with open(os.path.join(d, "config.json"), "rb") as f:
                config = json.loads(f.read())
        except FileNotFoundError:
            raise ImageNotFound(f"No such image: {image_id}") from None
        return ImageRecord(config=config, **meta)

    def config_bytes(self, image_id: str) -> bytes:
        with open(os.path.join(self.image_dir(image_id), "config.json"), "rb") as f:
            return f.read()

    def image_ids(self) -> list[str]:
        return [
            "sha256:" + n
            for n in os.listdir(self.images_dir)
            if _HEX64.match(n) and os.path.exists(os.path.join(self.images_dir, n, "image.json"))
        ]

    def images(self) -> list[ImageRecord]:
        out = []
        for image_id in self.image_ids():
            with contextlib.suppress(ImageNotFound):
                out.append(self.get_image(image_id))
        return out

    def put_image(
        self,
        config_bytes: bytes,
        *,
        compressed: list[dict] | None = None,
        parent: str = "",
    ) -> ImageRecord:
        """Record an image whose layers are all committed. Idempotent; returns the record."""
        image_id = sha256_digest(config_bytes)
        config = json.loads(config_bytes)
        layers = chain_ids(list(config.get("rootfs", {}).get("diff_ids", [])))
        for chain in layers:
            if not self.has_layer(chain):
                raise StoreError(f"create image {image_id}: layer {chain} missing")
        with self.locked():
            if self.has_image(image_id):
                rec = self.get_image(image_id)
                if compressed and not rec.compressed:
                    rec.compressed = compressed
                    self._write_image_meta(rec)
                return rec
            rec = ImageRecord(
                id=image_id,
                config=config,
                layers=layers,
                compressed=compressed or [],
                parent=parent,
                pulled_at=_now_rfc3339(),
            )
            scratch = os.path.join(
                self.tmp_dir, f"image-{_hex(image_id)[:16]}-{secrets.token_hex(4)}"
            )
            os.makedirs(scratch)
            try:
                with open(os.path.join(scratch, "config.json"), "wb") as f:
                    f.write(config_bytes)
                    os.fsync(f.fileno())
                with open(os.path.join(scratch, "image.json"), "wb") as f:
                    f.write(json.dumps(self._image_meta(rec)).encode())
                    os.fsync(f.fileno())
                crashpoint("store.put_image.written")
                os.rename(scratch, self.image_dir(image_id))
            except OSError as err:
                shutil.rmtree(scratch, ignore_errors=True)
                raise _disk_error(err, f"create image {image_id}") from err
            return rec

    @staticmethod
    def _image_meta(rec: ImageRecord) -> dict:
        meta = asdict(rec)
        del meta["config"]
        return meta

    def _write_image_meta(self, rec: ImageRecord) -> None:
        _atomic_write(
            os.path.join(self.image_dir(rec.id), "image.json"),
            json.dumps(self._image_meta(rec)).encode(),
            self.tmp_dir,
        )

    def put_manifest(self, digest: str, data: bytes) -> None:
        path = os.path.join(self.manifests_dir, _hex(digest))
        if not os.path.exists(path):
            _atomic_write(path, data, self.tmp_dir)

    def image_size(self, rec: ImageRecord, layers: dict[str, LayerRecord] | None = None) -> int:
        """The image's size as ``docker images`` shows it: the sum of its layers' sizes."""
        total = 0
        for chain in rec.layers:
            layer = (
                layers[chain] if layers is not None and chain in layers else self.get_layer(chain)
            )
            total += layer.size
        return total

    def set_parent(self, image_id: str, parent: str) -> None:
        """Point an image's parent at another image (moby's SetParent; the build cache's
        ``--cache-from`` does it)."""
        with self.locked():
            rec = self.get_image(image_id)
            if rec.parent != parent:
                rec.parent = parent
                self._write_image_meta(rec)

    def children(self, image_id: str) -> list[str]:
        return [r.id for r in self.images() if r.parent == image_id]

    # -- references ----------------------------------------------------------------------

    def _load_refs(self) -> dict[str, dict[str, str]]:
        try:
            with open(self.refs_path, "rb") as f:
                return json.loads(f.read()).get("Repositories", {})
        except FileNotFoundError:
            return {}

    def _save_refs(self, repos: dict[str, dict[str, str]]) -> None:
        data = json.dumps({"Repositories": repos}, sort_keys=True).encode()
        _atomic_write(self.refs_path, data, self.tmp_dir)

    def all_references(self) -> dict[str, list[refs.Reference]]:
        """Every reference, grouped by image ID, each list sorted as Docker sorts it."""
        by_id: dict[str, list[refs.Reference]] = {}
        for repo in self._load_refs().values():
            for ref_str, image_id in repo.items():
                with contextlib.suppress(DockwebError):
                    by_id.setdefault(image_id, []).append(refs.parse_normalized_named(ref_str))
        for lst in by_id.values():
            lst.sort(key=lambda r: r.string())
        return by_id

    def references(self, image_id: str) -> list[refs.Reference]:
        return self.all_references().get(image_id, [])

    @staticmethod
    def _favor_digest(ref: refs.Reference) -> refs.Reference:
        if ref.digest and ref.tag:
            return refs.Reference(ref.domain, ref.path, None, ref.digest)
        return ref

    @staticmethod
    def _tag_name_only(ref: refs.Reference) -> refs.Reference:
        if not ref.tag and not ref.digest:
            return refs.Reference(ref.domain, ref.path, "latest", None)
        return ref

    def resolve_reference(self, ref: refs.Reference) -> str | None:
        """The image ID a name[:tag|@digest] points to, or None (the reference store's Get)."""
        ref = self._favor_digest(ref) if ref.digest else self._tag_name_only(ref)
        repo = self._load_refs().get(ref.familiar_name, {})
        return repo.get(ref.familiar_string())

    def add_reference(self, ref: refs.Reference, image_id: str, *, force: bool = True) -> None:
        """Point a tag or digest reference at an image (AddTag/AddDigest)."""
        ref = self._favor_digest(ref) if ref.digest else self._tag_name_only(ref)
        if ref.familiar_name == "sha256":
            raise DockwebError("refusing to create an ambiguous tag using digest algorithm as name")
        with self.locked():
            repos = self._load_refs()
            repo = repos.setdefault(ref.familiar_name, {})
            key = ref.familiar_string()
            old = repo.get(key)
            if old is not None:
                if ref.digest:
                    if old == image_id:
                        return
                    raise Conflict(f"Cannot overwrite digest {ref.digest}")
                if not force:
                    raise Conflict(
                        f"Conflict: Tag {key} is already set to image {old}, if you want to "
                        "replace it, please use the force option"
                    )
            repo[key] = image_id
            self._save_refs(repos)
            if ref.tag and not ref.digest and self.has_image(image_id):
                rec = self.get_image(image_id)
                rec.last_tag_time = _now_rfc3339()
                self._write_image_meta(rec)

    def delete_reference(self, ref: refs.Reference) -> bool:
        """Remove one reference. Idempotent: False when it did not exist."""
        ref = self._tag_name_only(self._favor_digest(ref))
        with self.locked():
            repos = self._load_refs()
            repo = repos.get(ref.familiar_name)
            if not repo or ref.familiar_string() not in repo:
                return False
            del repo[ref.familiar_string()]
            if not repo:
                del repos[ref.familiar_name]
            self._save_refs(repos)
            return True

    # -- lookup --------------------------------------------------------------------------

    def search_id(self, prefix: str) -> str | None:
        """The one image ID starting with ``prefix`` (hex, optionally ``sha256:``), or None."""
        p = prefix[7:] if prefix.startswith("sha256:") else prefix
        if not p or not re.fullmatch(r"[a-f0-9]+", p):
            return None
        found = [i for i in self.image_ids() if _hex(i).startswith(p)]
        return found[0] if len(found) == 1 else None

    def lookup(self, ref_or_id: str) -> ImageRecord:
        """Find an image as Docker's GetImage does: full ID, reference, then ID prefix.

        Raises ImageNotFound with Docker's message, or InvalidReference.
        """
        parsed = refs.parse_any_reference(ref_or_id)
        if parsed.domain == "" and parsed.digest:
            if self.has_image(parsed.digest):
                return self.get_image(parsed.digest)
            raise ImageNotFound(f"No such image: {parsed.digest}")
        image_id = self.resolve_reference(parsed)
        if image_id and self.has_image(image_id):
            return self.get_image(image_id)
        found = self.search_id(ref_or_id)
        if found:
            return self.get_image(found)
        shown = self._tag_name_only(parsed)
        raise ImageNotFound(f"No such image: {shown.familiar_string()}")

    # -- tag and remove ------------------------------------------------------------------

    def tag(self, source: str, target: str) -> None:
        """``docker tag SOURCE TARGET``."""
        rec = self.lookup(source)
        ref = refs.parse_normalized_named(target)
        if ref.digest:
            raise DockwebError("refusing to create a tag with a digest reference")
        self.add_reference(ref, rec.id, force=True)
        labels = (rec.config.get("config") or {}).get("Labels")
        events.image(self.root, "tag", rec.id, ref.familiar_string(), labels)

    def remove(
        self,
        ref_or_id: str,
        *,
        force: bool = False,
        prune: bool = True,
        containers: list[tuple[str, str, bool]] | Callable[[], list[tuple[str, str, bool]]] = (),
    ) -> list[tuple[str, str]]:
        """Remove an image reference or image with Docker Engine's ImageDelete semantics
        (``_remove``), and journal dockerd's untag and delete events."""
        images = set(self.image_ids())
        labels: dict[str, dict] = {}
        try:
            rec = self.lookup(ref_or_id)
            labels[rec.id] = (rec.config.get("config") or {}).get("Labels") or {}
        except DockwebError:
            rec = None
        records = self._remove(ref_or_id, force=force, prune=prune, containers=containers)
        for kind, value in records:
            if kind == "Untagged" and rec is not None:
                events.image(self.root, "untag", rec.id, rec.id, labels.get(rec.id))
            elif kind == "Deleted" and value in images:
                events.image(self.root, "delete", value, value)
        return records

    def _remove(
        self,
        ref_or_id: str,
        *,
        force: bool = False,
        prune: bool = True,
        containers: list[tuple[str, str, bool]] | Callable[[], list[tuple[str, str, bool]]] = (),
    ) -> list[tuple[str, str]]:
        """Remove an image reference or image with Docker Engine's ImageDelete semantics.

        ``containers`` lists (container ID, image ID, running), or is a callable returning
        that list: it is then called under the metadata lock, which container creation also
        holds while it resolves its image, so no container can appear in between and lose
        its image. Returns the records in order, as ("Untagged", familiar ref) and
        ("Deleted", ID) pairs; raises ImageNotFound or Conflict with Docker's messages.
        Nothing is changed when it raises a conflict.
        """
        with self.locked():
            if callable(containers):
                containers = containers()
            rec = self.lookup(ref_or_id)
            image_id = rec.id
            records: list[tuple[str, str]] = []
            repo_refs = self.references(image_id)

            removed_repository_ref = False
            if not _is_image_id_prefix(image_id, ref_or_id):
                if not force and _is_single_reference(repo_refs):
                    users = [c for c in containers if c[1] == image_id]
                    if users:
                        raise Conflict(
                            f'conflict: unable to remove repository reference "{ref_or_id}" '
                            f"(must force) - container {short_id(users[0][0])} is using its "
                            f"referenced image {short_id(image_id)}"
                        )
                parsed = self._tag_name_only(refs.parse_normalized_named(ref_or_id))
                self.delete_reference(parsed)
                crashpoint("store.remove.untagged")
                records.append(("Untagged", parsed.familiar_string()))
                repo_refs = self.references(image_id)
                if not parsed.digest:
                    same_repo_tag = any(not r.digest and r.name == parsed.name for r in repo_refs)
                    if not same_repo_tag:
                        remaining = []
                        for r in repo_refs:
                            if r.digest and r.name == parsed.name:
                                self.delete_reference(r)
                                records.append(("Untagged", r.familiar_string()))
                            else:
                                remaining.append(r)
                        repo_refs = remaining
                if repo_refs:
                    return records
                removed_repository_ref = True
            elif _is_single_reference(repo_refs):
                mask = _HARD if force else _HARD | (_SOFT & ~_ACTIVE_REFERENCE)
                conflict = self._delete_conflict(image_id, mask, containers)
                if conflict:
                    raise conflict
                for r in repo_refs:
                    self.delete_reference(r)
                    records.append(("Untagged", r.familiar_string()))

            self._delete_helper(image_id, records, force, prune, removed_repository_ref, containers)
            return records

    def _delete_helper(
        self,
        image_id: str,
        records: list[tuple[str, str]],
        force: bool,
        prune: bool,
        quiet: bool,
        containers,
    ) -> None:
        mask = _HARD if force else _HARD | _SOFT
        conflict = self._delete_conflict(image_id, mask, containers)
        if conflict:
            dangling = not self.references(image_id) and not self.children(image_id)
            if quiet and (not dangling or conflict.used):
                return
            raise conflict
        rec = self.get_image(image_id)
        for r in self.references(image_id):
            self.delete_reference(r)
            records.append(("Untagged", r.familiar_string()))
        removed_layers = self._delete_image(rec, containers)
        records.append(("Deleted", image_id))
        records.extend(("Deleted", c) for c in removed_layers)
        if prune and rec.parent and self.has_image(rec.parent):
            self._delete_helper(rec.parent, records, False, True, True, containers)

    def _delete_conflict(self, image_id: str, mask: int, containers) -> _DeleteConflict | None:
        if mask & _DEPENDENT_CHILD and self.children(image_id):
            return _DeleteConflict(image_id, True, False, "image has dependent child images")
        if mask & _RUNNING_CONTAINER:
            for cid, iid, running in containers:
                if iid == image_id and running:
                    return _DeleteConflict(
                        image_id,
                        True,
                        True,
                        f"image is being used by running container {short_id(cid)}",
                    )
        if mask & _ACTIVE_REFERENCE and self.references(image_id):
            return _DeleteConflict(
                image_id, False, False, "image is referenced in multiple repositories"
            )
        if mask & _STOPPED_CONTAINER:
            for cid, iid, running in containers:
                if iid == image_id and not running:
                    return _DeleteConflict(
                        image_id,
                        False,
                        True,
                        f"image is being used by stopped container {short_id(cid)}",
                    )
        return None

    def _delete_image(self, rec: ImageRecord, containers) -> list[str]:
        """Delete an image record, then release its layers top down. Returns removed chain IDs."""
        self._unmount_quietly(rec.id)
        doomed = os.path.join(
            self.tmp_dir, f"deleted-image-{_hex(rec.id)[:16]}-{secrets.token_hex(4)}"
        )
        os.rename(self.image_dir(rec.id), doomed)
        crashpoint("store.delete_image.hidden")
        shutil.rmtree(doomed, ignore_errors=True)
        crashpoint("store.delete_image.gone")
        in_use = set()
        for other in self.images():
            in_use.update(other.layers)
        removed = []
        for chain in reversed(rec.layers):
            if chain in in_use or not self.has_layer(chain):
                break
            lock = self.layer_lock(chain)
            try:
                if not lock.acquire(blocking=False):
                    break  # a pull is using it; reconcile removes it later if it stays orphaned
                crashpoint("store.delete_image.layer")
                self._delete_layer(chain)
            finally:
                lock.release()
            removed.append(chain)
        return removed

    # -- mounts --------------------------------------------------------------------------

    def mount_path(self, image_id: str) -> str:
        return os.path.join(self.mounts_dir, _hex(image_id), "merged")

    def mount_image(self, image_id: str) -> str:
        """Mount the image's root filesystem read-only with overlayfs. Idempotent."""
        rec = self.get_image(image_id)
        target = self.mount_path(rec.id)
        if is_mountpoint(target):
            return target
        os.makedirs(target, exist_ok=True)
        links = [os.path.join("l", self.get_layer(c).link) for c in reversed(rec.layers)]
        if len(links) < 2:
            # overlayfs needs two lower dirs without an upper one; an empty one changes nothing
            links.append("empty")
        try:
            overlay.mount(target, links, root=self.root, readonly=True)
        except OverlayMountError as e:
            raise StoreError(f"mount image {short_id(rec.id)}: {e}") from e
        return target

    def unmount_image(self, image_id: str) -> bool:
        """Undo ``mount_image``. Idempotent: False when it was not mounted."""
        target = self.mount_path(image_id)
        if not is_mountpoint(target):
            return False
        proc = subprocess.run(["umount", target], capture_output=True, text=True)
        if proc.returncode != 0:
            raise StoreError(f"unmount image {short_id(image_id)}: {proc.stderr.strip()}")
        with contextlib.suppress(OSError):
            os.rmdir(target)
            os.rmdir(os.path.dirname(target))
        return True

    def _unmount_quietly(self, image_id: str) -> None:
        target = self.mount_path(image_id)
        if is_mountpoint(target):
            subprocess.run(["umount", "-l", target], capture_output=True)
        shutil.rmtree(os.path.dirname(target), ignore_errors=True)

    # -- reconcile -----------------------------------------------------------------------

    def reconcile(self, *, orphan_layers: bool = False) -> dict[str, int]:
        """Repair what a crash left: scratch dirs and dangling links.

        Complete layers that no image uses yet (an interrupted pull committed them) are kept
        so the next pull reuses them; ``orphan_layers=True`` removes them too (prune).
        Safe to run while other processes use the store: it only removes scratch work whose
        layer lock it can take, and orphan layers it can lock exclusively.
        """
        report = {"scratch": 0, "links": 0, "orphan_layers": 0}
        with self.locked():
            scratch = [(self.tmp_dir, n) for n in os.listdir(self.tmp_dir)]
            scratch += [(self.layers_dir, n) for n in os.listdir(self.layers_dir) if n[0] == "."]
            for parent, name in scratch:
                path = os.path.join(parent, name)
                # layer-: scratch made by an older dockweb in tmp/
                m = re.match(r"^(?:layer-|\.unpack-)([a-f0-9]{16})-", name)
                if m:
                    busy = [lk for lk in os.listdir(self.locks_dir) if lk.startswith(m.group(1))]
                    if any(not self._try_lock(lk) for lk in busy):
                        continue
                elif name.startswith("write-") and _writer_alive(name, path):
                    continue
                elif name.startswith(_DELETED):
                    self._empty_out(path)  # a removal cut short: its files go now
                    report["scratch"] += 1
                    continue
                elif name.startswith(_SKELETON):
                    continue  # dropped by age, in _drop_old_skeletons
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _unlink(path)
                report["scratch"] += 1
            for link in os.listdir(self.links_dir):
                p = os.path.join(self.links_dir, link)
                if not os.path.exists(p):
                    _unlink(p)
                    report["links"] += 1
            if not orphan_layers:
                return report
            used = set()
            for rec in self.images():
                used.update(rec.layers)
            layers = self.layers()
            # delete orphans top down so a parent is never removed before its child
            depth = {c: _depth(c, layers) for c in layers}
            remaining = dict(layers)
            for chain in sorted(layers, key=lambda c: -depth[c]):
                if chain in used:
                    continue
                if any(rec.parent == chain for rec in remaining.values()):
                    continue  # a layer above it is still there
                lock = self.layer_lock(chain)
                try:
                    if lock.acquire(blocking=False):
                        self._delete_layer(chain)
                        del remaining[chain]
                        report["orphan_layers"] += 1
                finally:
                    lock.release()
        return report

    def _try_lock(self, lock_name: str) -> bool:
        lock = LayerLock(os.path.join(self.locks_dir, lock_name))
        try:
            return lock.acquire(blocking=False)
        finally:
            lock.release()


def _mark_topdir(path: str) -> None:
    """Set ext4's ``T`` (top of directory hierarchies) attribute on ``path`` if it can be:
    Orlov then spreads new subdirectories over the emptiest flex groups. Other filesystems,
    or a process that may not set it, simply go on without."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            flags = array.array("i", [0])
            fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
            if not flags[0] & _FS_TOPDIR_FL:
                flags[0] |= _FS_TOPDIR_FL
                fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags, True)
        finally:
            os.close(fd)


def _remove_files(root: str) -> None:
    """Unlink everything under ``root`` that is not a directory (symlinks included; best
    effort: what cannot go now goes with the skeleton)."""
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


def _depth(chain: str, layers: dict[str, LayerRecord]) -> int:
    d = 0
    while chain in layers and layers[chain].parent:
        chain = layers[chain].parent
        d += 1
    return d


def _writer_alive(name: str, path: str) -> bool:
    """Whether the ``write-<pid>-...`` file may still be written by its process: the pid
    is alive (it may have been reused) and the file is recent."""
    pid = name.split("-")[1] if name.count("-") >= 2 else ""
    if pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False  # its writer died (a crash between write and rename)
        except PermissionError:
            pass
    return time.time() - _mtime(path) < 60


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def is_mountpoint(path: str) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == path for line in f)
    except OSError:
        return False


_DEPENDENT_CHILD = 1
_RUNNING_CONTAINER = 2
_ACTIVE_REFERENCE = 4
_STOPPED_CONTAINER = 8
_HARD = _DEPENDENT_CHILD | _RUNNING_CONTAINER
_SOFT = _ACTIVE_REFERENCE | _STOPPED_CONTAINER


class _DeleteConflict(Conflict):
    def __init__(self, image_id: str, hard: bool, used: bool, message: str):
        force_msg = "cannot be forced" if hard else "must be forced"
        super().__init__(
            f"conflict: unable to delete {short_id(image_id)} ({force_msg}) - {message}"
        )
        self.hard = hard
        self.used = used


def _is_image_id_prefix(image_id: str, possible_prefix: str) -> bool:
    return image_id.startswith(possible_prefix) or _hex(image_id).startswith(possible_prefix)


def _is_single_reference(repo_refs: list[refs.Reference]) -> bool:
    """True when all references are from one repository with at most one tag (moby's rule)."""
    if len(repo_refs) <= 1:
        return len(repo_refs) == 1
    single = None
    canonical = set()
    for r in repo_refs:
        if r.digest:
            canonical.add(r.name)
        elif single is None:
            single = r
        else:
            return False
    if single is None:
        single = repo_refs[0]
    return len(canonical) == 1 and single.name in canonical
