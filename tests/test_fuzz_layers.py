"""Hypothesis against layer application: random tar streams built from random entries (with
hostile names and links) and raw random bytes, through decompression and apply_layer.

Only LayerError (its subclasses included) may come out, and nothing may ever be written
outside the destination: a sentinel directory beside it, and its parent, must be unchanged.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockweb.runtime.archive import apply_layer
from dockweb.runtime.compression import open_decompressed
from dockweb.runtime.errors import LayerError
from dockweb.runtime.limits import LayerLimits
from tests.support import images as im

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
LIMITS = LayerLimits(max_entries=200, max_bytes=1 << 20)

SEGMENTS = ["a", "b", "..", ".", "", "sentinel", "etc", ".wh.a", ".wh..wh..opq", "é", "x" * 120]
path = st.one_of(
    st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=5).map("/".join),
    st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map(lambda p: "/" + "/".join(p)),
    st.text(alphabet="ab./\\\n\x01", min_size=1, max_size=12),
)
target = st.one_of(
    path,
    st.sampled_from(["/", "..", "../..", "../../sentinel", "/sentinel", "../sentinel/x"]),
)
entry = st.one_of(
    st.builds(
        lambda p, d, m: im.file(p, d, mode=m),
        path,
        st.binary(max_size=600),
        st.sampled_from([0o644, 0o4755, 0o000, 0o777]),
    ),
    st.builds(lambda p: im.dir_(p), path),
    st.builds(lambda p, t: im.symlink(p, t), path, target),
    st.builds(lambda p, t: im.hardlink(p, t), path, target),
    st.builds(lambda p: im.fifo(p), path),
    st.builds(lambda p: im.chardev(p, 1, 3), path),
    st.builds(lambda p: im.whiteout(p), path),
    st.builds(lambda p: im.opaque(p), path),
)


def _tar(entries, fmt) -> bytes:
    try:
        return im.tar_bytes(entries, fmt)
    except (ValueError, tarfile.TarError, UnicodeError):
        return b""  # a combination tarfile itself cannot write: fall back to an empty stream


def _damage(data: bytes, cut: int, flip: int | None) -> bytes:
    if flip is None or flip >= len(data):
        return data[:cut]
    return data[:flip] + bytes([data[flip] ^ 0x5A]) + data[flip + 1 :]


tar_stream = st.one_of(
    st.builds(_tar, st.lists(entry, max_size=12), st.sampled_from(["pax", "gnu", "ustar"])),
    st.binary(max_size=3000),
    # a valid tar, damaged: bytes flipped or cut short
    st.builds(
        lambda data, cut, flip: _damage(data, cut, flip),
        st.builds(_tar, st.lists(entry, min_size=1, max_size=6), st.just("pax")),
        st.integers(0, 4000),
        st.none() | st.integers(0, 1500),
    ),
)


class Chunked(io.RawIOBase):
    """Hands out small, uneven reads, as a network stream does."""

    def __init__(self, data: bytes, step: int):
        self.buf = io.BytesIO(data)
        self.step = step

    def read(self, n=-1):
        return self.buf.read(min(self.step, n) if n and n > 0 else self.step)


def _snapshot(root: str) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            out[p] = (st_.st_mode, st_.st_size, st_.st_mtime_ns, st_.st_uid)
    return out


def _apply(data: bytes, compression: str, step: int, refuse: bool) -> None:
    work = tempfile.mkdtemp(prefix="fuzz-layer-")
    try:
        sentinel = os.path.join(work, "sentinel")
        os.makedirs(os.path.join(sentinel, "x"))
        with open(os.path.join(sentinel, "keep"), "wb") as f:
            f.write(b"keep")
        dest = os.path.join(work, "layer", "diff")
        os.makedirs(dest)
        before = _snapshot(sentinel)
        outside_before = sorted(os.listdir(work))
        raw = im.compress(data, compression) if compression != "none" else data
        stream = open_decompressed(Chunked(raw, step), compression)
        try:
            apply_layer(stream, dest, limits=LIMITS, refuse_escapes=refuse)
        except LayerError:
            pass
        assert _snapshot(sentinel) == before
        assert sorted(os.listdir(work)) == outside_before
        assert sorted(os.listdir(os.path.join(work, "layer"))) == ["diff"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


@FUZZ
@given(tar_stream, st.sampled_from(["none", "gzip", "zstd"]), st.integers(1, 5000), st.booleans())
def test_apply_layer_raises_only_layer_errors_and_never_writes_outside(
    data, compression, step, refuse
):
    _apply(data, compression, step, refuse)


@FUZZ
@given(st.binary(max_size=4000), st.sampled_from(["gzip", "zstd", "auto"]))
def test_decompression_of_random_bytes_raises_only_layer_errors(data, compression):
    try:
        stream = open_decompressed(io.BytesIO(data), compression)
        while stream.read(1 << 16):
            pass
    except LayerError:
        pass
