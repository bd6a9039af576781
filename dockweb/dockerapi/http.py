"""Requests and responses of the Engine API, independent of the wire (``server.py``).

A handler takes a ``Request`` and returns one of:

- ``Json(obj, status=200)``: a JSON document, encoded as dockerd's encoder does (a newline
  after it);
- ``Raw(body, status=200, content_type=...)``: bytes as they are (also for 204/304);
- ``Stream(chunks, content_type=...)``: an iterator of bytes sent chunked as they come
  (pull progress, logs, events, stats);
- ``Hijack(run, content_type=...)``: the connection taken over (attach, exec start);
  ``run(sock, first)`` gets the raw socket and the bytes the client already sent.

or raises ``ApiError`` (status and dockerd's message). ``errors.py`` turns the runtime's
error categories into the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


class ApiError(Exception):
    """An answer with ``{"message": message}`` and ``status``, as dockerd's."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def unsupported(option: str) -> ApiError:
    """An option dockweb does not implement: a 400 that names it, never a silent ignore."""
    return ApiError(400, f"dockweb does not support {option}")


def dumps(obj: Any) -> bytes:
    """JSON as Go's encoding/json with SetEscapeHTML(false) writes it, plus the newline
    json.Encoder adds."""
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


@dataclass
class Json:
    obj: Any
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Raw:
    body: bytes = b""
    status: int = 200
    content_type: str | None = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Stream:
    chunks: Iterable[bytes]
    status: int = 200
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    # called when the client goes away before the iterator ends (or after it ends)
    on_close: Callable[[], None] | None = None


@dataclass
class Hijack:
    run: Callable[[Any, bytes], None]
    content_type: str = "application/vnd.docker.raw-stream"


Response = Json | Raw | Stream | Hijack


def written(write: Callable[[Any], None], size: int = 65536) -> Iterator[bytes]:
    """The bytes ``write(f)`` writes to a binary file, as chunks for a ``Stream`` while it
    writes them (a tar of a container's files, an export): the writer runs in a thread on
    one end of a pipe. A client gone closes the pipe, which ends the writer; a failure of
    the writer ends the stream early (the status is sent by then) and is logged."""
    import logging
    import os
    import threading

    read_fd, write_fd = os.pipe()

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as f:
                write(f)
        except BrokenPipeError:
            pass
        except Exception:  # noqa: BLE001 - nobody to tell but the log
            logging.getLogger(__name__).exception("dockerapi: a streamed writer failed")

    thread = threading.Thread(target=produce, daemon=True, name="dockerapi-writer")
    thread.start()
    reader = os.fdopen(read_fd, "rb")
    try:
        while chunk := reader.read1(size):
            yield chunk
    finally:
        reader.close()
        thread.join()


class Body:
    """The request body, read as the handler asks for it (``read(n)``; ``read()`` for all);
    ``server.py`` supplies ``pull`` (the next chunk, b"" at the end)."""

    def __init__(self, pull: Callable[[], bytes]):
        self._pull = pull
        self._buf = b""
        self._done = False

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._buf) < n):
            chunk = self._pull()
            if not chunk:
                self._done = True
                break
            self._buf += chunk
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while not self._done:
            if not self._pull():
                self._done = True
        self._buf = b""

    def chunks(self) -> Iterator[bytes]:
        if self._buf:
            yield self._buf
            self._buf = b""
        while not self._done:
            chunk = self._pull()
            if not chunk:
                self._done = True
                return
            yield chunk


@dataclass
class Request:
    method: str
    path: str  # without the /v1.NN prefix and the query
    version: tuple[int, int]  # the API version the client asked for (or the default)
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Body
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    actor: str = "api:unknown"  # api:<unix user of the peer>
    server: Any = None  # the Server: its settings and shared state (events)

    @classmethod
    def parse_query(cls, raw: str) -> dict[str, list[str]]:
        return parse_qs(raw, keep_blank_values=True)

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def qlist(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def qbool(self, name: str, default: bool = False) -> bool:
        """dockerd's httputils.BoolValue: set and not one of "", "0", "no", "false", "none"."""
        value = self.q(name)
        if value is None:
            return default
        return value.strip().lower() not in ("", "0", "no", "false", "none")

    def qint(self, name: str, default: int | None = None) -> int | None:
        value = self.q(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise bad_request(f'strconv.Atoi: parsing "{value}": invalid syntax') from None

    def qjson(self, name: str, default: Any = None) -> Any:
        value = self.q(name)
        if not value:
            return default
        try:
            return json.loads(value)
        except ValueError as err:
            raise bad_request(str(err)) from None

    def json(self, default: Any = None) -> Any:
        """The body as JSON; ``default`` when it is empty. A body that is not JSON: dockerd's
        400."""
        ctype = self.headers.get("content-type", "")
        data = self.body.read()
        if not data.strip():
            return default
        if ctype and "json" not in ctype:
            raise bad_request(
                f"unsupported Content-Type header ({ctype}): must be 'application/json'"
            )
        try:
            return json.loads(data)
        except ValueError as err:
            raise bad_request(f"invalid character in JSON body: {err}") from None

    def at_least(self, major: int, minor: int) -> bool:
        return self.version >= (major, minor)
