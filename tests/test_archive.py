"""apply_layer: Docker 20.10 overlay2 semantics, on real files and real overlay mounts.

Expected results were checked against dockerd 20.10.24 (`docker load` of the same tars,
then reading /var/lib/docker/overlay2/<id>/diff); the tests themselves need no Docker.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile

import pytest

from dockweb.runtime.archive import apply_layer, directory_size
from dockweb.runtime.errors import BreakoutError, LayerError
from dockweb.runtime.limits import LayerLimits

D, S, L = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chown, mknod, overlay")


def entry(
    name,
    type=tarfile.REGTYPE,
    data=b"",
    *,
    linkname="",
    mode=0o644,
    mtime=1_000_000,
    uid=0,
    gid=0,
    pax=None,
    dev=(0, 0),
):
    info = tarfile.TarInfo(name)
    info.type = type
    info.size = len(data) if type == tarfile.REGTYPE else 0
    info.linkname, info.mode, info.mtime, info.uid, info.gid = linkname, mode, mtime, uid, gid
    info.devmajor, info.devminor = dev
    if pax:
        info.pax_headers = pax
    return info, (data if type == tarfile.REGTYPE else None)


def make_tar(*entries, format=tarfile.PAX_FORMAT, trailer=b""):
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=format, encoding="utf-8", errors="surrogateescape"
    ) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue() + trailer


class OneWay:
    """A non-seekable stream that hands out small, uneven reads and counts what it gave."""

    def __init__(self, data: bytes, step: int = 7919):
        self.data, self.pos, self.step = data, 0, step

    def read(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + min(n, self.step)]
        self.pos += len(chunk)
        return chunk


@pytest.fixture
def box(tmp_path):
    """dest plus a sentinel directory beside it that no layer may touch."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "sentinel").mkdir()
    (tmp_path / "sentinel" / "keep").write_text("keep")
    yield dest
    assert sorted(os.listdir(tmp_path)) == ["dest", "sentinel"]
    assert os.listdir(tmp_path / "sentinel") == ["keep"]
    assert (tmp_path / "sentinel" / "keep").read_text() == "keep"


def apply(dest, *entries, **kw):
    return apply_layer(OneWay(make_tar(*entries)), str(dest), **kw)


def du(path) -> int:
    """directory.Size by an independent walk: lstat sizes of non-dirs, inodes once."""
    seen, total = set(), 0
    for top, dirs, files in os.walk(path):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            st = os.lstat(os.path.join(top, name))
            if st.st_size and st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


# --- plain entries ------------------------------------------------------------------


def test_it_unpacks_files_dirs_and_returns_the_size(box):
    size = apply(
        box,
        entry("etc", D, mode=0o755),
        entry("etc/hosts", data=b"127.0.0.1\n"),
        entry("bin/sh", data=b"#!" * 5000, mode=0o755),
    )
    assert (box / "etc/hosts").read_bytes() == b"127.0.0.1\n"
    assert (box / "bin/sh").read_bytes() == b"#!" * 5000
    assert size == 10 + 10000 == du(box) == directory_size(str(box))


def test_it_keeps_owners_modes_and_special_bits(box):
    apply(
        box,
        entry("d", D, mode=0o1777, uid=3, gid=4),
        entry("d/suid", data=b"x", mode=0o4755, uid=1, gid=2),
        entry("d/sgid", data=b"x", mode=0o2711),
        entry("d/plain", data=b"", mode=0o600),
    )
    st = os.lstat(box / "d")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o1777, 3, 4)
    st = os.lstat(box / "d/suid")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 1, 2)
    assert stat.S_IMODE(os.lstat(box / "d/sgid").st_mode) == 0o2711
    assert stat.S_IMODE(os.lstat(box / "d/plain").st_mode) == 0o600


def test_it_sets_file_times_and_directory_times_last(box):
    apply(
        box,
        entry("d", D, mtime=111),
        entry("d/f", data=b"abc", mtime=222, pax={"mtime": "333.5", "atime": "444.25"}),
        entry("d/g", data=b"", mtime=555),
    )
    f = os.lstat(box / "d/f")
    assert (f.st_mtime_ns, f.st_atime_ns) == (333_500_000_000, 444_250_000_000)
    g = os.lstat(box / "d/g")
    assert (g.st_mtime_ns, g.st_atime_ns) == (555_000_000_000, 555_000_000_000)  # atime >= mtime
    assert os.lstat(box / "d").st_mtime_ns == 111_000_000_000  # not bumped by d/f, d/g


