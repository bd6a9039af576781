"""Reading a pseudo-terminal in tests, as a person at it would."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import termios
import time
from contextlib import contextmanager


def read_until(fd: int, pattern: str, timeout: float = 10.0) -> str:
    """What the pty says until ``pattern`` (a regex) matches it."""
    out = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, out.decode(errors="replace")):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {pattern!r} within {timeout} s; got {out!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"pty closed before {pattern!r}; got {out!r}")
            out += chunk
    return out.decode(errors="replace")


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def in_pty(spawn, *args, rows: int = 24, cols: int = 80):
    """(process, pty master): ``spawn(*args)`` (a Popen maker) with a new pty of
    ``rows`` x ``cols`` as its stdin, stdout and stderr."""
    master, slave = os.openpty()
    set_size(master, rows, cols)
    proc = spawn(*args, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    return proc, master


@contextmanager
def pty_session(spawn, *args, rows: int = 24, cols: int = 80):
    """``in_pty`` for a ``with`` block: (process, master), the process killed if it still
    runs at the end and the master closed."""
    proc, master = in_pty(spawn, *args, rows=rows, cols=cols)
    try:
        yield proc, master
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def resize(master: int, proc, rows: int, cols: int) -> None:
    """Resize the window as a terminal does (the size, then SIGWINCH to ``proc``) and check
    that the shell at the other end sees the new size."""
    set_size(master, rows, cols)
    proc.send_signal(signal.SIGWINCH)
    time.sleep(0.3)
    os.write(master, b"busybox stty size\r")
    read_until(master, rf"{rows} {cols}\r\n")
