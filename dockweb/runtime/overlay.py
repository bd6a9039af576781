"""Overlayfs knowledge, in one place (umoci's ``OverlayfsRootfs``): the ``trusted.overlay.*``
extended attributes, what a whiteout and an opaque directory look like on disk, and the
overlay mount itself. Layer unpacking, layer tars, ``diff`` and the layer analysis call
this module rather than spell any of it.

On disk, as the kernel's overlayfs reads it (mounted by root, without ``userxattr``):
- a whiteout is a character device 0/0: it hides the lower entry of its name;
- an opaque directory has ``trusted.overlay.opaque=y``: it hides every lower entry under it.
An upper directory written by a mount with ``userxattr`` (rootless) spells the attribute
``user.overlay.opaque``; ``is_opaque(..., userxattr=True)`` accepts both.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess

from dockweb.runtime import syscalls
from dockweb.runtime.errors import OverlayMountError

XATTR_PREFIX = "trusted.overlay."


def xattr(name: str, *, user: bool = False) -> str:
    """The overlay attribute ``name`` (``opaque``, ``redirect``, ...) as the kernel spells
    it: ``trusted.overlay.<name>``, or ``user.overlay.<name>`` for a ``userxattr`` mount."""
    return f"{'user' if user else 'trusted'}.overlay.{name}"


OPAQUE_XATTR = xattr("opaque")


def is_overlay_xattr(name: str) -> bool:
    """Whether ``name`` is one of overlayfs's own attributes (never part of a layer's tar:
    whiteouts and opaque directories are written as ``.wh.`` entries instead)."""
    return name.startswith(XATTR_PREFIX)


def is_whiteout(st: os.stat_result) -> bool:
    """Whether an ``lstat`` result is a whiteout (a character device 0/0)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str | bytes, *, userxattr: bool = False) -> bool:
    """Whether the directory ``path`` is opaque (``trusted.overlay.opaque=y``; with
    ``userxattr`` also ``user.overlay.opaque=y``). False when it cannot be read."""
    names = (OPAQUE_XATTR, xattr("opaque", user=True)) if userxattr else (OPAQUE_XATTR,)
    for name in names:
        with contextlib.suppress(OSError):
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
    return False


def make_whiteout(path: str | bytes) -> None:
    """Create a whiteout at ``path`` (mknod of a 0/0 character device). Raises OSError."""
    os.mknod(path, stat.S_IFCHR, 0)


def make_opaque(path: str | bytes) -> None:
    """Mark the directory ``path`` opaque. Raises OSError."""
    os.setxattr(path, OPAQUE_XATTR, b"y")


def mount(
    target: str,
    lowers: list[str],
    *,
    root: str,
    upper: str = "",
    work: str = "",
    readonly: bool = False,
    volatile: bool = False,
    direct: bool = False,
) -> None:
    """Mount at ``target`` the overlay of ``lowers`` (top first), with ``upper`` and ``work``
    when given. Paths are relative to ``root`` (the store's root: its ``l/`` links keep the
    options short) or absolute. ``readonly``: ``ro``; ``volatile``: no syncs (Linux 5.10;
    for a writable layer that need not survive a crash). Without an upper, overlayfs wants
    two lowers at least.

    ``direct``: mount(2) itself, with the paths made absolute, when they fit the kernel's
    one page of options (a fork and an exec less); else, and without ``direct``, mount(8)
    run in ``root`` with the relative paths. Raises OverlayMountError with the system
    call's reason or mount(8)'s words."""
    opts = []
    if readonly:
        opts.append(("ro", None))
    opts.append(("lowerdir", lowers))
    if upper:
        opts += [("upperdir", [upper]), ("workdir", [work])]
    if volatile:
        opts.append(("volatile", None))

    def options(absolute: bool) -> str:
        return ",".join(
            key
            if paths is None
            else f"{key}={':'.join(os.path.join(root, p) if absolute else p for p in paths)}"
            for key, paths in opts
        )

    if direct:
        absolute = options(True)
        if syscalls.fits(absolute):
            try:
                syscalls.mount_overlay(target, absolute)
            except OSError as e:
                raise OverlayMountError(e.strerror) from e
            return
    proc = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options(False), target],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise OverlayMountError(proc.stderr.strip())
