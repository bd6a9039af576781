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
  container, owners and modes from the source, refused on a read-only mount;
* :func:`stat_path`, :func:`archive_path` and :func:`extract_to_dir` are dockerd's side of
  it, as the Engine API's ``/containers/{id}/archive`` answers (HEAD, GET, PUT): a path
  resolved as moby's ``ResolvePath``, its ``ContainerPathStat``, the tar of it and the
  unpacking of one.

Errors are :class:`CopyError` (``str()`` is docker's words; :class:`PathNotFound` for
dockerd's "Could not find the file") or ``ContainerNotFound``.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import threading
from typing import BinaryIO

from dockweb.runtime.archive import untar
from dockweb.runtime.errors import DockwebError, LayerError, NotFound, os_reason
from dockweb.runtime.units import rfc3339nano

_MAX_HOPS = 40  # Linux's MAXSYMLINKS


class CopyError(DockwebError):
    """A copy refused or failed; ``daemon`` says whether docker words it as the daemon's."""

    def __init__(self, message: str, *, daemon: bool = False) -> None:
        super().__init__(message)
        self.daemon = daemon


class PathNotFound(CopyError, NotFound):
    """dockerd's containerFileNotFound: "Could not find the file PATH in container NAME"."""

    def __init__(self, path: str, container: str) -> None:
        super().__init__(f"Could not find the file {path} in container {container}", daemon=True)


class Scope:
    """A container's file system as its processes see it, from the host."""

    def __init__(self, rootfs: str, mounts: list[dict], *, read_only: bool = False) -> None:
        self.rootfs = rootfs.rstrip("/")
        self.read_only = read_only  # --read-only: the root file system is read-only
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
        return not self.read_only if m is None else bool(m.get("rw", True))


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
        raise PathNotFound(path, container) from None
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
    """``docker cp CONTAINER:SRC -``: the tar dockerd sends for SRC (``archive_path``); with
    ``follow`` (``-L``) a symlink's target's, named as the link, as the docker client asks
    for it."""
    if follow:
        st = stat_path(scope, src, container)
        if st["linkTarget"]:
            archive_path(scope, st["linkTarget"], out, container=container,
                         rebase=_go_base(src))
            return
    archive_path(scope, src, out, container=container)


# -- dockerd's side: ResolvePath, StatPath, ArchivePath, ExtractToDir ---------------------


def _go_clean(path: str) -> str:
    """Go's filepath.Clean of an absolute path."""
    clean = posixpath.normpath(path)
    return "/" + clean.lstrip("/") if clean.startswith("//") else clean


def _go_base(path: str) -> str:
    """Go's filepath.Base: "." for "", "/" for the root."""
    if not path:
        return "."
    path = path.rstrip("/")
    return path.rsplit("/", 1)[-1] if path else "/"


def _preserve_trailing(cleaned: str, original: str) -> str:
    """moby's archive.PreserveTrailingDotOrSeparator."""
    if _go_base(cleaned) != "." and _go_base(original) == ".":
        cleaned = (cleaned if cleaned.endswith("/") else cleaned + "/") + "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def resolve_path(scope: Scope, path: str) -> tuple[str, str]:
    """moby's container.ResolvePath: (resolved, absolute). ``path`` is taken as absolute in
    the container and cleaned lexically; its directory is resolved in the container's scope,
    its last element kept as given (a trailing "/" or "/." keeps it followed)."""
    abs_path = _preserve_trailing(_go_clean("/" + path), path)
    cut = abs_path.rfind("/") + 1
    directory, base = abs_path[:cut], abs_path[cut:]
    return scope.resolve(directory).rstrip("/") + "/" + base, abs_path


def go_file_mode(mode: int) -> int:
    """A stat mode as Go's os.FileMode (what ContainerPathStat.mode carries)."""
    out = mode & 0o777
    fmt = stat.S_IFMT(mode)
    out |= {
        stat.S_IFDIR: 1 << 31,
        stat.S_IFLNK: 1 << 27,
        stat.S_IFBLK: 1 << 26,
        stat.S_IFCHR: (1 << 26) | (1 << 21),
        stat.S_IFIFO: 1 << 25,
        stat.S_IFSOCK: 1 << 24,
    }.get(fmt, 0)
    if mode & stat.S_ISUID:
        out |= 1 << 23
    if mode & stat.S_ISGID:
        out |= 1 << 22
    if mode & stat.S_ISVTX:
        out |= 1 << 20
    return out


def _lstat(scope: Scope, resolved: str, path: str, container: str) -> os.stat_result:
    host = scope.host(resolved)
    try:
        return os.lstat(host)
    except FileNotFoundError:
        raise PathNotFound(path, container) from None
    except OSError as e:
        raise CopyError(f"lstat {host}: {os_reason(e)}", daemon=True) from None


def stat_path(scope: Scope, path: str, container: str) -> dict:
    """dockerd's ContainerStatPath: ``{name, size, mode, mtime, linkTarget}`` of ``path``
    (mode as Go's os.FileMode; linkTarget the symlink's target resolved in the container)."""
    resolved, abs_path = resolve_path(scope, path)
    st = _lstat(scope, resolved, path, container)
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = scope.resolve(abs_path)
    return {
        "name": _go_base(abs_path),
        "size": st.st_size,
        "mode": go_file_mode(st.st_mode),
        "mtime": rfc3339nano(st.st_mtime_ns),
        "linkTarget": link,
    }


def archive_path(
    scope: Scope, path: str, out: BinaryIO, *, container: str, rebase: str = ""
) -> dict:
    """dockerd's ContainerArchivePath: the tar of ``path`` written to ``out`` (see
    ``prepare_archive``); returns the path's stat."""
    st, write = prepare_archive(scope, path, container=container, rebase=rebase)
    write(out)
    return st


def prepare_archive(scope: Scope, path: str, *, container: str, rebase: str = ""):
    """The checks of ContainerArchivePath (``PathNotFound``, ``CopyError``) done now: the
    path's stat and ``write(out)``, which writes its tar. The entries are named from the
    base name of ``path`` as given ("link" for "link/", "." for "dir/.", "/" for the root),
    or ``rebase``; owners and modes as they are in the container."""
    st = stat_path(scope, path, container)
    resolved, abs_path = resolve_path(scope, path)
    source, name = _go_clean(resolved), rebase or _go_base(abs_path)

    def write(out: BinaryIO) -> None:
        names = owner_names(scope)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, source, name, scope.host, names)

    return st, write


