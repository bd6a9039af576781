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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import urllib3

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
}
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


class FaultProxy:
    """A fault-injecting proxy to ``upstream``; a context manager."""

    def __init__(self, upstream: str, chunk: int = 64 << 10) -> None:
        self.upstream = upstream
        self.chunk = chunk
        self.requests: Counter[tuple[str, str]] = Counter()
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._pool = urllib3.PoolManager(maxsize=32, retries=False)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fault-proxy", daemon=True
        )

    # -- control ---------------------------------------------------------------------------

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

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._pool.clear()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------------------

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def handle_one_request(self):
                try:
                    super().handle_one_request()
                except (OSError, ValueError):  # the connection was reset on purpose
                    self.close_connection = True

            def _reset(self) -> None:
                """Abort the connection with an RST: SO_LINGER 0, then the last close."""
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
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
                fault = proxy._take(method, self.path.split("?")[0])
                if fault and fault.kind == "status":
                    self._error(fault)
                    return
                if fault and fault.kind == "reset" and fault.after is None:
                    self._reset()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                try:
                    resp = proxy._pool.request(
                        method,
                        f"http://{proxy.upstream}{self.path}",
                        headers=headers,
                        preload_content=False,
                        redirect=False,
                        decode_content=False,
                    )
                except urllib3.exceptions.HTTPError as e:
                    self.send_error(502, f"upstream {proxy.upstream}: {e}")
                    return
                try:
                    body = resp.read() if method != "HEAD" else b""
                    length = resp.headers.get("Content-Length") or str(len(body))
                    self.send_response(resp.status)
                    for k, v in resp.headers.items():
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    self.send_header("Content-Length", length)
                    self.end_headers()
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
                for i in range(0, len(data), proxy.chunk):
                    self.wfile.write(data[i : i + proxy.chunk])
                self.wfile.flush()

            def do_GET(self):
                self._forward("GET")

            def do_HEAD(self):
                self._forward("HEAD")

        return Handler