def test_it_sets_xattrs_from_pax_records(box):
    apply(
        box,
        entry(
            "f", data=b"x", pax={"SCHILY.xattr.user.color": "blue", "SCHILY.xattr.trusted.k": "v"}
        ),
    )
    assert os.getxattr(box / "f", "user.color") == b"blue"
    assert os.getxattr(box / "f", "trusted.k") == b"v"


def test_it_drops_an_xattr_with_an_empty_value_like_go_tar(box):
    pax = {"SCHILY.xattr.user.empty": "", "SCHILY.xattr.user.k": "v"}
    apply(box, entry("f", data=b"x", pax=pax))
    assert os.listxattr(box / "f") == ["user.k"]


def test_it_creates_symlinks_hardlinks_fifos_and_devices(box):
    size = apply(
        box,
        entry("f", data=b"hello", mode=0o640, uid=5, mtime=50),
        entry("s", S, linkname="f", uid=7, gid=8, mtime=60),
        entry("h", L, linkname="f", mode=0o600, uid=9, gid=9, mtime=70),
        entry("p", tarfile.FIFOTYPE, mode=0o600),
        entry("null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
        entry("loop0", tarfile.BLKTYPE, mode=0o660, dev=(7, 0)),
    )
    assert os.readlink(box / "s") == "f"
    s = os.lstat(box / "s")
    assert (s.st_uid, s.st_gid, s.st_mtime_ns) == (7, 8, 60_000_000_000)
    f, h = os.lstat(box / "f"), os.lstat(box / "h")
    assert f.st_ino == h.st_ino and f.st_nlink == 2
    # the hardlink's header wins on the shared inode, as in Docker
    assert (stat.S_IMODE(f.st_mode), f.st_uid, f.st_mtime_ns) == (0o600, 9, 70_000_000_000)
    assert stat.S_ISFIFO(os.lstat(box / "p").st_mode)
    null = os.lstat(box / "null")
    assert (
        stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    )
    assert stat.S_ISBLK(os.lstat(box / "loop0").st_mode)
    assert size == 5 + 1 == du(box)  # file once (hardlink), symlink's target length


def test_it_handles_a_hardlink_to_a_symlink_like_docker(box):
    apply(
        box,
        entry("f", data=b"x"),
        entry("s", S, linkname="f", uid=1, mtime=55),
        entry("hs", L, linkname="s", mode=0o600, uid=10, gid=10, mtime=77),
    )
    s, hs = os.lstat(box / "s"), os.lstat(box / "hs")
    assert stat.S_ISLNK(hs.st_mode) and s.st_ino == hs.st_ino
    assert (hs.st_uid, hs.st_gid, hs.st_mtime_ns) == (10, 10, 55_000_000_000)  # no chtimes


def test_it_reads_long_names_gnu_and_pax_and_non_utf8(box):
    long = "a" * 120 + "/" + "b" * 150
    odd = b"caf\xe9-\xff".decode("utf-8", "surrogateescape")
    apply(box, entry(long, data=b"pax"), entry(odd, data=b"latin1"))
    gnu = make_tar(
        entry("g" * 200, data=b"gnu"), entry("gl", S, linkname="t" * 300), format=tarfile.GNU_FORMAT
    )
    apply_layer(io.BytesIO(gnu), str(box))
    assert (box / long).read_bytes() == b"pax"
    assert open(os.path.join(os.fsencode(box), b"caf\xe9-\xff"), "rb").read() == b"latin1"
    assert (box / ("g" * 200)).read_bytes() == b"gnu"
    assert os.readlink(box / "gl") == "t" * 300


def test_it_creates_implied_parent_directories_0755_root(box):
    apply(box, entry("a/b/c", data=b"x", uid=4))
    st = os.lstat(box / "a/b")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o755, 0)


def test_it_ignores_the_dot_entry_but_applies_slash_to_the_root(box):
    apply(box, entry("./", D, mode=0o700, uid=5), entry("x", data=b""))
    assert stat.S_IMODE(os.lstat(box).st_mode) == 0o755 and os.lstat(box).st_uid == 0


