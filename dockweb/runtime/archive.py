"""Unpack one layer tar into an empty directory, in overlayfs upper-dir form, as Docker does.

Docker (20.10, overlay2) applies a layer with ``chrootarchive.UntarUncompressed``: a child
process chroots into the layer's ``diff`` directory and runs ``archive.Unpack`` with the
overlay whiteout converter, while ``tar-split`` watches the same stream. This module
reproduces the result of that, without a chroot:

* every path is resolved as the chroot would resolve it: ``..`` stops at the layer root,
  absolute names and absolute symlink targets start from the layer root, and a symlink
  met on the way (``a -> /``, ``a -> ../..``) is followed *inside* the layer. Nothing is
  ever created, changed or removed outside ``dest``. Because the chroot contains them,
  Docker accepts ``../x`` (written as ``x``), escaping symlink targets (stored verbatim)
  and hardlinks to ``../../f`` (linked to ``f``); so does this module. Pass
  ``refuse_escapes=True`` to get moby's non-chroot checks instead (``BreakoutError``);
* whiteouts ``.wh.NAME`` become 0/0 character devices, ``.wh..wh..opq`` sets
  ``trusted.overlay.opaque=y`` on its directory; Docker 20.10's overlay2 path does not
  special-case other ``.wh..wh.*`` names, so ``.wh..wh.plnk`` becomes the whiteout
  ``.wh.plnk`` exactly as there;
* owners, modes (setuid/setgid/sticky), mtimes/atimes (directories last), PAX
  ``SCHILY.xattr.*``, hardlinks, symlinks, fifos and devices as ``createTarFile``;
* two entries with the same cleaned name fail like tar-split does;
* errors read as Docker's: ``Error processing tar file(exit status 1): ...``.

Paths are bytes throughout, so names that are not UTF-8 round-trip unchanged.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from typing import Protocol

from dockweb.runtime import overlay
from dockweb.runtime.errors import BreakoutError, LayerError, os_reason
from dockweb.runtime.limits import LayerLimits
from dockweb.runtime.tarsplit import SplitRecorder

__all__ = ["apply_layer", "directory_size", "untar"]

_READ_SIZE = 1 << 20  # bytes asked of the stream per read
_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS
_PAX_LIMIT = 1 << 20  # Go's maxSpecialFileSize: longer PAX/GNU records are refused

_WHITEOUT_PREFIX = b".wh."
_WHITEOUT_OPAQUE = b".wh..wh..opq"

# Go's time limits in system.Chtimes: outside [epoch, maxTime] becomes the epoch.
_MAX_NS = (1 << 63) - 1

_O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_TYPE_REG = (b"0", b"\0", b"7")
_TYPE_LINK = b"1"
_TYPE_SYMLINK = b"2"
_TYPE_CHAR = b"3"
_TYPE_BLOCK = b"4"
_TYPE_DIR = b"5"
_TYPE_FIFO = b"6"
_TYPE_PAX = b"x"
_TYPE_PAX_GLOBAL = b"g"
_TYPE_GNU_LONGNAME = b"L"
_TYPE_GNU_LONGLINK = b"K"
_HEADER_ONLY = (_TYPE_LINK, _TYPE_SYMLINK, _TYPE_CHAR, _TYPE_BLOCK, _TYPE_DIR, _TYPE_FIFO)


class Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...


class _TarFormatError(Exception):
    """The tar stream itself is malformed (Go's archive/tar errors)."""


def apply_layer(
    stream: Readable,
    dest: str,
    *,
    limits: LayerLimits | None = None,
    refuse_escapes: bool = False,
    tar_split: str | None = None,
) -> int:
    """Unpack the uncompressed layer tar read from ``stream`` into the empty dir ``dest``.

    ``stream`` needs only ``read(n)``; it is read to its end, past the end-of-archive
    blocks, because the caller hashes the whole stream. Returns the layer's size as moby's
    ``directory.Size`` counts ``dest`` afterwards. Raises ``LayerError`` (with Docker's
    message) when the tar is malformed or an entry cannot be applied, ``BreakoutError``
    only with ``refuse_escapes``. On error ``dest`` holds a partial layer: the caller
    throws it away. Never writes outside ``dest``.

    With ``tar_split`` (a path, usually ``tarsplit.FILE_NAME`` beside ``dest``), everything
    in the stream but the files' contents is kept there, so that ``tarsplit.iter_tar`` can
    rebuild the very same tar later (``docker save``/``push`` keep the DiffID). Nothing is
    written there when the tar cannot be rebuilt from ``dest`` (an entry replaced another).
    """
    unpacker = _Unpacker(
        os.fsencode(os.path.abspath(dest)), limits or LayerLimits(), refuse_escapes
    )
    reader = _TarReader(stream)
    recorder = SplitRecorder(tar_split) if tar_split else None
    reader.recorder = unpacker.recorder = recorder
    try:
        unpacker.run(reader)
        reader.drain()
        if recorder:
            recorder.finish()
    except BreakoutError:
        raise
    except _Duplicate:
        raise LayerError(
            "Error processing tar file(duplicates of file paths not supported): "
        ) from None
    except _TarFormatError as e:
        raise LayerError(f"Error processing tar file(exit status 1): {e}") from e
    except LayerError as e:
        if getattr(e, "from_limits", False):
            raise
        raise LayerError(f"Error processing tar file(exit status 1): {e}") from e
    except OSError as e:
        raise LayerError(f"Error processing tar file(exit status 1): {os_reason(e)}") from e
    finally:
        if recorder:
            recorder.abort()  # a no-op once finish() has put the metadata in place
    return directory_size(dest)


def untar(
    stream: Readable,
    dest: str,
    *,
    no_overwrite_dir_non_dir: bool = False,
    shown_as: str = "",
    chown: tuple[int, int] | None = None,
) -> None:
    """Unpack the uncompressed tar read from ``stream`` into the existing directory ``dest``,
    as ``ADD`` of a local archive does (moby's chrootarchive ``Untar``, a chroot at ``dest``).

    Same entry semantics as ``apply_layer`` (owners from the tar, modes with setuid/setgid/
    sticky, times, symlink times, hardlinks; never a write outside ``dest``), except that
    ``.wh.*`` names are ordinary files (Untar has no whiteout converter) and a repeated name
    replaces the earlier entry. Raises LayerError; ``dest`` may then hold a partial result.

    ``no_overwrite_dir_non_dir`` (``docker cp``) refuses an entry that would replace a
    directory with a non-directory or the other way, naming paths under ``shown_as``.
    ``chown`` (uid, gid) owns every entry instead of the tar's owners (moby's ChownOpts).
    """
    unpacker = _Unpacker(os.fsencode(os.path.abspath(dest)), LayerLimits(), False)
    unpacker.layer_mode = False
    unpacker.no_overwrite_dir_non_dir = no_overwrite_dir_non_dir
    unpacker.shown = os.fsencode(shown_as)
    unpacker.chown = chown
    # dest already holds files (a setgid directory gives new files its group): always chown
    unpacker.root_owner = False
    try:
        unpacker.run(_TarReader(stream))
    except (_TarFormatError, LayerError) as e:
        raise LayerError(f"Error processing tar file(exit status 1): {e}") from e
    except OSError as e:
        raise LayerError(f"Error processing tar file(exit status 1): {os_reason(e)}") from e


def directory_size(path: str) -> int:
    """Bytes under ``path`` as moby's ``pkg/directory.Size``: lstat sizes of non-directories,
    zero sizes skipped, each inode counted once."""
    seen: set[int] = set()
    total = 0
    stack = [os.fsencode(path)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                ino = entry.inode()
                if ino in seen:
                    continue
                size = entry.stat(follow_symlinks=False).st_size
                if size:
                    seen.add(ino)
                    total += size
    return total


# --- tar stream ----------------------------------------------------------------------


class _Header:
    __slots__ = (
        "name",
        "linkname",
        "type",
        "mode",
        "uid",
        "gid",
        "size",
        "mtime_ns",
        "atime_ns",
        "devmajor",
        "devminor",
        "xattrs",
    )

    def __init__(self):
        self.atime_ns: int | None = None
        self.xattrs: list[tuple[bytes, bytes]] | None = None


def _octal(field: bytes) -> int:
    if field and field[0] & 0x80:
        # base-256 (GNU): big-endian two's complement, first byte's top bit is the marker
        value = int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
        if field[0] & 0x40:
            value -= 1 << (len(field) * 8 - 1)
        return value
    field = field.strip(b" \0")
    if not field:
        return 0
    try:
        return int(field, 8)
    except ValueError:
        raise _TarFormatError("archive/tar: invalid tar header") from None


def _cstring(field: bytes) -> bytes:
    nul = field.find(b"\0")
    return field if nul < 0 else field[:nul]


def _pax_time_ns(value: bytes) -> int:
    # Go's parsePAXTime: seconds[.fraction], fraction truncated to nanoseconds.
    text = value.decode("ascii", "replace")
    secs, _, frac = text.partition(".")
    sign = -1 if secs.startswith("-") else 1
    try:
        whole = abs(int(secs or "0"))
        nanos = int((frac + "000000000")[:9]) if frac else 0
    except ValueError:
        raise _TarFormatError("archive/tar: invalid tar header") from None
    if frac and not frac.isdigit():
        raise _TarFormatError("archive/tar: invalid tar header")
    return sign * (whole * 1_000_000_000 + nanos)


def _parse_pax(data: bytes) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    xattrs: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            if not data[pos:].strip(b"\0"):
                break
            raise _TarFormatError("archive/tar: invalid tar header")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise _TarFormatError("archive/tar: invalid tar header") from None
        end = pos + length
        if length <= sp - pos + 1 or end > len(data) or data[end - 1 : end] != b"\n":
            raise _TarFormatError("archive/tar: invalid tar header")
        key, eq, value = data[sp + 1 : end - 1].partition(b"=")
        if not eq:
            raise _TarFormatError("archive/tar: invalid tar header")
        # Go's archive/tar (and so Docker) keeps a PAX record only when its value is
        # non-empty; an empty value deletes the key, xattrs included
        if key.startswith(b"SCHILY.xattr."):
            xattrs = [(k, v) for k, v in xattrs if k != key[13:]]
            if value:
                xattrs.append((key[13:], value))
        if value:
            records[key] = value
        else:
            records.pop(key, None)
        pos = end
    if xattrs:
        records[b"\0xattrs"] = xattrs  # type: ignore[assignment]
    return records


class _TarReader:
    """Reads tar headers and file data from a stream with ``read(n)`` only.

    Behaves like Go's ``archive/tar`` reader where Docker's result depends on it: GNU long
    names and links, PAX records (last extended header wins), base-256 numbers, the
    ustar prefix, checksum verification, and end of archive at two zero blocks (or one,
    or none, before the stream ends).
    """

    recorder: SplitRecorder | None = None  # sees every byte consumed, files by reference

    def __init__(self, stream: Readable):
        self._stream = stream
        self._buf = b""
        self._pos = 0
        self._eof = False

    def _fill(self, want: int) -> bool:
        """Ensure ``want`` unread bytes are buffered; False if the stream ends first."""
        have = len(self._buf) - self._pos
        if have >= want:
            return True
        parts = [self._buf[self._pos :]] if have else []
        while have < want and not self._eof:
            chunk = self._stream.read(max(_READ_SIZE, want - have))
            if not chunk:
                self._eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        self._buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos = 0
        return have >= want

    def _buffered(self) -> int:
        """How many unread bytes are buffered, reading more when none are (at least one;
        the stream ending first is a format error)."""
        if self._pos == len(self._buf) and not self._fill(1):
            raise _TarFormatError("unexpected EOF")
        return len(self._buf) - self._pos

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            raise _TarFormatError("unexpected EOF")
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        if self.recorder:
            self.recorder.raw(data)
        return data

    def copy_to(self, fd: int, size: int, rel: bytes = b"") -> None:
        """Write the next ``size`` bytes to ``fd`` and skip the block padding after them.

        ``rel`` is where the file lives under the layer, for the tar-split recorder."""
        padded = -size % _BLOCK
        if self.recorder:
            self.recorder.file(rel, size)
        remaining = size
        while remaining:
            step = min(self._buffered(), remaining)
            view = memoryview(self._buf)[self._pos : self._pos + step]
            while view:
                written = os.write(fd, view)
                view = view[written:]
            self._pos += step
            remaining -= step
        if padded:
            self.skip(padded)

    def skip(self, n: int) -> None:
        while n:
            step = min(self._buffered(), n)
            if self.recorder:
                self.recorder.raw(memoryview(self._buf)[self._pos : self._pos + step])
            self._pos += step
            n -= step

    def skip_data(self, size: int) -> None:
        self.skip(size + (-size % _BLOCK))

    def drain(self) -> None:
        """Read the stream to its end (Docker flushes the rest of stdin the same way)."""
        if self.recorder:
            self.recorder.raw(memoryview(self._buf)[self._pos :])
        self._buf, self._pos = b"", 0
        while not self._eof:
            rest = self._stream.read(_READ_SIZE)
            if not rest:
                self._eof = True
            elif self.recorder:
                self.recorder.raw(rest)

    def next(self) -> _Header | None:
        """The next entry's header (its data left to read), or None at end of archive."""
        pax: dict[bytes, bytes] | None = None
        long_name: bytes | None = None
        long_link: bytes | None = None
        while True:
            if not self._fill(_BLOCK):
                if len(self._buf) - self._pos == 0:
                    return None  # io.EOF before a header: an empty or unterminated archive
                raise _TarFormatError("unexpected EOF")
            block = self._take(_BLOCK)
            if block == _ZERO_BLOCK:
                if not self._fill(_BLOCK):
                    if len(self._buf) - self._pos == 0:
                        return None
                    raise _TarFormatError("unexpected EOF")
                if self._take(_BLOCK) == _ZERO_BLOCK:
                    return None
                raise _TarFormatError("archive/tar: invalid tar header")
            self._verify_checksum(block)
            typeflag = block[156:157]
            size = _octal(block[124:136])
            if size < 0:
                raise _TarFormatError("archive/tar: invalid tar header")
            if typeflag in (_TYPE_PAX, _TYPE_PAX_GLOBAL):
                if size > _PAX_LIMIT:
                    raise _TarFormatError("archive/tar: invalid tar header")
                data = self._take(size)
                self.skip(-size % _BLOCK)
                if typeflag == _TYPE_PAX_GLOBAL:
                    # Go returns it as an entry; Unpack ignores it but tar-split records
                    # its name.
                    hdr = _Header()
                    hdr.name = _cstring(block[0:100])
                    hdr.type = typeflag
                    hdr.size = 0
                    return hdr
                pax = _parse_pax(data)
                continue
            if typeflag in (_TYPE_GNU_LONGNAME, _TYPE_GNU_LONGLINK):
                if size > _PAX_LIMIT:
                    raise _TarFormatError("archive/tar: invalid tar header")
                value = _cstring(self._take(size))
                self.skip(-size % _BLOCK)
                if typeflag == _TYPE_GNU_LONGNAME:
                    long_name = value
                else:
                    long_link = value
                continue
            return self._header(block, typeflag, size, pax, long_name, long_link)

    @staticmethod
    def _verify_checksum(block: bytes) -> None:
        stored = _octal(block[148:156])
        unsigned = sum(block[:148]) + 256 + sum(block[156:])
        if stored == unsigned:
            return
        signed = unsigned - sum(b for b in block[:148] if b > 127) * 2
        signed -= sum(b for b in block[156:] if b > 127) * 2
        if stored != signed:
            raise _TarFormatError("archive/tar: invalid tar header")

    @staticmethod
    def _header(block, typeflag, size, pax, long_name, long_link) -> _Header:
        hdr = _Header()
        magic = block[257:263]
        name = _cstring(block[0:100])
        if magic == b"ustar\0":  # USTAR, PAX (and STAR, whose prefix is shorter)
            prefix_field = block[345:500]
            if block[508:512] == b"tar\0":
                prefix_field = block[345:476]
            prefix = _cstring(prefix_field)
            if prefix:
                name = prefix + b"/" + name
        elif magic == b"ustar " and block[263:265] == b" \0":  # GNU: atime at 345
            if block[345]:
                hdr.atime_ns = _octal(block[345:357]) * 1_000_000_000
        hdr.linkname = _cstring(block[157:257])
        hdr.mode = _octal(block[100:108])
        hdr.uid = _octal(block[108:116])
        hdr.gid = _octal(block[116:124])
        hdr.mtime_ns = _octal(block[136:148]) * 1_000_000_000
        hdr.devmajor = _octal(block[329:337])
        hdr.devminor = _octal(block[337:345])
        if pax:
            for key, value in pax.items():
                if key == b"path":
                    name = value
                elif key == b"linkpath":
                    hdr.linkname = value
                elif key == b"size":
                    size = _pax_int(value)
                elif key == b"uid":
                    hdr.uid = _pax_int(value)
                elif key == b"gid":
                    hdr.gid = _pax_int(value)
                elif key == b"mtime":
                    hdr.mtime_ns = _pax_time_ns(value)
                elif key == b"atime":
                    hdr.atime_ns = _pax_time_ns(value)
                elif key == b"\0xattrs":
                    hdr.xattrs = value  # type: ignore[assignment]
                elif key.startswith(b"GNU.sparse."):
                    raise _TarFormatError("unsupported GNU sparse file in layer")
        if long_name is not None:
            name = long_name
        if long_link is not None:
            hdr.linkname = long_link
        if typeflag == b"\0":
            typeflag = _TYPE_DIR if name.endswith(b"/") else b"0"
        if typeflag in _HEADER_ONLY:
            size = 0
        hdr.name = name
        hdr.type = typeflag
        hdr.size = size
        return hdr


def _pax_int(value: bytes) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _TarFormatError("archive/tar: invalid tar header") from None
    if number < 0:
        raise _TarFormatError("archive/tar: invalid tar header")
    return number


# --- paths ---------------------------------------------------------------------------


def _clean(name: bytes) -> bytes:
    """Go's ``filepath.Clean`` on a tar name."""
    rooted = name.startswith(b"/")
    out: list[bytes] = []
    for part in name.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if out and out[-1] != b"..":
                out.pop()
            elif not rooted:
                out.append(part)
            continue
        out.append(part)
    path = b"/".join(out)
    if rooted:
        return b"/" + path
    return path or b"."


def _chroot_parts(name: bytes) -> list[bytes]:
    """Components of ``filepath.Join("/", name)`` inside the chroot: ``..`` stops at root."""
    out: list[bytes] = []
    for part in name.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if out:
                out.pop()
            continue
        out.append(part)
    return out


def _show(parts_or_path) -> str:
    path = parts_or_path if isinstance(parts_or_path, bytes) else b"/" + b"/".join(parts_or_path)
    return '"' + os.fsdecode(path).replace("\\", "\\\\").replace('"', '\\"') + '"'




class _Duplicate(Exception):
    pass


class _LimitError(LayerError):
    from_limits = True


# --- unpacking -----------------------------------------------------------------------


class _Unpacker:
    recorder: SplitRecorder | None = None  # told of removals: they break tar-split
    layer_mode = True  # False for untar: no whiteouts, no duplicate check
    # untar's NoOverwriteDirNonDir (docker cp): a directory never replaced by a
    # non-directory or the other way; ``shown`` is how dest is named in the refusal
    no_overwrite_dir_non_dir = False
    shown = b""
    chown: tuple[int, int] | None = None  # untar's ChownOpts: every entry's owner

    def __init__(self, dest: bytes, limits: LayerLimits, refuse_escapes: bool):
        self.dest = dest
        self.limits = limits
        self.refuse_escapes = refuse_escapes
        self.seen: set[bytes] = set()  # tar-split's duplicate detection
        # Directories known to exist (relative, b"" is dest). Lets an entry skip the
        # parent lstat; purged when a directory is removed.
        self.dirs: set[bytes] = {b""}
        # Where this layer put symlinks (and hardlinks to symlinks). An entry whose parent
        # path crosses one of them is resolved component by component; others go straight.
        self.symlinks: set[bytes] = set()
        self.setgid_dirs: set[bytes] = set()
        self.dir_times: list[tuple[bytes, int | None, int]] = []
        self.entries = 0
        self.bytes = 0
        self.root_owner = os.geteuid() == 0 and os.getegid() == 0
        self.umask = _current_umask()

    # paths

    def abs(self, rel: bytes) -> bytes:
        return self.dest + b"/" + rel if rel else self.dest

    def _crosses_symlink(self, parts: list[bytes]) -> bool:
        if not self.symlinks:
            return False
        prefix = b""
        for part in parts:
            prefix = prefix + b"/" + part if prefix else part
            if prefix in self.symlinks:
                return True
        return False

    def resolve(self, parts: list[bytes], *, create: bool) -> list[bytes]:
        """Real (symlink-free) components of the directory ``parts`` inside the chroot.

        Symlinks are followed as the kernel would inside a chroot at ``dest``. With
        ``create``, missing directories are made like Go's ``MkdirAll`` (0755, root):
        components named by the entry itself, never ones reached through a symlink.
        """
        if not self._crosses_symlink(parts):
            rel = b"/".join(parts)
            if rel not in self.dirs:
                self._ensure_plain_dir(parts, create)
            return parts
        out: list[bytes] = []
        todo = [(p, False) for p in reversed(parts)]
        followed = 0
        while todo:
            part, via_link = todo.pop()
            if part in (b"", b"."):
                continue
            if part == b"..":
                if out:
                    out.pop()
                continue
            candidate = out + [part]
            rel = b"/".join(candidate)
            if rel in self.dirs and rel not in self.symlinks:
                out = candidate
                continue
            try:
                st = os.lstat(self.abs(rel))
            except FileNotFoundError:
                if not create or via_link or any(p == b".." for p, _ in todo):
                    raise
                self._mkdir_implied(rel)
                out = candidate
                continue
            if stat.S_ISLNK(st.st_mode):
                followed += 1
                if followed > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), self.abs(rel))
                target = os.readlink(self.abs(rel))
                if target.startswith(b"/"):
                    out = []
                todo.extend((p, True) for p in reversed(target.split(b"/")))
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", self.abs(rel))
            self.dirs.add(rel)
            out = candidate
        return out

    def _ensure_plain_dir(self, parts: list[bytes], create: bool) -> None:
        # No symlink on this path: each component is a directory, missing, or an error.
        for i in range(1, len(parts) + 1):
            rel = b"/".join(parts[:i])
            if rel in self.dirs:
                continue
            try:
                st = os.lstat(self.abs(rel))
            except FileNotFoundError:
                if not create:
                    raise
                self._mkdir_implied(rel)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", self.abs(rel))
            self.dirs.add(rel)

    def _mkdir_implied(self, rel: bytes) -> None:
        # idtools.MkdirAllAndChownNew(path, 0755, root): a setgid parent's bit is inherited.
        path = self.abs(rel)
        os.mkdir(path, 0o755)
        st = os.lstat(path)
        if st.st_mode & 0o777 != 0o755:
            os.chmod(path, 0o755 | (st.st_mode & 0o7000))
        if st.st_uid or st.st_gid:
            os.lchown(path, 0, 0)
        if st.st_mode & stat.S_ISGID:
            self.setgid_dirs.add(rel)
        self.dirs.add(rel)

    def remove(self, rel: bytes) -> None:
        """os.RemoveAll of a path whose parent is already resolved."""
        if self.recorder:
            self.recorder.removed(rel)
        path = self.abs(rel)
        try:
            os.unlink(path)
        except IsADirectoryError:
            shutil.rmtree(path)
            self._forget_dir(rel)
        except FileNotFoundError:
            pass
        self.symlinks.discard(rel)

    def _forget_dir(self, rel: bytes) -> None:
        under = rel + b"/"
        self.dirs = {d for d in self.dirs if d != rel and not d.startswith(under)}
        self.setgid_dirs = {d for d in self.setgid_dirs if d != rel and not d.startswith(under)}

    # entries

    def run(self, reader: _TarReader) -> None:
        while (hdr := reader.next()) is not None:
            self.entries += 1
            if self.limits.max_entries is not None and self.entries > self.limits.max_entries:
                raise _LimitError(
                    f"layer has more than {self.limits.max_entries} entries, the limit"
                )
            key = _clean(hdr.name)
            if key in self.seen and self.layer_mode:
                raise _Duplicate()
            self.seen.add(key)
            if hdr.type == _TYPE_PAX_GLOBAL:
                continue
            if self.chown is not None:
                hdr.uid, hdr.gid = self.chown
            if hdr.type in _TYPE_REG:
                self.bytes += hdr.size
                if self.limits.max_bytes is not None and self.bytes > self.limits.max_bytes:
                    raise _LimitError(
                        f"layer has more than {self.limits.max_bytes} bytes of files, the limit"
                    )
            self.entry(hdr, key, reader)
        for rel, atime_ns, mtime_ns in self.dir_times:
            # Chtimes follows symlinks, and the path may have changed since: resolve again.
            path = self.abs(self._resolve_any(rel))
            os.utime(path, ns=(_clamp(atime_ns or 0), _clamp(mtime_ns)), follow_symlinks=False)

    def _resolve_any(self, rel: bytes) -> bytes:
        """``rel`` with every symlink, the last one included, followed inside dest."""
        parts = _chroot_parts(rel)
        if not parts:
            return b""
        real = b"/".join(self.resolve(parts[:-1], create=False) + [parts[-1]])
        if real in self.symlinks and os.path.islink(self.abs(real)):
            return b"/".join(self.resolve(parts, create=False))
        return real

    def entry(self, hdr: _Header, key: bytes, reader: _TarReader) -> None:
        if self.refuse_escapes:
            self._check_escapes(hdr, key)
        if key == b".":
            reader.skip_data(hdr.size)  # Unpack skips "." since dest is already a directory
            return
        parts = _chroot_parts(key)
        # createImpliedDirectories, then the entry's own path; the parent is resolved
        # through any symlink as the chroot would, the last component never is.
        parent = self.resolve(parts[:-1], create=True) if parts else []
        if not parts:
            # "/" or "..": the layer root itself. A directory merges with it.
            if hdr.type != _TYPE_DIR:
                raise LayerError(f"cannot replace the layer root with {_show(hdr.name)}")
            self.apply_metadata(hdr, b"", None, is_dir=True)
            self.dir_times.append((b"", hdr.atime_ns, hdr.mtime_ns))
            reader.skip_data(hdr.size)
            return
        base = parts[-1]
        rel = b"/".join(parent + [base])
        parent_rel = b"/".join(parent)
        if base.startswith(_WHITEOUT_PREFIX) and self.layer_mode:
            reader.skip_data(hdr.size)
            self.whiteout(hdr, parent_rel, base, rel)
            return
        t = hdr.type
        if self.no_overwrite_dir_non_dir:
            self._check_overwrite(rel, t == _TYPE_DIR)
        if t in _TYPE_REG:
            self.regular_file(hdr, rel, parent_rel, reader)
            return
        reader.skip_data(hdr.size)
        if t == _TYPE_DIR:
            self.directory(hdr, rel, parent_rel)
        elif t == _TYPE_SYMLINK:
            self.create(rel, lambda p: os.symlink(hdr.linkname, p))
            self.symlinks.add(rel)
            self.apply_metadata(hdr, rel, parent_rel, is_symlink=True)
        elif t == _TYPE_LINK:
            self.hardlink(hdr, rel, parent_rel)
        elif t in (_TYPE_CHAR, _TYPE_BLOCK, _TYPE_FIFO):
            kind = {_TYPE_CHAR: stat.S_IFCHR, _TYPE_BLOCK: stat.S_IFBLK}.get(t, stat.S_IFIFO)
            mode = (hdr.mode & 0o7777) | kind
            device = os.makedev(hdr.devmajor, hdr.devminor)
            self.create(rel, lambda p: os.mknod(p, mode, device))
            self.apply_metadata(hdr, rel, parent_rel)
        else:
            raise LayerError(f"unhandled tar header type {t[0]}")

    def _check_overwrite(self, rel: bytes, is_dir: bool) -> None:
        try:
            st = os.lstat(self.abs(rel))
        except FileNotFoundError:
            return
        path = _show(_clean((self.shown or self.dest) + b"/" + rel))
        dest = _show(self.shown or self.dest)
        if stat.S_ISDIR(st.st_mode) and not is_dir:
            raise LayerError(f"cannot overwrite directory {path} with non-directory {dest}")
        if not stat.S_ISDIR(st.st_mode) and is_dir:
            raise LayerError(f"cannot overwrite non-directory {path} with directory {dest}")

    def _check_escapes(self, hdr: _Header, key: bytes) -> None:
        # moby's Unpack/createTarFile checks as they read outside a chroot (dest != "/").
        if key == b".." or key.startswith(b"../"):
            raise BreakoutError(f"{_show(key)} is outside of {_show(self.dest)}")
        path = _clean(self.dest + b"/" + key)
        if hdr.type == _TYPE_SYMLINK:
            target = _clean(os.path.dirname(path) + b"/" + hdr.linkname)
            if not target.startswith(self.dest):
                raise BreakoutError(f"invalid symlink {_show(path)} -> {_show(hdr.linkname)}")
        elif hdr.type == _TYPE_LINK:
            target = _clean(self.dest + b"/" + hdr.linkname)
            if not target.startswith(self.dest):
                raise BreakoutError(f"invalid hardlink {_show(target)} -> {_show(hdr.linkname)}")

    def create(self, rel: bytes, make) -> None:
        """Run ``make(path)``; an existing non-directory or directory there is removed
        first (Unpack's "remove and replace")."""
        path = self.abs(rel)
        try:
            make(path)
        except FileExistsError:
            self.remove(rel)
            make(path)

    def regular_file(self, hdr: _Header, rel: bytes, parent_rel: bytes, reader: _TarReader):
        path = self.abs(rel)
        mode = hdr.mode & 0o7777
        try:
            fd = os.open(path, _O_CREATE, mode)
        except FileExistsError:
            self.remove(rel)
            fd = os.open(path, _O_CREATE, mode)
        try:
            if hdr.size:
                reader.copy_to(fd, hdr.size, rel)
            if self._needs_chown(hdr, parent_rel):
                os.fchown(fd, hdr.uid, hdr.gid)
            if hdr.xattrs:
                for name, value in hdr.xattrs:
                    _set_xattr(fd, name, value)
            if mode & 0o7000 or mode & self.umask:
                os.fchmod(fd, mode)
            mtime = hdr.mtime_ns
            atime = hdr.atime_ns if hdr.atime_ns is not None and hdr.atime_ns > mtime else mtime
            os.utime(fd, ns=(_clamp(atime), _clamp(mtime)))
        finally:
            os.close(fd)

    def _needs_chown(self, hdr: _Header, parent_rel: bytes) -> bool:
        # A new file is ours (root:root) unless its directory is setgid.
        return not (
            self.root_owner and hdr.uid == 0 and hdr.gid == 0 and parent_rel not in self.setgid_dirs
        )

    def directory(self, hdr: _Header, rel: bytes, parent_rel: bytes) -> None:
        path = self.abs(rel)
        mode = hdr.mode & 0o7777
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                self.remove(rel)
                os.mkdir(path, mode)
        self.dirs.add(rel)
        self.symlinks.discard(rel)
        self.apply_metadata(hdr, rel, parent_rel, is_dir=True)
        if mode & stat.S_ISGID:
            self.setgid_dirs.add(rel)
        else:
            self.setgid_dirs.discard(rel)
        self.dir_times.append((rel, hdr.atime_ns, hdr.mtime_ns))

    def hardlink(self, hdr: _Header, rel: bytes, parent_rel: bytes) -> None:
        target_parts = _chroot_parts(hdr.linkname)
        if not target_parts:
            raise LayerError(f"link {_show(b'/')} {_show(b'/' + rel)}: operation not permitted")
        target_parent = self.resolve(target_parts[:-1], create=False)
        target_rel = b"/".join(target_parent + [target_parts[-1]])
        target = self.abs(target_rel)
        self.create(rel, lambda p: os.link(target, p, follow_symlinks=False))
        is_symlink = stat.S_ISLNK(os.lstat(target).st_mode)
        if is_symlink:
            self.symlinks.add(rel)
        self.apply_metadata(hdr, rel, parent_rel, is_symlink=is_symlink, is_link=True)

    def whiteout(self, hdr: _Header, parent_rel: bytes, base: bytes, rel: bytes) -> None:
        # Unpack removes whatever is at the whiteout's own name first.
        if os.path.lexists(self.abs(rel)):
            self.remove(rel)
        directory = self.abs(parent_rel)
        if base == _WHITEOUT_OPAQUE:
            try:
                overlay.make_opaque(directory)
            except OSError as e:
                raise LayerError(
                    f"setxattr({_show(b'/' + parent_rel)}, {overlay.OPAQUE_XATTR}=y): "
                    f"{os_reason(e)}"
                ) from e
            return
        original = (parent_rel + b"/" if parent_rel else b"") + base[len(_WHITEOUT_PREFIX) :]
        path = self.abs(original)
        try:
            overlay.make_whiteout(path)
        except OSError as e:
            raise LayerError(
                f"failed to mknod({_show(b'/' + original)}, S_IFCHR, 0): {os_reason(e)}"
            ) from e
        if hdr.uid or hdr.gid or not self.root_owner or parent_rel in self.setgid_dirs:
            os.chown(path, hdr.uid, hdr.gid, follow_symlinks=False)

    def apply_metadata(
        self,
        hdr: _Header,
        rel: bytes,
        parent_rel: bytes | None,
        *,
        is_dir: bool = False,
        is_symlink: bool = False,
        is_link: bool = False,
    ) -> None:
        """createTarFile's tail: lchown, xattrs, chmod (not symlinks), times."""
        path = self.abs(rel)
        if is_dir or is_link or parent_rel is None or self._needs_chown(hdr, parent_rel):
            os.chown(path, hdr.uid, hdr.gid, follow_symlinks=False)
        if hdr.xattrs:
            for name, value in hdr.xattrs:
                _set_xattr(path, name, value)
        if is_symlink:
            if is_link:
                return  # a hardlink to a symlink: Docker sets neither mode nor times
            atime = max(hdr.atime_ns or 0, hdr.mtime_ns)
            os.utime(path, ns=(atime, hdr.mtime_ns), follow_symlinks=False)
            return
        os.chmod(path, hdr.mode & 0o7777)
        if is_dir:
            return  # directories get their times at the end
        mtime = hdr.mtime_ns
        atime = hdr.atime_ns if hdr.atime_ns is not None and hdr.atime_ns > mtime else mtime
        os.utime(path, ns=(_clamp(atime), _clamp(mtime)))


def _set_xattr(target, name: bytes, value: bytes) -> None:
    try:
        if isinstance(target, int):
            os.setxattr(target, name, value)
        else:
            os.setxattr(target, name, value, follow_symlinks=False)
    except OSError as e:
        # createTarFile ignores ENOTSUP and EPERM: not every filesystem takes every xattr.
        if e.errno not in (errno.ENOTSUP, errno.EPERM):
            raise


def _clamp(ns: int) -> int:
    return ns if 0 <= ns <= _MAX_NS else 0


def _current_umask() -> int:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o777  # unknown: always chmod