def extract_to_dir(
    scope: Scope,
    stream,
    path: str,
    *,
    container: str,
    no_overwrite_dir_non_dir: bool = False,
    user: str | None = None,
) -> None:
    """dockerd's ContainerExtractToDir: the tar read from ``stream`` unpacked into the
    directory ``path`` (every symlink followed in the container, the last one too),
    chroot-like. ``user`` (``copyUIDGID``: the container's configured user) owns every
    entry, looked up as dockerd does (``copy_uid_gid``)."""
    abs_path = _preserve_trailing(_go_clean("/" + path), path)
    resolved = scope.resolve(abs_path)
    if not stat.S_ISDIR(_lstat(scope, resolved, path, container).st_mode):
        raise CopyError("extraction point is not a directory", daemon=True)
    _check_writable(scope, resolved)
    chown = copy_uid_gid(user) if user else None
    _unpack(scope, stream, resolved, no_overwrite=no_overwrite_dir_non_dir, chown=chown)


def copy_uid_gid(user: str) -> tuple[int, int]:
    """The owner dockerd gives a copy with ``copyUIDGID`` for a container whose user is
    ``user``: idtools.LookupUser, which looks in the host's user database (by name, then
    as getent does, by uid), not the container's."""
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else None
        except KeyError:
            entry = None
    if entry is None:
        raise CopyError(f'getent unable to find entry "{user}" in passwd database', daemon=True)
    return entry.pw_uid, entry.pw_gid


def owner_names(scope: Scope) -> tuple[dict[int, str], dict[int, str]]:
    """The user and group names of the container's /etc/passwd and /etc/group by id: what
    dockerd's tars carry as uname and gname (it tars in a chroot into the container, where
    Go's user lookup reads those files). Read through the container's scope, never a
    symlink out of it."""
    out: list[dict[int, str]] = []
    for path in ("/etc/passwd", "/etc/group"):
        names: dict[int, str] = {}
        try:
            fd = os.open(scope.host(scope.resolve(path)),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                text = f.read(1 << 20).decode(errors="replace")
        except (OSError, CopyError):
            text = ""
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[2].isdigit():
                names.setdefault(int(fields[2]), fields[0])
        out.append(names)
    return out[0], out[1]


def _add(
    tar: tarfile.TarFile, path: str, name: str, host_of=lambda path: path, names=None
) -> None:
    """``path`` into ``tar`` as ``name``, not followed, owners kept, as docker tars: a
    container's path with ``host_of`` its scope's (mounts under it included) and ``names``
    its ``owner_names``, else a host path (no names). A directory's entries are
    ``name/child`` ("./child" for ".", "/child" for "/")."""
    host = host_of(path)
    info = tar.gettarinfo(host, arcname=name)
    info.name = name  # gettarinfo strips a leading "/"
    users, groups = names or ({}, {})
    info.uname, info.gname = users.get(info.uid, ""), groups.get(info.gid, "")
    if info.isreg():
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            tar.addfile(info, f)
    elif info.type in (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                       tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE):
        tar.addfile(info)
    if info.isdir():
        for child in sorted(os.listdir(host)):
            _add(tar, _child(path, child), f"{name.rstrip('/')}/{child}", host_of, names)


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
            raise PathNotFound(parent, container) from None
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


def _check_writable(scope: Scope, directory: str) -> None:
    if not scope.writable(directory):
        if scope.mount_of(directory) is None:
            raise CopyError("container rootfs is marked read-only", daemon=True)
        raise CopyError("mounted volume is marked read-only", daemon=True)


def _unpack(
    scope: Scope, stream, directory: str, *, no_overwrite: bool = True,
    chown: tuple[int, int] | None = None,
) -> None:
    _check_writable(scope, directory)
    try:
        untar(stream, scope.host(directory), no_overwrite_dir_non_dir=no_overwrite,
              shown_as=directory, chown=chown)
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
                if top == ".":  # dir/.: the contents, not the directory
                    for child in sorted(os.listdir(real)):
                        _add(tar, os.path.join(real, child), child)
                else:
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
