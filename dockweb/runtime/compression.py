"""Streaming decompression of layer blobs: gzip (ISA-L), zstd, none, or sniffed.

Every reader here holds at most one input chunk and one output chunk: memory stays constant
whatever the blob's size or compression ratio. A stream that ends inside a gzip member or a
zstd frame raises ``DecompressionError("unexpected EOF")`` (Go's ``io.ErrUnexpectedEOF``
text, which is what Docker reports) instead of quietly returning a short tar.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Protocol

import zstandard

from dockweb.runtime.errors import LayerError

try:  # ISA-L inflates 2-3x faster than zlib; same API.
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    import zlib as _zlib

__all__ = [
    "DecompressionError",
    "Readable",
    "compression_of_media_type",
    "open_decompressed",
    "sniff_compression",
]

# Compressed bytes pulled from the source per read: large, so the per-call Python work is
# amortised over a lot of data.
CHUNK = 1 << 20

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_SKIPPABLE_MASK = 0xFFFFFFF0
_ZSTD_SKIPPABLE_START = 0x184D2A50


class DecompressionError(LayerError):
    """A compressed layer blob is truncated or corrupt."""


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def sniff_compression(head: bytes) -> str:
    """The compression named by ``head``'s magic bytes, as moby's ``DetectCompression``."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if len(head) >= 4:
        (magic,) = struct.unpack_from("<I", head)
        if magic & _ZSTD_SKIPPABLE_MASK == _ZSTD_SKIPPABLE_START:
            return "zstd"
    return "none"


_MEDIA_TYPES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
}


def compression_of_media_type(media_type: str) -> str:
    """``"gzip"``, ``"zstd"`` or ``"none"`` for a docker/OCI layer media type.

    Unknown layer types give ``"auto"``: Docker itself ignores the media type when it
    unpacks and sniffs the magic bytes, so sniffing is the faithful fallback.
    """
    return _MEDIA_TYPES.get(media_type.split(";", 1)[0].strip().lower(), "auto")


def open_decompressed(raw: Readable, compression: str) -> BinaryIO | Readable:
    """A reader of the decompressed bytes of ``raw`` (anything with ``read(n)``).

    ``compression`` is ``"gzip"``, ``"zstd"``, ``"none"`` or ``"auto"`` (sniff the magic
    bytes like Docker: gzip, zstd, otherwise uncompressed). ``read(n)`` returns at most ``n``
    bytes and ``b""`` only at the real end. gzip streams of several members and zstd streams
    of several frames (with or without content size, skippable frames included) are read
    whole. Raises ``DecompressionError`` when the input is truncated or corrupt.
    """
    if compression == "auto":
        head = _read_at_least(raw, 8)
        compression = sniff_compression(head)
        raw = _Prepended(head, raw)
    if compression == "none":
        return raw
    if compression == "gzip":
        return _GzipReader(raw)
    if compression == "zstd":
        return _ZstdReader(raw)
    raise ValueError(f"unknown compression {compression!r}")


def _read_at_least(raw: Readable, n: int) -> bytes:
    head = b""
    while len(head) < n:
        more = raw.read(n - len(head))
        if not more:
            break
        head += more
    return head


class _Prepended:
    """``raw`` with some already-read bytes put back in front."""

    def __init__(self, head: bytes, raw: Readable):
        self._head = head
        self._raw = raw

    def read(self, n: int = -1, /) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._raw.read(n)


class _GzipReader:
    """Inflates one gzip member after another until the input ends at a member boundary.

    Like Go's ``gzip.Reader`` (multistream): bytes after a member must start another
    member, otherwise ``gzip: invalid header``.
    """

    def __init__(self, raw: Readable):
        self._raw = raw
        self._inflate = None  # None: between members
        self._pending = b""  # compressed bytes not yet given to the inflater
        self._done = False

    def read(self, n: int = -1, /) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        if n == 0:
            return b""
        while not self._done:
            if not self._pending:
                self._pending = self._raw.read(CHUNK)
                if not self._pending:
                    if self._inflate is not None:
                        raise DecompressionError("unexpected EOF")
                    self._done = True
                    break
            if self._inflate is None:
                self._inflate = _zlib.decompressobj(31)
            try:
                out = self._inflate.decompress(self._pending, n)
            except _zlib.error as e:
                msg = "gzip: invalid header" if "header" in str(e) else f"flate: {e}"
                raise DecompressionError(msg) from e
            if self._inflate.eof:
                self._pending = self._inflate.unused_data
                self._inflate = None
            else:
                self._pending = self._inflate.unconsumed_tail
            if out:
                return out
        return b""


