"""The Engine API server: HTTP/1.1 on a unix or TCP socket, one thread a connection.

h11 parses and frames HTTP (keep-alive, chunked bodies both ways, ``Expect: 100-continue``,
the ``101`` of a protocol switch and the bytes after it), so this module only moves bytes
between the socket and h11 and hands requests to the routes. It was chosen over aiohttp
because the runtime and services it calls are blocking: with h11 a connection is a thread
that calls them directly, and hijacking (attach, exec) is the socket itself.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import os
import pwd
import re
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

import h11

from dockweb.dockerapi.http import (
    ApiError,
    Body,
    Hijack,
    Json,
    Raw,
    Request,
    Stream,
    dumps,
)
from dockweb.dockerapi.router import Route, match

log = logging.getLogger(__name__)

API_VERSION = (1, 41)
MIN_API_VERSION = (1, 24)
DEFAULT_URI = "unix:///run/dockweb/docker.sock"
# what dockerd 20.10 puts on every answer of a known route (the version middleware)
SERVER_HEADER = "Docker/20.10.24 (linux)"

# the handler modules, in the order their routes are tried
MODULES = (
    "system",
    "images",
    "build",
    "containers",
    "exec",
    "archive",
    "volumes",
    "networks",
)

_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
_READ_SIZE = 65536


def version_text(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def load_routes() -> list[Route]:
    import importlib

    table: list[Route] = []
    for name in MODULES:
        module = importlib.import_module(f"dockweb.dockerapi.{name}")
        table.extend(module.routes.table)
    return table


def serving() -> None:
    """Each handler module's ``serving()``, if it has one: what a long-lived server sets
    up before its first request (the containers' supervisor spawner)."""
    import importlib

    for name in MODULES:
        hook = getattr(importlib.import_module(f"dockweb.dockerapi.{name}"), "serving", None)
        if hook is not None:
            hook()


def peer_actor(sock: socket.socket) -> str:
    """``api:<unix user>`` of the process at the other end (SO_PEERCRED); ``api:<address>``
    over TCP."""
    if sock.family == socket.AF_UNIX:
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
        except OSError:
            return "api:unknown"
        try:
            return f"api:{pwd.getpwuid(uid).pw_name}"
        except KeyError:
            return f"api:uid{uid}"
    try:
        host, port = sock.getpeername()[:2]
        return f"api:{host}"
    except OSError:
        return "api:unknown"


class Server:
    """Listens on ``uri`` and serves until ``stop()`` or, with ``idle_timeout`` > 0, that many
    seconds without a request and without an open connection."""

    def __init__(
        self,
        uri: str = DEFAULT_URI,
        *,
        idle_timeout: float = 0,
        socket_mode: int = 0o660,
        socket_group: str | None = None,
    ):
        self.uri = uri
        self.idle_timeout = idle_timeout
        self.socket_mode = socket_mode
        self.socket_group = socket_group
        self.routes = load_routes()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._active = 0
        self._last = time.monotonic()
        self.listener: socket.socket | None = None
        self.path: str | None = None

    # -- listening ----------------------------------------------------------------------

    def bind(self) -> None:
        parts = urlsplit(self.uri)
        if parts.scheme == "unix":
            path = parts.path or parts.netloc
            if not path.startswith("/"):
                raise ValueError(f"{self.uri}: the socket path must be absolute")
            self._bind_unix(path)
        elif parts.scheme == "tcp":
            if not parts.hostname or parts.port is None:
                raise ValueError(f"{self.uri}: expected tcp://HOST:PORT")
            family = socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((parts.hostname, parts.port))
            sock.listen(128)
            self.listener = sock
        else:
            raise ValueError(f"{self.uri}: unsupported URI (use unix:///path or tcp://HOST:PORT)")

    def _bind_unix(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # left by a server that died
            else:
                raise OSError(errno.EADDRINUSE, f"another server listens on {path}")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        gid = -1
        if self.socket_group:
            try:
                gid = grp.getgrnam(self.socket_group).gr_gid
            except KeyError:
                log.warning(
                    "socket group %s does not exist; the socket stays root's", self.socket_group
                )
        if gid >= 0:
            os.chown(path, -1, gid)
        os.chmod(path, self.socket_mode)
        sock.listen(128)
        self.listener = sock
        self.path = path

    @property
    def address(self) -> str:
        if self.path:
            return f"unix://{self.path}"
        host, port = self.listener.getsockname()[:2]
        return f"tcp://{host}:{port}"

    # -- the loop -----------------------------------------------------------------------

    def serve_forever(self) -> None:
        if self.listener is None:
            self.bind()
        self.listener.settimeout(0.5)
        try:
            while not self._stop.is_set():
                try:
                    conn, _addr = self.listener.accept()
                except TimeoutError:
                    if self._idle_expired():
                        break
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                conn.settimeout(None)
                with self._lock:
                    self._active += 1
                    self._last = time.monotonic()
                threading.Thread(
                    target=self._connection, args=(conn,), daemon=True, name="dockerapi-conn"
                ).start()
        finally:
            self.close()

    def _idle_expired(self) -> bool:
        if self.idle_timeout <= 0:
            return False
        with self._lock:
            return self._active == 0 and time.monotonic() - self._last >= self.idle_timeout

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.close()
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None

    def _connection(self, sock: socket.socket) -> None:
        try:
            Connection(self, sock).run()
        except Exception:
            log.exception("dockerapi: connection failed")
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with self._lock:
                self._active -= 1
                self._last = time.monotonic()
            from django.db import connections

            connections.close_all()


def version_refused(version: tuple[int, int]) -> str:
    """dockerd's message for an API version it does not serve; "" when it serves it."""
    asked = version_text(version)
    if version > API_VERSION:
        return (
            f"client version {asked} is too new. "
            f"Maximum supported API version is {version_text(API_VERSION)}"
        )
    if version < MIN_API_VERSION:
        return (
            f"client version {asked} is too old. Minimum supported API version is "
            f"{version_text(MIN_API_VERSION)}, please upgrade your client to a newer version"
        )
    return ""


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class _Closed(Exception):
    pass


class Connection:
    """One client connection: requests read with h11 until the client closes, an answer
    that ends the connection, or a hijack."""

    def __init__(self, server: Server, sock: socket.socket):
        self.server = server
        self.sock = sock
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        self.actor = peer_actor(sock)

    # -- h11 plumbing -------------------------------------------------------------------

    def _next_event(self):
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                if self.h11.they_are_waiting_for_100_continue:
                    self._send(h11.InformationalResponse(status_code=100, headers=[]))
                try:
                    data = self.sock.recv(_READ_SIZE)
                except (ConnectionResetError, TimeoutError):
                    data = b""
                self.h11.receive_data(data)
                continue
            return event

    def _send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.sock.sendall(data)

    def _pull_body(self) -> bytes:
        while True:
            event = self._next_event()
            if isinstance(event, h11.Data):
                if event.data:
                    return bytes(event.data)
                continue
            if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return b""
            if isinstance(event, h11.PAUSED):
                return b""

    def _peer_gone(self) -> bool:
        """Whether the client has closed the connection (an end of file waits to be read)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            return bool(readable) and self.sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    # -- the request loop ---------------------------------------------------------------

    def run(self) -> None:
        while True:
            try:
                event = self._next_event()
            except h11.RemoteProtocolError as err:
                self._protocol_error(err)
                return
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if not isinstance(event, h11.Request):
                return
            body = Body(self._pull_body)
            try:
                done = self._handle(event, body)
            except (BrokenPipeError, ConnectionResetError, _Closed):
                return
            if done:
                return
            if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
                return
            try:
                body.drain()
                self.h11.start_next_cycle()
            except (h11.LocalProtocolError, h11.RemoteProtocolError):
                return

    def _protocol_error(self, err: h11.RemoteProtocolError) -> None:
        with contextlib.suppress(Exception):
            self._send(
                h11.Response(
                    status_code=err.error_status_hint,
                    headers=[
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("Connection", "close"),
                    ],
                )
            )
            self._send(h11.Data(data=str(err).encode()))
            self._send(h11.EndOfMessage())

    def _handle(self, event: h11.Request, body: Body) -> bool:
        """Answer one request; True when the connection is done (hijacked)."""
        method = event.method.decode("latin-1")
        target = event.target.decode("latin-1")
        raw_path, _, raw_query = target.partition("?")
        path = unquote(raw_path)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        version = API_VERSION
        m = _VERSIONED.match(path)
        if m:
            version = (int(m.group(1)), int(m.group(2)))
            path = m.group(3)
        route, params, _other = match(self.server.routes, method, path)
        if route is None:
            # gorilla/mux's NotFoundHandler: no version headers
            self._answer(method, Json({"message": "page not found"}, status=404), versioned=False)
            return False
        refused = version_refused(version)
        if refused:
            self._answer(method, Json({"message": refused}, status=400), partial_headers=True)
            return False
        request = Request(
            method=method,
            path=path,
            version=version,
            query=Request.parse_query(raw_query),
            headers=headers,
            body=body,
            params={k: unquote(v) for k, v in params.items()},
            actor=self.actor,
            server=self.server,
            gone=self._peer_gone,
        )
        from dockweb.dockerapi.errors import as_api_error

        try:
            response = route.handler(request)
        except Exception as err:  # noqa: BLE001 - every failure becomes dockerd's answer
            api_err = as_api_error(err)
            if api_err.status >= 500 and not isinstance(err, ApiError):
                log.exception("dockerapi: %s %s failed", method, path)
            self._audit(route, request, api_err.status, api_err.message)
            self._answer(method, Json({"message": api_err.message}, status=api_err.status))
            return False
        status = response.status if not isinstance(response, Hijack) else 101
        self._audit(route, request, status, "")
        if isinstance(response, Hijack):
            request.body.drain()
            self._hijack(response, headers)
            return True
        self._answer(method, response)
        return False

    def _audit(self, route: Route, request: Request, status: int, error: str) -> None:
        if not route.audit:
            return
        from access.audit import audit

        target = request.params.get(route.target, "") if route.target else ""
        if not target and route.target:
            target = request.q(route.target) or ""
        detail = {"status": status, "request": f"{request.method} {request.path}"}
        if error:
            detail["error"] = error
        audit(request.actor, route.audit, target, **detail)

    # -- answers ------------------------------------------------------------------------

    def _base_headers(self) -> list[tuple[str, str]]:
        return [
            ("Api-Version", version_text(API_VERSION)),
            ("Docker-Experimental", "false"),
            ("Ostype", "linux"),
            ("Server", SERVER_HEADER),
            ("Date", formatdate(usegmt=True)),
        ]

    def _answer(
        self, method: str, response, *, versioned: bool = True, partial_headers: bool = False
    ) -> None:
        if not versioned:
            headers = [("Date", formatdate(usegmt=True))]
        elif partial_headers:
            headers = [h for h in self._base_headers() if h[0] != "Docker-Experimental"]
        else:
            headers = self._base_headers()
        head = method == "HEAD"
        if isinstance(response, Json):
            data = dumps(response.obj)
            headers = [
                ("Content-Type", "application/json"),
                *headers,
                *response.headers,
                ("Content-Length", str(len(data))),
            ]
            self._send(
                h11.Response(
                    status_code=response.status, reason=_reason(response.status), headers=headers
                )
            )
            if not head:
                self._send(h11.Data(data=data))
            self._send(h11.EndOfMessage())
        elif isinstance(response, Raw):
            extra = [("Content-Type", response.content_type)] if response.content_type else []
            length = (
                []
                if response.status in (204, 304)
                else [("Content-Length", str(len(response.body)))]
            )
            self._send(
                h11.Response(
                    status_code=response.status,
                    reason=_reason(response.status),
                    headers=[*extra, *headers, *response.headers, *length],
                )
            )
            if response.body and not head and response.status not in (204, 304):
                self._send(h11.Data(data=response.body))
            self._send(h11.EndOfMessage())
        elif isinstance(response, Stream):
            self._stream(response, headers, head)
        else:
            raise TypeError(f"a handler returned {type(response).__name__}")

    def _stream(self, response: Stream, headers, head: bool) -> None:
        self._send(
            h11.Response(
                status_code=response.status,
                reason=_reason(response.status),
                headers=[
                    # none for a stats stream, as dockerd (it flushes before writing)
                    *([("Content-Type", response.content_type)] if response.content_type else []),
                    *headers,
                    *response.headers,
                ],
            )
        )
        chunks: Iterable[bytes] = response.chunks
        try:
            if not head:
                for chunk in chunks:
                    if chunk:
                        self._send(h11.Data(data=chunk))
            self._send(h11.EndOfMessage())
        finally:
            close = getattr(chunks, "close", None)
            if close:
                with contextlib.suppress(Exception):
                    close()
            if response.on_close:
                with contextlib.suppress(Exception):
                    response.on_close()

    def _hijack(self, response: Hijack, headers: dict[str, str]) -> None:
        """Take the connection over: ``101 UPGRADED`` when the client asked to upgrade to
        tcp (docker 1.12 and later), else ``200 OK`` and the raw stream, as dockerd."""
        upgrade = (
            "upgrade" in headers.get("connection", "").lower()
            and headers.get("upgrade", "").lower() == "tcp"
        )
        if upgrade:
            self._send(
                h11.InformationalResponse(
                    status_code=101,
                    reason=b"UPGRADED",
                    headers=[
                        ("Content-Type", response.content_type),
                        ("Connection", "Upgrade"),
                        ("Upgrade", "tcp"),
                    ],
                )
            )
            first = self.h11.trailing_data[0]
        else:
            first = self.h11.trailing_data[0]
            self.sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: " + response.content_type.encode() + b"\r\n\r\n"
            )
        response.run(self.sock, bytes(first))


def serve(
    uri: str = DEFAULT_URI,
    *,
    idle_timeout: float = 0,
    socket_mode: int = 0o660,
    socket_group: str | None = None,
    ready=None,
) -> None:
    """Serve until SIGTERM/SIGINT or the idle timeout; ``ready(address)`` once listening."""
    server = Server(
        uri, idle_timeout=idle_timeout, socket_mode=socket_mode, socket_group=socket_group
    )
    server.bind()
    serving()

    def stop(_signum, _frame):
        server.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    if ready:
        ready(server.address)
    server.serve_forever()
