"""dockweb.runtime.overlay: the on-disk overlayfs rules and the mount, with real files,
real xattrs and a real overlay mount (as root)."""

from __future__ import annotations

import os
import subprocess

import pytest

from dockweb.runtime import overlay
from dockweb.runtime.errors import OverlayMountError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="trusted xattrs and mounts need root")


def test_it_names_the_trusted_overlay_attributes():
    assert overlay.OPAQUE_XATTR == "trusted.overlay.opaque"
    assert overlay.xattr("redirect") == "trusted.overlay.redirect"
    assert overlay.xattr("opaque", user=True) == "user.overlay.opaque"
    assert overlay.is_overlay_xattr("trusted.overlay.origin")
    assert not overlay.is_overlay_xattr("user.overlay.opaque")
    assert not overlay.is_overlay_xattr("security.capability")


def test_it_detects_an_opaque_directory(tmp_path):
    plain, opaque = tmp_path / "plain", tmp_path / "opaque"
    plain.mkdir()
    opaque.mkdir()
    overlay.make_opaque(str(opaque))
    assert os.getxattr(opaque, "trusted.overlay.opaque") == b"y"
    assert overlay.is_opaque(str(opaque))
    assert overlay.is_opaque(os.fsencode(opaque))
    assert not overlay.is_opaque(str(plain))
    assert not overlay.is_opaque(str(tmp_path / "missing"))


def test_it_reads_the_user_spelling_only_when_asked(tmp_path):
    d = tmp_path / "upper-dir"
    d.mkdir()
    os.setxattr(d, "user.overlay.opaque", b"y")
    assert overlay.is_opaque(str(d), userxattr=True)
    assert not overlay.is_opaque(str(d))


def test_it_does_not_take_another_value_for_opaque(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    os.setxattr(d, "trusted.overlay.opaque", b"n")
    assert not overlay.is_opaque(str(d))


def test_it_detects_a_whiteout(tmp_path):
    wh = tmp_path / "gone"
    overlay.make_whiteout(str(wh))
    (tmp_path / "file").write_text("x")
    os.mknod(tmp_path / "null", 0o600 | 0o020000, os.makedev(1, 3))  # a real char device
    assert overlay.is_whiteout(os.lstat(wh))
    assert not overlay.is_whiteout(os.lstat(tmp_path / "file"))
    assert not overlay.is_whiteout(os.lstat(tmp_path / "null"))
    assert not overlay.is_whiteout(os.lstat(tmp_path))


@pytest.fixture
def layers(tmp_path):
    """Two lowers and an upper: the top lower whites out a file of the bottom one and has
    an opaque directory hiding the bottom one's directory of the same name."""
    bottom, top = tmp_path / "l" / "bottom", tmp_path / "l" / "top"
    for d in (bottom / "hidden", top / "hidden", tmp_path / "upper", tmp_path / "work"):
        d.mkdir(parents=True)
    (bottom / "a").write_text("bottom a")
    (bottom / "b").write_text("bottom b")
    (bottom / "hidden" / "old").write_text("old")
    (top / "c").write_text("top c")
    overlay.make_whiteout(str(top / "b"))
    (top / "hidden" / "new").write_text("new")
    overlay.make_opaque(str(top / "hidden"))
    (tmp_path / "upper" / "d").write_text("upper d")
    (tmp_path / "merged").mkdir()
    yield tmp_path
    subprocess.run(["umount", str(tmp_path / "merged")], capture_output=True)


@pytest.mark.parametrize("direct", [True, False])
def test_it_mounts_the_union_of_two_lowers_and_an_upper(layers, direct):
    merged = layers / "merged"
    overlay.mount(
        str(merged),
        ["l/top", "l/bottom"],
        root=str(layers),
        upper="upper",
        work=str(layers / "work"),  # an absolute path is taken as it is
        direct=direct,
    )
    assert sorted(os.listdir(merged)) == ["a", "c", "d", "hidden"]  # no b: whited out
    assert (merged / "a").read_text() == "bottom a"
    assert (merged / "c").read_text() == "top c"
    assert os.listdir(merged / "hidden") == ["new"]  # opaque: old is hidden
    (merged / "e").write_text("written")
    assert (layers / "upper" / "e").read_text() == "written"
    os.unlink(merged / "a")
    assert overlay.is_whiteout(os.lstat(layers / "upper" / "a"))


def test_it_mounts_read_only_lowers_alone(layers):
    merged = layers / "merged"
    overlay.mount(str(merged), ["l/top", "l/bottom"], root=str(layers), readonly=True)
    assert sorted(os.listdir(merged)) == ["a", "c", "hidden"]
    with pytest.raises(OSError):
        (merged / "x").write_text("no")


@pytest.mark.parametrize("direct", [True, False])
def test_it_says_why_a_mount_failed(tmp_path, direct):
    (tmp_path / "merged").mkdir()
    with pytest.raises(OverlayMountError) as e:
        overlay.mount(str(tmp_path / "merged"), ["nope"], root=str(tmp_path), direct=direct)
    assert str(e.value)
