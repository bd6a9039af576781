"""An HTTP proxy in front of a real registry that injects faults, for the robustness tests.

``FaultProxy(upstream)`` listens on 127.0.0.1 (a loopback registry is plain HTTP to dockweb,
as to Docker) and forwards GET and HEAD to ``upstream`` (``host:port``), counting requests
per path. ``proxy.inject(pattern, kind, count=1, ...)`` arms a fault for the next ``count``
requests whose path matches the regular expression ``pattern`` (``count=None``: all of
them). Kinds:

- ``"status"``: answer ``status`` (500, 503, 429 ...) with a registry-style JSON error and,
  if given, a ``Retry-After`` header; the upstream is not asked;
- ``"reset"``: reset the connection (RST, through ``SO_LINGER`` 0) after ``after`` bytes of
  the body, or before any answer when ``after`` is None;
- ``"truncate"``: send the headers (with the full Content-Length) and ``after`` bytes of the
  body, then close the connection normally;
- ``"stall"``: send the headers and ``after`` bytes, then hang ``seconds`` before going on;
- ``"corrupt"``: flip the byte at offset ``after`` of the body (the digest no longer matches).

Without faults it passes everything through unchanged: ``gets(digest)`` then tells how often
a blob was fetched. Nothing here imports dockweb.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass

from tests.support.proxy import LoopbackProxy, ProxyHandler

_KINDS = {"status", "reset", "truncate", "stall", "corrupt"}
_ERROR_CODES = {429: "TOOMANYREQUESTS", 500: "UNKNOWN", 503: "UNAVAILABLE"}


@dataclass
class Fault:
    pattern: re.Pattern[str]
    kind: str
    count: int | None
    status: int = 500
    message: str = ""
    retry_after: str | None = None
    after: int | None = 0
    seconds: float = 0.0
    fired: int = 0


class _FaultHandler(ProxyHandler):
    proxy: FaultProxy

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (OSError, ValueError):  # the connection was reset on purpose
            self.close_connection = True

    def _reset(self) -> None:
        """Abort the connection with an RST: SO_LINGER 0, then the last close."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        for f in (self.wfile, self.rfile):
            try:
                f.close()
            except OSError:
                pass
        self.connection.close()

    def _error(self, fault: Fault) -> None:
        code = _ERROR_CODES.get(fault.status, "UNKNOWN")
        message = fault.message or f"injected {fault.status}"
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self.send_response(fault.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if fault.retry_after is not None:
            self.send_header("Retry-After", fault.retry_after)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, method: str) -> None:
        fault = self.proxy._take(method, self.path.split("?")[0])
        if fault and fault.kind == "status":
            self._error(fault)
            return
        if fault and fault.kind == "reset" and fault.after is None:
            self._reset()
            return
        resp = self._upstream(method)
        if resp is None:
            return
        try:
            body = resp.read() if method != "HEAD" else b""
            self._send_head(resp, resp.headers.get("Content-Length") or str(len(body)))
            if method == "HEAD":
                return
            self._body(body, fault)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up
        finally:
            resp.release_conn()

    def _body(self, body: bytes, fault: Fault | None) -> None:
        if fault is None:
            self._send(body)
            return
        after = min(fault.after or 0, len(body))
        if fault.kind == "corrupt":
            data = bytearray(body)
            data[after] ^= 0xFF
            self._send(bytes(data))
        elif fault.kind == "reset":
            self._send(body[:after])
            self._reset()
        elif fault.kind == "truncate":
            self._send(body[:after])
            self.close_connection = True
        elif fault.kind == "stall":
            self._send(body[:after])
            time.sleep(fault.seconds)
            self._send(body[after:])

    def _send(self, data: bytes) -> None:
        for i in range(0, len(data), self.proxy.chunk):
            self.wfile.write(data[i : i + self.proxy.chunk])
        self.wfile.flush()


class FaultProxy(LoopbackProxy):
    """A fault-injecting proxy to ``upstream``; a context manager."""

    Handler = _FaultHandler
    thread_name = "fault-proxy"

    def __init__(self, upstream: str, chunk: int = 64 << 10) -> None:
        super().__init__(upstream, chunk, connections=32)
        self.requests: Counter[tuple[str, str]] = Counter()
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def inject(
        self,
        pattern: str,
        kind: str,
        count: int | None = 1,
        *,
        status: int = 500,
        message: str = "",
        retry_after: str | None = None,
        after: int | None = 0,
        seconds: float = 0.0,
    ) -> Fault:
        if kind not in _KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        fault = Fault(
            re.compile(pattern), kind, count, status, message, retry_after, after, seconds
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    def gets(self, digest: str) -> int:
        """How many GETs of the blob ``digest`` reached the proxy (any repository)."""
        with self._lock:
            return sum(
                n for (m, p), n in self.requests.items() if m == "GET" and p.endswith(digest)
            )

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests[(method, path)] += 1
            for f in self._faults:
                if (f.count is None or f.fired < f.count) and f.pattern.search(path):
                    f.fired += 1
                    return f
        return None
