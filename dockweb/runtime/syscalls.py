"""mount(2) and umount2(2) through ctypes, for the container's overlay rootfs and the
network namespaces' directory; whether a
process lives (kill(2) with signal 0); a signal at the parent's death (prctl(2)).

Running mount(8) or umount(8) costs a fork and an exec (5 to 20 ms each on the development
machine) at every start and removal. Callers fall back to the binaries where the system
call cannot do the same (options longer than a page: see ``fits``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os

MNT_DETACH = 2
MS_BIND = 4096
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
# The kernel copies mount options into one page; the NUL counts.
MAX_OPTIONS = os.sysconf("SC_PAGE_SIZE") - 1

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def die_with_parent(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when its parent ends (it is not
    inherited by children). Raises OSError."""
    if _lib().prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def fits(options: str) -> bool:
    """Whether ``options`` can be passed to mount(2) as they are."""
    return len(options.encode()) <= MAX_OPTIONS


def mount_overlay(target: str, options: str) -> None:
    """Mount an overlay at ``target`` (absolute paths in ``options``: relative ones would
    be resolved against this process's working directory). Raises OSError."""
    if _lib().mount(b"overlay", target.encode(), b"overlay", 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def bind_private(path: str) -> None:
    """Bind-mount ``path`` on itself and make that mount private (``mount --bind P P;
    mount --make-private P``, as ``ip netns`` makes /run/netns). Raises OSError."""
    lib = _lib()
    if lib.mount(path.encode(), path.encode(), None, MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    if lib.mount(None, path.encode(), None, MS_PRIVATE, None) != 0:
        err = ctypes.get_errno()
        with contextlib.suppress(OSError):
            unmount(path)
        raise OSError(err, os.strerror(err), path)


def unmount(target: str) -> None:
    """Unmount ``target``; lazily (MNT_DETACH) if it is busy. Raises OSError."""
    if _lib().umount2(target.encode(), 0) == 0:
        return
    err = ctypes.get_errno()
    if _lib().umount2(target.encode(), MNT_DETACH) != 0:
        raise OSError(err, os.strerror(err), target)
