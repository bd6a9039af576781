"""The attach socket's protocol and its client (``docker attach``'s stream, simplified).

Every message is a frame as Docker's stdcopy multiplexes: one byte of kind, three zero
bytes, the payload's length (big-endian uint32), the payload. The supervisor sends STDOUT
and STDERR frames (with a tty, all output is STDOUT); a client sends STDIN frames,
CLOSE_STDIN once its input ends (the container's stdin is closed; with a tty, ^D is typed)
and RESIZE frames (cols, rows as two big-endian uint16). The supervisor hangs up when the
container's output has ended; the exit code is then read as for ``wait``. A client that
goes away is dropped; the container runs on.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
from collections.abc import Callable, Iterator

STDIN, STDOUT, STDERR, CLOSE_STDIN, RESIZE = 0, 1, 2, 3, 4
_HEADER = struct.Struct(">BxxxI")
DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, Docker's default


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def resize_frame(cols: int, rows: int) -> bytes:
    return frame(RESIZE, struct.pack(">HH", cols, rows))


def parse_resize(payload: bytes) -> tuple[int, int]:
    cols, rows = struct.unpack(">HH", payload[:4])
    return cols, rows


class FrameBuffer:
    """Frames out of bytes as they come (``feed`` the chunks a socket gives)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        """The frames ``chunk`` completes; a partial one is kept for the next chunk."""
        self.buf += chunk
        while len(self.buf) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self.buf)
            if len(self.buf) < _HEADER.size + size:
                break
            payload = self.buf[_HEADER.size : _HEADER.size + size]
            self.buf = self.buf[_HEADER.size + size :]
            yield kind, payload


def read_frames(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """Frames until the peer hangs up (or sends garbage)."""
    frames = FrameBuffer()
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        yield from frames.feed(chunk)


# moby/term's ASCII: the names of the control characters 0 to 31, in order
_CONTROL_KEYS = [
    "ctrl-@", *(f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)),
    "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_",
]  # fmt: skip


def parse_keys(spec: str) -> bytes:
    """A detach-keys setting ("ctrl-p,ctrl-q") as bytes, as moby/term's ToBytes: keys
    separated by commas, each one character, ``ctrl-<x>`` (lower case) or ``DEL``. Raises
    ValueError("Unknown character: 'x'")."""
    out = bytearray()
    for key in spec.split(","):
        raw = key.encode()
        if len(raw) == 1:
            out += raw
        elif key in _CONTROL_KEYS:
            out.append(_CONTROL_KEYS.index(key))
        elif key == "DEL":
            out.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


class EscapeKeys:
    """Finds the detach keys in the input as Docker's escape proxy does: the bytes of a
    partial match are held back until the next byte decides, so the keys never reach the
    container, even typed across two reads; a mismatch lets the held bytes through."""

    def __init__(self, keys: bytes = DETACH_KEYS):
        self.keys = keys
        self.matched = 0  # how many of the keys the input ends with, held back

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """What goes to the container (bytes held before included), and whether the keys
        were typed: then what followed them in ``data`` is dropped."""
        if not self.matched and self.keys[0] not in data:
            return data, False
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            out += self.keys[: self.matched]
            self.matched = 0
            if byte == self.keys[0]:
                self.matched = 1
            else:
                out.append(byte)
        return bytes(out), False

    def flush(self) -> bytes:
        """The bytes held back, at the end of the input."""
        held, self.matched = self.keys[: self.matched], 0
        return held


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def proxy(
    sock: socket.socket,
    in_fd: int | None,
    out_fd: int,
    err_fd: int,
    *,
    detach_keys: bool = False,
    on_wakeup: Callable[[], None] | None = None,
    wakeup_fd: int | None = None,
) -> bool:
    """Copy ``in_fd`` (None: nothing) to the container and its output to ``out_fd`` /
    ``err_fd`` until the supervisor hangs up. With ``detach_keys``, ctrl-p ctrl-q in the
    input stops here and leaves the container running; neither key reaches it.
    ``wakeup_fd``: readable when ``on_wakeup`` should run (SIGWINCH). Returns False when
    detached, else True. Input the supervisor can no longer take (the container ended) is
    dropped: what it sent before hanging up is still read."""
    watched: list = [sock]
    if in_fd is not None:
        watched.append(in_fd)
    if wakeup_fd is not None:
        watched.append(wakeup_fd)
    escape = EscapeKeys() if detach_keys else None

    def send(data: bytes) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(data)

    output = FrameBuffer()
    while True:
        ready, _, _ = select.select(watched, [], [])
        if sock in ready:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return True
            for kind, payload in output.feed(chunk):
                write_all(err_fd if kind == STDERR else out_fd, payload)
        if in_fd is not None and in_fd in ready:
            data = os.read(in_fd, 65536)
            if not data:
                watched.remove(in_fd)
                in_fd = None
                held = escape.flush() if escape is not None else b""
                if held:
                    send(frame(STDIN, held))
                send(frame(CLOSE_STDIN))
                continue
            detached = False
            if escape is not None:
                data, detached = escape.feed(data)
            if data:  # what came before the keys still goes in, as Docker's escape proxy
                send(frame(STDIN, data))
            if detached:
                return False
        if wakeup_fd is not None and wakeup_fd in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wakeup_fd, 512)
            if on_wakeup:
                on_wakeup()


def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``, blocking or not (a non-blocking one is waited on)."""
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        data = data[n:]
