"""``docker cp``: files between a container and the host, with dockerd's rules and words.

A container's path is resolved as the container sees it (moby's ``FollowSymlinkInScope``):
``..`` stops at its root, absolute symlink targets start from its root, and a path under a
volume or bind mount lands in that mount's source. Nothing outside the container's root
filesystem and mounts is ever read or written through a path the container controls.

* :func:`copy_out` copies a container path to a host path, as the docker client extracts
  the archive it gets: modes and times kept, owned by whoever runs the copy (the client
  never chowns), symlinks copied as symlinks;
* :func:`archive` writes the tar ``docker cp CONTAINER:PATH -`` prints;
* :func:`copy_in` / :func:`extract` put a host path or a tar stream into a directory of the
  container, owners and modes from the source, refused on a read-only mount.

Errors are :class:`CopyError` (``str()`` is docker's words) or ``ContainerNotFound``.
"""

from __future__ import annotations

import os
import stat
import tarfile
import threading
from typing import BinaryIO

from dockweb.runtime.archive import untar
from dockweb.runtime.errors import DockwebError, LayerError, os_reason

_MAX_HOPS = 40  # Linux's MAXSYMLINKS


class CopyError(DockwebError):
    """A copy refused or failed; ``daemon`` says whether docker words it as the daemon's."""

    def __init__(self, message: str, *, daemon: bool = False) -> None:
        super().__init__(message)
        self.daemon = daemon


class Scope:
    """A container's file system as its processes see it, from the host."""

    def __init__(self, rootfs: str, mounts: list[dict]) -> None:
        self.rootfs = rootfs.rstrip("/")
        # longest destination first: a mount inside a mount wins
        self.mounts = sorted(
            mounts, key=lambda m: len(m["destination"].rstrip("/")), reverse=True
        )

    def mount_of(self, path: str) -> dict | None:
        for m in self.mounts:
            dest = m["destination"].rstrip("/") or "/"
            if path == dest or path.startswith(dest.rstrip("/") + "/"):
                return m
        return None

    def host(self, path: str) -> str:
        """The host path of the resolved container path ``path`` (absolute, clean)."""
        m = self.mount_of(path)
        if m is None:
            return self.rootfs + (path if path != "/" else "")
        dest = m["destination"].rstrip("/")
        return m["source"].rstrip("/") + path[len(dest):]

    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        """``path`` (absolute or relative to ``/``) with its symlinks followed inside the
        container; the last component's only with ``follow_last``."""
        parts = [p for p in path.split("/") if p]
        current: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if current:
                    current.pop()
                continue
            candidate = "/" + "/".join([*current, part])
            if (parts or follow_last) and os.path.islink(self.host(candidate)):
                hops += 1
                if hops > _MAX_HOPS:
                    raise CopyError(f"too many links in {path}", daemon=True)
                target = os.readlink(self.host(candidate))
                if target.startswith("/"):
                    current = []
                parts = [p for p in target.split("/") if p] + parts
                continue
            current.append(part)
        return "/" + "/".join(current)

    def writable(self, path: str) -> bool:
        m = self.mount_of(path)
        return m is None or bool(m.get("rw", True))


def _clean(path: str) -> str:
    return "/" + "/".join(p for p in path.split("/") if p not in ("", "."))


def _child(path: str, name: str) -> str:
    return path.rstrip("/") + "/" + name


