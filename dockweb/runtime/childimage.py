"""Making a child image (moby's ``NewChildImage``): a writable layer's tar in overlay-diff
form becomes a layer (``layer_from_upper``), the private writable overlay of COPY and ADD
(``rw_layer``), the config in Go's field order, the build cache's lookup (``find_cached``),
and the image's record (``put_child_image``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import secrets
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator

from dockweb.runtime import overlay
from dockweb.runtime.archive import apply_layer
from dockweb.runtime.digest import sha256_digest
from dockweb.runtime.errors import (
    BuildError,
    DockwebError,
    OverlayMountError,
)
from dockweb.runtime.imageconfig import ordered_config
from dockweb.runtime.store import ImageRecord, LayerRecord, Store
from dockweb.runtime.tarsplit import FILE_NAME as TAR_SPLIT

EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


# -- layer tar and layers ---------------------------------------------------------------


class _HashingFile:
    def __init__(self, f):
        self.f = f
        self.h = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.h.update(data)
        self.f.write(data)


def write_layer_tar(diff: str, out) -> None:
    """Write the tar stream of a writable layer in overlay form, as overlay2's ``Diff``:
    names sorted, directories first then their contents, 0/0 character devices as
    ``.wh.NAME`` files, opaque directories followed by ``.wh..wh..opq``, hard links as links
    to the first path, numeric owners, whole-second mtimes, no record padding (Go's tar)."""
    seen: dict[tuple[int, int], str] = {}

    def header(info: tarfile.TarInfo) -> None:
        info.uname = info.gname = ""
        out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def walk(rel: str) -> None:
        base = os.path.join(diff, rel) if rel else diff
        for name in sorted(os.listdir(base)):
            path = f"{rel}/{name}" if rel else name
            full = os.path.join(base, name)
            st = os.lstat(full)
            info = tarfile.TarInfo(path)
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid = st.st_uid, st.st_gid
            info.mtime = st.st_mtime_ns // 1_000_000_000
            mode = st.st_mode
            if overlay.is_whiteout(st):
                info.name = f"{rel}/.wh.{name}" if rel else f".wh.{name}"
                info.type, info.mode, info.size = tarfile.REGTYPE, 0o600, 0
                header(info)
                continue
            if stat.S_ISDIR(mode):
                info.type = tarfile.DIRTYPE
                header(info)
                if overlay.is_opaque(full, userxattr=True):
                    wh = tarfile.TarInfo(f"{path}/.wh..wh..opq")
                    wh.mode, wh.uid, wh.gid, wh.mtime = info.mode, info.uid, info.gid, info.mtime
                    header(wh)
                walk(path)
                continue
            if stat.S_ISREG(mode) and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, seen[key], 0
                    header(info)
                    continue
                seen[key] = path
            if stat.S_ISREG(mode):
                info.size = st.st_size
                header(info)
                with open(full, "rb") as f:
                    left = st.st_size
                    while left > 0:
                        chunk = f.read(min(left, 1 << 20))
                        if not chunk:
                            raise DockwebError(f"commit layer: {path} shrank while being read")
                        out.write(chunk)
                        left -= len(chunk)
                if st.st_size % 512:
                    out.write(bytes(512 - st.st_size % 512))
            elif stat.S_ISLNK(mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
                header(info)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                header(info)
            elif stat.S_ISFIFO(mode):
                info.type = tarfile.FIFOTYPE
                header(info)
            # sockets are skipped, as Go's archive does

    walk("")
    out.write(bytes(1024))


def layer_from_upper(
    store: Store, upper: str, parent_chain: str, work_dir: str
) -> LayerRecord | None:
    """Turn a writable layer directory into a committed layer on top of ``parent_chain``.

    Returns None when ``upper`` is empty (no layer: the step is an ``empty_layer``). The tar
    is written to ``work_dir`` while hashed (the DiffID), then applied into a layer scratch
    directory under the layer's lock and committed. Idempotent: an existing layer of the same
    chain ID is returned as it is.
    """
    if not os.listdir(upper):
        return None
    tar_path = os.path.join(work_dir, f"layer-{secrets.token_hex(4)}.tar")
    try:
        with open(tar_path, "w+b") as f:
            hashing = _HashingFile(f)
            write_layer_tar(upper, hashing)
            diff_id = "sha256:" + hashing.h.hexdigest()
            chain = sha256_digest(f"{parent_chain} {diff_id}".encode()) if parent_chain else diff_id
            if store.has_layer(chain):
                return store.get_layer(chain)
            lock = store.layer_lock(chain)
            try:
                lock.acquire()
                if store.has_layer(chain):
                    return store.get_layer(chain)
                scratch = store.new_layer_dir(chain)
                try:
                    f.seek(0)
                    # tar-split: save and push give back this very tar (its DiffID)
                    size = apply_layer(
                        f, os.path.join(scratch, "diff"), tar_split=os.path.join(scratch, TAR_SPLIT)
                    )
                    record = LayerRecord(
                        chain_id=chain, diff_id=diff_id, parent=parent_chain, size=size, link=""
                    )
                    return store.commit_layer(scratch, record)
                except BaseException:
                    shutil.rmtree(scratch, ignore_errors=True)
                    raise
            finally:
                lock.release()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tar_path)


@contextlib.contextmanager
def rw_layer(store: Store, rec: ImageRecord | None, work_dir: str) -> Iterator[tuple[str, str]]:
    """A writable overlay over an image's layers (Docker's ``NewRWLayer``): yields
    (merged mount, upper dir); unmounted afterwards, the upper dir kept for the commit."""
    base = os.path.join(work_dir, f"rw-{secrets.token_hex(4)}")
    upper, work, merged = (os.path.join(base, d) for d in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.makedirs(d)
    lowers = (
        [os.path.join("l", store.get_layer(c).link) for c in reversed(rec.layers)] if rec else []
    )
    if not lowers:
        lowers = ["empty"]
    try:
        overlay.mount(merged, lowers, root=store.root, upper=upper, work=work)
    except OverlayMountError as e:
        raise BuildError(f"mount build layer: {e}") from e
    try:
        yield merged, upper
    finally:
        subprocess.run(["umount", merged], capture_output=True)


# -- image configs ----------------------------------------------------------------------


def image_config_bytes(config: dict) -> bytes:
    """The image config as dockerd marshals it: top-level keys sorted, compact, the
    container configs in Go's field order."""
    top = {}
    for key in sorted(config):
        value = config[key]
        if key in ("config", "container_config"):
            value = ordered_config(value)
        top[key] = value
    return json.dumps(top, separators=(",", ":"), ensure_ascii=False).encode()


def _compare(a: dict, b: dict) -> bool:
    """moby's ``compare`` of two container configs (the build cache's equality)."""
    for key in ("OpenStdin", "AttachStdout", "AttachStderr", "User", "Tty"):
        if (a.get(key) or None) != (b.get(key) or None):
            return False
    for key in ("Cmd", "Env", "Entrypoint"):
        if list(a.get(key) or []) != list(b.get(key) or []):
            return False
    for key in ("Labels", "ExposedPorts", "Volumes"):
        if dict(a.get(key) or {}) != dict(b.get(key) or {}):
            if key == "Labels" or set(a.get(key) or {}) != set(b.get(key) or {}):
                return False
    return True


def find_cached(store: Store, parent_id: str, container_config: dict) -> str | None:
    """The newest child image of ``parent_id`` ("" for scratch: images without a parent)
    built by an equal ``container_config``: moby's ``getLocalCachedImage``."""
    match = None
    for rec in store.images():
        if rec.parent != parent_id:
            continue
        cc = rec.config.get("container_config")
        if cc and _compare(cc, container_config):
            if match is None or match.created < rec.created:
                match = rec
    return match.id if match else None


def put_child_image(
    store: Store,
    parent: ImageRecord | None,
    *,
    config: dict,
    container_config: dict,
    container_id: str,
    layer: LayerRecord | None,
    history_entry: dict,
    author: str = "",
    comment: str = "",
) -> ImageRecord:
    """Record an image one step above ``parent`` (moby's ``NewChildImage``): the parent's
    layers plus ``layer`` (None: an empty layer, only the history grows), the parent's
    history plus ``history_entry``, ``parent`` set in the config and in the record."""
    base = parent.config if parent else {}
    diff_ids = list(base.get("rootfs", {}).get("diff_ids", []))
    if layer is not None:
        diff_ids.append(layer.diff_id)
    image: dict = {
        "architecture": base.get("architecture") or go_arch(),
        "config": config,
        "container_config": container_config,
        "created": history_entry["created"],
        "history": list(base.get("history") or []) + [history_entry],
        "os": base.get("os") or "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if container_id:
        image["container"] = container_id
    if author:
        image["author"] = author
    if comment:
        image["comment"] = comment
    if base.get("variant"):
        image["variant"] = base["variant"]
    if parent:
        image["parent"] = parent.id
    return store.put_image(image_config_bytes(image), parent=parent.id if parent else "")


def go_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)