def test_it_merges_a_directory_with_an_implied_one(box):
    apply(box, entry("d/f", data=b"x"), entry("d", D, mode=0o700, uid=3))
    st = os.lstat(box / "d")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, 3)
    assert (box / "d/f").exists()


def test_it_replaces_an_implied_directory_by_a_file(box):
    apply(box, entry("d/f", data=b"x"), entry("d", data=b"file now"))
    assert (box / "d").read_bytes() == b"file now"


def test_it_replaces_through_two_names_for_one_path(box):
    # `s/x` and `d/x` are one path once s -> d is followed: the later one replaces.
    apply(
        box, entry("d", D), entry("s", S, linkname="d"), entry("s/x", D), entry("d/x", data=b"file")
    )
    assert (box / "d/x").read_bytes() == b"file"


def test_it_refuses_duplicate_names_like_tar_split(box):
    with pytest.raises(LayerError) as e:
        apply(box, entry("a", D), entry("./a/", data=b"x"))
    assert str(e.value) == "Error processing tar file(duplicates of file paths not supported): "


# --- whiteouts ----------------------------------------------------------------------


def test_it_turns_whiteouts_into_char_devices_and_opaque_xattrs(box):
    apply(box, entry("d", D), entry("d/.wh.gone", uid=3, gid=4), entry("o/.wh..wh..opq"))
    st = os.lstat(box / "d/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and (st.st_uid, st.st_gid) == (3, 4)
    assert not os.path.lexists(box / "d/.wh.gone")
    assert os.getxattr(box / "o", "trusted.overlay.opaque") == b"y"
    assert os.listdir(box / "o") == []


def test_it_treats_aufs_metadata_names_like_docker_20_10(box):
    apply(box, entry(".wh..wh.plnk", D, mode=0o700), entry(".wh..wh.plnk/1.2", data=b"p"))
    assert stat.S_ISCHR(os.lstat(box / ".wh.plnk").st_mode)
    assert (box / ".wh..wh.plnk/1.2").read_bytes() == b"p"


def test_it_fails_a_whiteout_for_a_name_in_the_same_layer_like_docker(box):
    with pytest.raises(LayerError, match=r'failed to mknod\("/a", S_IFCHR, 0\): file exists'):
        apply(box, entry("a", data=b"x"), entry(".wh.a"))


def test_it_hides_lower_files_in_a_real_overlay_mount(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir(), upper.mkdir()
    apply(
        lower,
        entry("keep", data=b"k"),
        entry("gone", data=b"g"),
        entry("opq", D),
        entry("opq/old", data=b"o"),
        entry("dir", D),
        entry("dir/old", data=b"d"),
    )
    apply(
        upper,
        entry(".wh.gone"),
        entry("opq", D),
        entry("opq/.wh..wh..opq"),
        entry("opq/new", data=b"n"),
        entry("dir", D),
        entry("dir/new", data=b"n"),
    )
    merged, work = tmp_path / "merged", tmp_path / "work"
    merged.mkdir(), work.mkdir()
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={upper}:{lower}", str(merged)],
        check=True,
    )
    try:
        assert sorted(os.listdir(merged)) == ["dir", "keep", "opq"]
        assert os.listdir(merged / "opq") == ["new"]
        assert sorted(os.listdir(merged / "dir")) == ["new", "old"]
    finally:
        subprocess.run(["umount", str(merged)], check=True)


# --- hostile tars -------------------------------------------------------------------


def test_it_contains_dotdot_names_in_dest_as_dockers_chroot_does(box):
    apply(box, entry("../x", data=b"1"), entry("a/../../../y", data=b"2"), entry("../../z/", D))
    assert sorted(os.listdir(box)) == ["x", "y", "z"]


def test_it_contains_absolute_names(box):
    apply(box, entry("/etc/passwd", data=b"root"))
    assert (box / "etc/passwd").read_bytes() == b"root"


@pytest.mark.parametrize("target", ["/", "../..", "../../../..", "/../.."])
def test_it_writes_through_an_escaping_symlink_inside_dest(box, target):
    apply(
        box, entry("a", S, linkname=target), entry("a/etc/x", data=b"x"), entry("a/a/y", data=b"y")
    )
    assert os.readlink(box / "a") == target  # stored verbatim, as Docker does
    assert (box / "etc/x").read_bytes() == b"x"
    assert (box / "y").read_bytes() == b"y"


def test_it_follows_chained_and_nested_symlinks_inside_dest(box):
    apply(
        box,
        entry("real", D),
        entry("deep/er", D),
        entry("deep/er/up", S, linkname="../../.."),
        entry("l1", S, linkname="deep/er/up"),
        entry("l1/real/f", data=b"f"),
        entry("l1/l1/real/g", data=b"g"),
    )
    assert (box / "real/f").read_bytes() == b"f"
    assert (box / "real/g").read_bytes() == b"g"


def test_it_never_replaces_a_symlink_target_outside(box):
    # the entry named like an existing symlink replaces the link itself, not what it names
    apply(
        box,
        entry("s", S, linkname="../sentinel/keep"),
        entry("t", S, linkname="/"),
        entry("t/s", data=b"new"),
    )
    assert (box / "s").read_bytes() == b"new" and not os.path.islink(box / "s")


def test_it_contains_hardlinks_to_escaping_targets(box):
    apply(box, entry("f", data=b"f"), entry("h", L, linkname="../../f"))
    assert os.lstat(box / "h").st_ino == os.lstat(box / "f").st_ino


def test_it_fails_a_hardlink_to_a_missing_outside_file(box):
    with pytest.raises(LayerError):
        apply(box, entry("h", L, linkname="../sentinel/keep"))


def test_it_writes_through_a_hardlink_to_a_symlink_inside_dest(box):
    apply(box, entry("s", S, linkname="/"), entry("h", L, linkname="s"), entry("h/z", data=b"z"))
    assert (box / "z").read_bytes() == b"z"


def test_it_refuses_escapes_with_mobys_wording_when_asked(box):
    with pytest.raises(BreakoutError, match=r'^"\.\./x" is outside of '):
        apply(box, entry("../x", data=b""), refuse_escapes=True)
    with pytest.raises(BreakoutError, match=r'^invalid symlink ".*/dest/s" -> "\.\./\.\./x"$'):
        apply(box, entry("s", S, linkname="../../x"), refuse_escapes=True)
    with pytest.raises(BreakoutError, match=r"^invalid hardlink "):
        apply(box, entry("h", L, linkname="../x"), refuse_escapes=True)


# --- stream handling and errors -----------------------------------------------------


def test_it_reads_the_stream_to_its_end(box):
    data = make_tar(entry("f", data=b"x"), trailer=b"\0" * 20000)
    stream = OneWay(data)
    apply_layer(stream, str(box))
    assert stream.pos == len(data)


def test_it_accepts_an_empty_stream_as_an_empty_layer(box):
    assert apply_layer(io.BytesIO(b""), str(box)) == 0


def test_it_fails_on_a_truncated_tar(box):
    data = make_tar(entry("f", data=b"x" * 10000))
    for cut in (100, 600, 5000):
        with pytest.raises(
            LayerError,
            match=r"^Error processing tar file\(exit status 1\): "
            r"unexpected EOF$",
        ):
            apply_layer(io.BytesIO(data[:cut]), str(box))


def test_it_fails_on_a_corrupt_header(box):
    data = bytearray(make_tar(entry("f", data=b"x")))
    data[10] ^= 0xFF
    with pytest.raises(LayerError, match="invalid tar header"):
        apply_layer(io.BytesIO(bytes(data)), str(box))


def test_it_enforces_limits(box):
    with pytest.raises(LayerError, match="more than 2 entries"):
        apply(box, entry("a"), entry("b"), entry("c"), limits=LayerLimits(max_entries=2))
    with pytest.raises(LayerError, match="more than 10 bytes"):
        apply(box, entry("big", data=b"x" * 11), limits=LayerLimits(max_bytes=10))


def test_it_counts_size_like_directory_size(box):
    size = apply(
        box,
        entry("a", data=b"x" * 100),
        entry("b", L, linkname="a"),
        entry("e", data=b""),
        entry("s", S, linkname="abc"),
        entry(".wh.w"),
        entry("d/f", data=b"y" * 7),
    )
    assert size == 100 + 3 + 7 == du(box)