def _copy_entry(scope: Scope, path: str, dst: str) -> None:
    """The container's ``path`` (resolved; a mount under it is the mount's content), not
    followed: data, mode and times; the caller's owner."""
    src = scope.host(path)
    st = os.lstat(src)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        if os.path.lexists(dst) and (os.path.islink(dst) or not os.path.isdir(dst)):
            raise CopyError(
                f'cannot overwrite non-directory "{os.path.abspath(dst)}" with directory '
                f'"{os.path.dirname(os.path.abspath(dst))}"'
            )
        if not os.path.lexists(dst):
            os.mkdir(dst, 0o700)
        for name in sorted(os.listdir(src)):
            _copy_entry(scope, _child(path, name), os.path.join(dst, name))
        os.chmod(dst, stat.S_IMODE(mode))
    else:
        if os.path.lexists(dst):
            if os.path.isdir(dst) and not os.path.islink(dst):
                raise CopyError(
                    f'cannot overwrite directory "{os.path.abspath(dst)}" with non-directory '
                    f'"{os.path.dirname(os.path.abspath(dst))}"'
                )
            os.unlink(dst)
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(mode):
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                try:
                    while chunk := os.read(fd, 1 << 20):
                        os.write(out, chunk)
                finally:
                    os.close(out)
            finally:
                os.close(fd)
            os.chmod(dst, stat.S_IMODE(mode))
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(dst, mode, st.st_rdev)
        else:
            return  # a socket: tar has no such entry either
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _existing(scope: Scope, path: str, container: str, *, follow: bool) -> str:
    """``path`` resolved, as dockerd's ContainerStatPath finds it (its last component kept:
    a symlink there is copied as one), or with ``follow`` that symlink's target, which must
    exist then too. Raises dockerd's "Could not find the file"."""
    full = _resolved(scope, path)
    try:
        st = os.lstat(scope.host(full))
    except OSError:
        raise CopyError(
            f"Could not find the file {path} in container {container}", daemon=True
        ) from None
    if follow and stat.S_ISLNK(st.st_mode):
        return _existing(scope, scope.resolve(full), container, follow=False)
    return full


def copy_out(scope: Scope, src: str, dst: str, *, container: str, follow: bool = False) -> None:
    """``docker cp CONTAINER:SRC DST`` with DST a host path (the client's rules)."""
    resolved = _existing(scope, src, container, follow=follow)
    src_is_dir = stat.S_ISDIR(os.lstat(scope.host(resolved)).st_mode)
    contents_only = src_is_dir and (src.endswith("/.") or src == ".")
    dst_is_dir = os.path.isdir(dst)
    if os.path.lexists(dst):
        if src_is_dir and not dst_is_dir:
            raise CopyError("cannot copy directory")
        if dst_is_dir and not contents_only:
            target = os.path.join(dst, os.path.basename(resolved.rstrip("/")) or "/")
        else:
            target = dst
    else:
        if dst.endswith(("/", "/.")):
            raise CopyError("no such directory")
        parent = os.path.dirname(os.path.abspath(dst))
        if not os.path.isdir(parent):
            raise CopyError(f'invalid output path: directory "{parent}" does not exist')
        target = dst
    if src_is_dir and os.path.isdir(target):
        for name in sorted(os.listdir(scope.host(resolved))):
            _copy_entry(scope, _child(resolved, name), os.path.join(target, name))
    else:
        _copy_entry(scope, resolved, target)


def _resolved(scope: Scope, path: str) -> str:
    """``path`` resolved with its last component kept (a symlink is copied as one)."""
    clean = _clean(path)
    parent = scope.resolve(os.path.dirname(clean) or "/")
    name = os.path.basename(clean)
    return parent.rstrip("/") + "/" + name if name else parent


def archive(scope: Scope, src: str, out: BinaryIO, *, container: str, follow: bool = False):
    """``docker cp CONTAINER:SRC -``: a tar of SRC named by its base name (its contents for
    ``dir/.``), owners and modes as they are in the container."""
    resolved = _existing(scope, src, container, follow=follow)
    base = os.path.basename(resolved.rstrip("/")) or "."
    if src.endswith("/.") and os.path.isdir(scope.host(resolved)):
        base = "."
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, resolved, base, scope.host)


