"""Reading a pseudo-terminal in tests, as a person at it would."""

from __future__ import annotations

import os
import re
import select
import time


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
