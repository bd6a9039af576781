"""open_decompressed and compression_of_media_type: streaming, multi-member, truncation."""

from __future__ import annotations

import gzip
import os

import pytest
import zstandard

from dockweb.runtime.compression import (
    DecompressionError,
    compression_of_media_type,
    open_decompressed,
)
from dockweb.runtime.errors import LayerError

DATA = os.urandom(200_000) + b"\0" * 3_000_000 + os.urandom(50_000)


class OneWay:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        n = len(self.data) if n < 0 else n
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


def read_all(reader, size=1 << 20) -> bytes:
    parts = []
    while chunk := reader.read(size):
        assert len(chunk) <= size
        parts.append(chunk)
    return b"".join(parts)


def zstd_variants():
    plain = zstandard.ZstdCompressor()
    yield plain.compress(DATA)
    yield zstandard.ZstdCompressor(write_checksum=True).compress(DATA)
    stream = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    yield stream.compress(DATA) + stream.flush()  # no content size in the frame
    yield plain.compress(DATA[:1000]) + plain.compress(DATA[1000:])  # two frames
    skippable = b"\x50\x2a\x4d\x18" + (3).to_bytes(4, "little") + b"abc"
    yield skippable + plain.compress(DATA)


def test_it_reads_multi_member_gzip():
    blob = gzip.compress(DATA[:1234]) + gzip.compress(DATA[1234:]) + gzip.compress(b"")
    assert read_all(open_decompressed(OneWay(blob), "gzip")) == DATA


def test_it_bounds_each_read_to_the_size_asked():
    reader = open_decompressed(OneWay(gzip.compress(b"\0" * 10_000_000)), "gzip")
    assert len(reader.read(4096)) == 4096


@pytest.mark.parametrize("blob", list(zstd_variants()))
def test_it_reads_zstd_frames(blob):
    assert read_all(open_decompressed(OneWay(blob), "zstd")) == DATA
    assert read_all(open_decompressed(OneWay(blob), "auto")) == DATA


def test_it_sniffs_gzip_zstd_and_plain():
    assert read_all(open_decompressed(OneWay(gzip.compress(DATA)), "auto")) == DATA
    assert read_all(open_decompressed(OneWay(b"plain tar bytes"), "auto")) == b"plain tar bytes"
    assert read_all(open_decompressed(OneWay(b""), "auto")) == b""
    assert read_all(open_decompressed(OneWay(b"x"), "none")) == b"x"


@pytest.mark.parametrize("cut", [1, 8, 1000, "half"])
def test_it_fails_on_truncated_gzip(cut):
    blob = gzip.compress(DATA)
    blob = blob[: len(blob) // 2] if cut == "half" else blob[:-cut]
    with pytest.raises(DecompressionError, match="^unexpected EOF$"):
        read_all(open_decompressed(OneWay(blob), "gzip"))


@pytest.mark.parametrize("blob", list(zstd_variants()))
@pytest.mark.parametrize("cut", [1, 4, 1000])
def test_it_fails_on_truncated_zstd(blob, cut):
    with pytest.raises(LayerError, match="unexpected EOF"):
        read_all(open_decompressed(OneWay(blob[:-cut]), "zstd"))


def test_it_fails_on_garbage_after_a_gzip_member():
    with pytest.raises(DecompressionError):
        read_all(open_decompressed(OneWay(gzip.compress(b"x") + b"not gzip at all"), "gzip"))


def test_it_maps_layer_media_types():
    assert compression_of_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip") == "gzip"
    foreign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    assert compression_of_media_type(foreign) == "gzip"
    assert compression_of_media_type("application/vnd.oci.image.layer.v1.tar") == "none"
    assert compression_of_media_type("application/vnd.oci.image.layer.v1.tar+gzip") == "gzip"
    assert compression_of_media_type("application/vnd.oci.image.layer.v1.tar+zstd") == "zstd"
    nondist = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
    assert compression_of_media_type(nondist) == "zstd"
    assert compression_of_media_type("application/x-unknown") == "auto"