def _add(tar: tarfile.TarFile, path: str, name: str, host_of=lambda path: path) -> None:
    """``path`` into ``tar`` as ``name``, not followed, owners kept, as docker tars: a
    container's path with ``host_of`` its scope's (mounts under it included), else a host
    path."""
    host = host_of(path)
    if name == "." and os.path.isdir(host):  # dir/.: the contents, not the directory
        for child in sorted(os.listdir(host)):
            _add(tar, _child(path, child), child, host_of)
        return
    info = tar.gettarinfo(host, arcname=name)
    info.uname = info.gname = ""
    if info.isreg():
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            tar.addfile(info, f)
    elif info.type in (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                       tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE):
        tar.addfile(info)
    if info.isdir():
        for child in sorted(os.listdir(host)):
            _add(tar, _child(path, child), f"{name}/{child}", host_of)


def _target_dir(scope: Scope, dst: str, container: str) -> tuple[str, str]:
    """Where a copy into the container lands: (resolved directory, name or "")."""
    try:
        resolved = _existing(scope, dst, container, follow=True)
    except CopyError:
        if dst.endswith(("/", "/.")):
            raise CopyError("no such directory") from None
        parent = os.path.dirname(_clean(dst)) or "/"
        resolved = _existing(scope, parent, container, follow=True)
        if not stat.S_ISDIR(os.stat(scope.host(resolved)).st_mode):
            raise CopyError(f"Could not find the file {parent} in container {container}",
                            daemon=True) from None
        return resolved, os.path.basename(_clean(dst))
    if stat.S_ISDIR(os.stat(scope.host(resolved)).st_mode):
        return resolved, ""
    return os.path.dirname(resolved) or "/", os.path.basename(resolved)


def extract(scope: Scope, stream, dst: str, *, container: str, label: str = "") -> None:
    """``docker cp - CONTAINER:DST``: the tar read from ``stream`` unpacked into the
    directory DST (chroot-like: nothing lands outside it), owners and modes from the tar."""
    try:
        resolved = _existing(scope, dst, container, follow=True)
        is_dir = stat.S_ISDIR(os.stat(scope.host(resolved)).st_mode)
    except (CopyError, OSError):
        is_dir = False
    if not is_dir:
        raise CopyError(f'destination "{label or dst}" must be a directory')
    _unpack(scope, stream, resolved)


def _unpack(scope: Scope, stream, directory: str) -> None:
    if not scope.writable(directory):
        raise CopyError("mounted volume is marked read-only", daemon=True)
    try:
        untar(stream, scope.host(directory), no_overwrite_dir_non_dir=True, shown_as=directory)
    except LayerError as e:
        raise CopyError(str(e), daemon=True) from None


def copy_in(
    scope: Scope, src: str, dst: str, *, container: str, follow: bool = False
) -> None:
    """``docker cp SRC CONTAINER:DST`` with SRC a host path (the client's rules)."""
    try:
        st = os.stat(src) if follow else os.lstat(src)
    except OSError as e:
        raise CopyError(f"lstat {os.path.abspath(src)}: {os_reason(e)}") from None
    directory, name = _target_dir(scope, dst, container)
    src_is_dir = stat.S_ISDIR(st.st_mode)
    existing = scope.host(_child(directory, name)) if name else ""
    if src_is_dir and existing and os.path.lexists(existing) and not os.path.isdir(existing):
        raise CopyError("cannot copy directory")
    contents_only = src_is_dir and (src.endswith("/.") or src == ".")
    if contents_only and not name:
        top = "."
    else:
        top = name or os.path.basename(os.path.abspath(src))
    real = os.path.realpath(src) if follow else src
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as w, tarfile.open(
                fileobj=w, mode="w|", format=tarfile.PAX_FORMAT
            ) as tar:
                _add(tar, real, top)
        except BrokenPipeError:
            pass
        except BaseException as e:  # noqa: BLE001 - reported by the consumer below
            failure.append(e)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        with os.fdopen(read_fd, "rb") as r:
            _unpack(scope, r, directory)
    finally:
        producer.join()
    if failure:
        raise CopyError(str(failure[0]))
