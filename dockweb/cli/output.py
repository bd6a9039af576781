"""Where ``save`` and ``export`` write: docker/cli 28's ``-o`` (moby's atomicwriter) or stdout.

* :func:`check_destination` is atomicwriter's validateDestination: the directory must exist
  and the path must be absent or a regular file; anything else is refused with docker's
  words ("cannot write to a directory", "invalid output path: stat /x: no such file or
  directory").
* :func:`atomic_output` writes to ``.tmp-<name><random>`` beside the destination, syncs it,
  makes it 0600 and renames it over the destination only when the whole archive was
  written; a failed write leaves no file, and an old file at the destination untouched.
* :class:`GoWriter` reports a failed write as Go's ``write <name>: <reason>``
  (``write /dev/stdout: no space left on device``); a closed pipe stays a BrokenPipeError.
* :func:`archive_output` is the choice save, export and ``cp CONTAINER:PATH -`` make:
  the file, or stdout unless that is a terminal.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import BinaryIO, NoReturn

from dockweb.runtime.errors import os_reason


class OutputError(Exception):
    """The output cannot be written; ``str()`` is docker's message."""


def check_destination(path: str) -> None:
    """moby atomicwriter's validateDestination, raising :class:`OutputError`."""
    if not path:
        raise OutputError("file name is empty")
    directory = os.path.dirname(path)
    if directory not in ("", ".", ".."):
        try:
            st = os.stat(directory)
        except OSError as e:
            raise OutputError(f"invalid output path: stat {directory}: {os_reason(e)}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise OutputError(f"invalid output path: stat {directory}: not a directory")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise OutputError(f"failed to stat output path: lstat {path}: {os_reason(e)}") from None
    if stat.S_ISREG(mode) and not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
        return
    for test, what in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link directly"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device file"),
        (stat.S_ISBLK, "a block device file"),
        (lambda m: m & stat.S_ISUID, "a setuid file"),
        (lambda m: m & stat.S_ISGID, "a setgid file"),
    ):
        if test(mode):
            raise OutputError(f"cannot write to {what}")
    raise OutputError("cannot write to a sticky bit file")


class GoWriter:
    """A binary sink whose failed writes raise :class:`OutputError` as Go words them."""

    def __init__(self, out: BinaryIO, name: str) -> None:
        self.out = out
        self.name = name
        self.written = False
        self.failed = False

    def write(self, data) -> int:
        if self.failed:  # the error is on its way up; a tar stream closing late adds nothing
            return len(data)
        self.written = True
        try:
            return self.out.write(data)
        except OSError as e:
            self._fail(e)

    def flush(self) -> None:
        if self.failed:
            return
        try:
            self.out.flush()
        except OSError as e:
            self._fail(e)

    def _fail(self, e: OSError) -> NoReturn:
        """Mark the writer failed and raise ``e`` as Go words it (a broken pipe as it is)."""
        self.failed = True
        if isinstance(e, BrokenPipeError):
            raise e
        raise OutputError(f"write {self.name}: {os_reason(e)}") from None


@contextlib.contextmanager
def atomic_output(path: str, failure: str) -> Iterator[GoWriter]:
    """A writer for ``path`` that lands only when the block completes.

    Raises :class:`OutputError` for a destination refused or a temporary file that cannot be
    made, both after ``failure`` ("failed to save image: cannot write to a directory"), and
    for a failed write, bare as docker prints it; any exception removes the temporary file.
    """
    try:
        check_destination(path)
    except OutputError as e:
        raise OutputError(f"{failure}: {e}") from None
    target = os.path.abspath(path)
    prefix = ".tmp-" + os.path.basename(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, dir=os.path.dirname(target))
    except OSError as e:
        name = e.filename or os.path.join(os.path.dirname(target), prefix)
        raise OutputError(f"{failure}: open {name}: {os_reason(e)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            writer = GoWriter(f, tmp)
            yield writer
            writer.flush()
            try:
                os.fsync(f.fileno())
            except OSError as e:
                raise OutputError(f"sync {tmp}: {os_reason(e)}") from None
        os.chmod(tmp, 0o600)
        if writer.written:
            try:
                os.rename(tmp, target)
            except OSError as e:
                raise OutputError(f"rename {tmp} {target}: {os_reason(e)}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


TERMINAL = "cowardly refusing to save to a terminal. Use the -o flag or redirect"


@contextlib.contextmanager
def archive_output(path: str | None, failure: str) -> Iterator[GoWriter]:
    """Where an archive goes: the file ``path`` through :func:`atomic_output`, or stdout
    when there is no path, refused (OutputError, docker's words) when that is a terminal."""
    if path:
        with atomic_output(path, failure) as out:
            yield out
        return
    if sys.stdout.isatty():
        raise OutputError(TERMINAL)
    sys.stdout.flush()
    out = GoWriter(sys.stdout.buffer, "/dev/stdout")
    yield out
    out.flush()