class _ZstdFrameTracker:
    """Follows the zstd frame structure of the bytes it is shown, block headers only.

    ``python-zstandard``'s stream reader returns a short stream, without error, when its
    input stops inside a frame; this tells whether the input ended at a frame boundary.
    Only frame and block headers are parsed (one per up to 128 KiB of payload), never the
    payload itself.
    """

    def __init__(self):
        self._need = 4  # bytes of header wanted next
        self._head = bytearray()
        self._skip = 0  # payload bytes to pass over
        self._state = "magic"
        self._checksum = False

    @property
    def at_boundary(self) -> bool:
        return self._state == "magic" and not self._head and self._skip == 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                if self._skip == 0 and self._state == "trailer":
                    self._state = "magic"
                    self._need = 4
                continue
            take = min(self._need - len(self._head), end - pos)
            self._head += view[pos : pos + take]
            pos += take
            if len(self._head) == self._need:
                head, self._head = bytes(self._head), bytearray()
                self._advance(head)

    def _advance(self, head: bytes) -> None:
        state = self._state
        if state == "magic":
            (magic,) = struct.unpack("<I", head)
            if head == ZSTD_MAGIC:
                self._state, self._need = "descriptor", 1
            elif magic & _ZSTD_SKIPPABLE_MASK == _ZSTD_SKIPPABLE_START:
                self._state, self._need = "skippable", 4
            else:
                raise DecompressionError("zstd: invalid input: magic number mismatch")
        elif state == "skippable":
            (self._skip,) = struct.unpack("<I", head)
            self._state, self._need = "trailer", 4
            if self._skip == 0:
                self._state = "magic"
        elif state == "descriptor":
            fhd = head[0]
            fcs_flag, single, self._checksum, dict_flag = (
                fhd >> 6,
                fhd >> 5 & 1,
                bool(fhd >> 2 & 1),
                fhd & 3,
            )
            fcs = (1 if single else 0, 2, 4, 8)[fcs_flag]
            rest = (0 if single else 1) + (0, 1, 2, 4)[dict_flag] + fcs
            if rest:
                self._state, self._need = "frame_header", rest
            else:
                self._state, self._need = "block", 3
        elif state == "frame_header":
            self._state, self._need = "block", 3
        elif state == "block":
            (bh,) = struct.unpack("<I", head + b"\0")
            last, btype, bsize = bh & 1, bh >> 1 & 3, bh >> 3
            if btype == 3:
                raise DecompressionError("zstd: invalid input: reserved block type")
            self._skip = 1 if btype == 1 else bsize
            if last:
                # The payload is skipped first (feed), then the checksum or next magic.
                self._state = "checksum" if self._checksum else "trailer"
                self._need = 4
                if not self._checksum and not self._skip:
                    self._state = "magic"
            else:
                self._need = 3
        elif state == "checksum":
            self._state, self._need = "magic", 4


class _ZstdReader:
    def __init__(self, raw: Readable):
        self._tracker = _ZstdFrameTracker()
        self._raw = raw
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            _Tee(raw, self._tracker), read_size=CHUNK, read_across_frames=True
        )
        self._done = False

    def read(self, n: int = -1, /) -> bytes:
        if self._done:
            return b""
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        try:
            out = self._reader.read(n)
        except zstandard.ZstdError as e:
            raise DecompressionError(f"zstd: {e}") from e
        if not out and n:
            self._done = True
            if not self._tracker.at_boundary:
                raise DecompressionError("unexpected EOF")
        return out


class _Tee:
    def __init__(self, raw: Readable, tracker: _ZstdFrameTracker):
        self._raw = raw
        self._tracker = tracker

    def read(self, n: int = -1, /) -> bytes:
        data = self._raw.read(n)
        if data:
            self._tracker.feed(data)
        return data
