"""Keep what a layer tar holds besides its files' contents, to rebuild the tar byte for byte.

Docker keeps ``tar-split`` metadata for every layer it unpacks, so that ``docker save`` and
``docker push`` can hand out the very tar the image's DiffID names. This module does the
same in a compact form of its own, written next to a layer's ``diff/`` as ``tar-split.gz``:

* ``R`` records hold raw bytes of the stream: headers, PAX and GNU long-name records,
  padding, whiteout entries with their data, the end-of-archive blocks and whatever follows
  them;
* ``F`` records name a regular file of ``diff/`` (its path relative to ``diff/``, as the
  unpacker wrote it) and how many bytes of it the tar held at that point.

Reassembly (``iter_tar``) reads the raw bytes back and the file data from ``diff/``; the
caller checks the result against the DiffID. A layer whose unpacking removed a file it had
written earlier (an entry replacing another) gets no metadata: its tar can no longer be
rebuilt from ``diff/``, and ``SplitRecorder.finish`` says so by writing nothing.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator

try:
    from isal import igzip as _gzip
except ImportError:  # pragma: no cover - isal is a declared dependency
    import gzip as _gzip

__all__ = ["FILE_NAME", "SplitRecorder", "TarSplitError", "iter_tar"]

FILE_NAME = "tar-split.gz"
_MAGIC = b"DWTS1\n"
_RAW = b"R"
_FILE = b"F"
_RAW_CHUNK = 1 << 20
_READ_SIZE = 1 << 20


class TarSplitError(Exception):
    """The metadata is unreadable or no longer matches ``diff/``."""


class SplitRecorder:
    """Collects the stream's non-file bytes while ``archive.apply_layer`` unpacks it.

    ``raw`` and ``file`` are called by the tar reader in stream order; ``removed`` by the
    unpacker whenever it deletes a path. ``finish`` writes the metadata atomically (to a
    temporary name, then renamed), or nothing when the layer cannot be rebuilt.
    """

    def __init__(self, path: str):
        self.path = path
        self._tmp = path + ".part"
        self._out = _gzip.open(self._tmp, "wb", compresslevel=1)
        self._out.write(_MAGIC)
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._files: set[bytes] = set()
        self.broken = False

    def raw(self, data: bytes | memoryview) -> None:
        if not data:
            return
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        if self._pending_size >= _RAW_CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending_size:
            data = b"".join(self._pending)
            self._out.write(_RAW + struct.pack(">I", len(data)) + data)
        self._pending, self._pending_size = [], 0

    def file(self, rel: bytes, size: int) -> None:
        self._flush()
        self._out.write(_FILE + struct.pack(">IQ", len(rel), size) + rel)
        self._files.add(rel)

    def removed(self, rel: bytes) -> None:
        """A path (a file, or a directory with everything under it) was deleted."""
        if self.broken or not self._files:
            return
        if rel in self._files:
            self.broken = True
            return
        under = rel + b"/" if rel else b""
        if any(f.startswith(under) for f in self._files):
            self.broken = True

    def finish(self) -> bool:
        """Write the metadata (True), or drop it because ``diff/`` lost file data (False)."""
        self._flush()
        self._out.close()
        if self.broken:
            os.unlink(self._tmp)
            return False
        os.replace(self._tmp, self.path)
        return True

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._out.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


def iter_tar(path: str, diff: str) -> Iterator[bytes]:
    """The layer tar rebuilt from ``path`` (the metadata) and ``diff`` (the files), in chunks.

    Raises TarSplitError if the metadata is damaged or a file is missing or has another
    size; the caller should still hash the result against the DiffID.
    """
    diff_b = os.fsencode(diff)
    try:
        f = _gzip.open(path, "rb")
    except FileNotFoundError:
        raise TarSplitError(f"{path}: missing") from None
    with f:
        if f.read(len(_MAGIC)) != _MAGIC:
            raise TarSplitError(f"{path}: not tar-split metadata")
        while True:
            kind = f.read(1)
            if not kind:
                return
            if kind == _RAW:
                (n,) = struct.unpack(">I", _exact(f, 4))
                yield _exact(f, n)
            elif kind == _FILE:
                name_len, size = struct.unpack(">IQ", _exact(f, 12))
                rel = _exact(f, name_len)
                yield from _file_data(diff_b + b"/" + rel, size)
            else:
                raise TarSplitError(f"{path}: damaged (record type {kind!r})")


def _exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise TarSplitError("tar-split metadata: unexpected end")
    return data


def _file_data(path: bytes, size: int) -> Iterator[bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise TarSplitError(f"{os.fsdecode(path)}: {e.strerror}") from None
    try:
        if os.fstat(fd).st_size != size:
            raise TarSplitError(f"{os.fsdecode(path)}: size changed")
        left = size
        while left:
            chunk = os.read(fd, min(_READ_SIZE, left))
            if not chunk:
                raise TarSplitError(f"{os.fsdecode(path)}: shorter than recorded")
            left -= len(chunk)
            yield chunk
    finally:
        os.close(fd)
