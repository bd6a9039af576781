"""Registries on 127.0.0.1 that misbehave on purpose, for the memory and time limits of a pull.

``HostileRegistry(mode)`` serves a one-layer image as ``<host>/hostile/app:1`` and breaks
one thing, chosen by ``mode``:

- ``manifest-endless``: the manifest never ends (no Content-Length, read until the client
  hangs up); ``manifest-huge``: the manifest announces and sends ``size`` bytes;
  ``manifest-objects``: a well-formed manifest just under 4 MiB whose layers are a million
  empty objects (about 100 MB once parsed).
- ``index-huge``: an image index (chunked) whose list of manifests never ends.
- ``token-huge``: the registry asks for a bearer token (realm on itself) and the token
  answer never ends.
- ``error-huge``: the manifest is answered 404 with an error body (chunked) that never ends.
- ``blob-longer``: the layer's Content-Length is its declared size plus ``size`` bytes, all
  sent; ``blob-endless``: the layer (declared about a hundred bytes) is followed by zeros
  without end and no Content-Length.
- ``blob-stall``: half the layer is sent, then nothing, the connection held open.
- ``realm-elsewhere``: the registry wants credentials and names a token realm over plain
  HTTP on another port (``realm``, a ``TokenRecorder``): it records the Authorization
  header of every token request and grants the pull only to ``USERNAME:PASSWORD``.

"Endless" bodies stop at ``size`` bytes (default 8 GiB) so a broken client cannot keep a
test running forever; ``sent`` counts the body bytes the server got into the socket before
the client hung up. ``SilentServer`` accepts connections (or, with ``accept=False``, only
listens) and never answers.

Nothing here imports pytest or dockweb, so a benchmark can start these servers too.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from tests.support import images as im

MODES = (
    "manifest-endless",
    "manifest-huge",
    "manifest-objects",
    "index-huge",
    "token-huge",
    "error-huge",
    "blob-longer",
    "blob-endless",
    "blob-stall",
    "realm-elsewhere",
)
REPO = "hostile/app"
TAG = "1"
USERNAME = "hostile-user"
PASSWORD = "hostile-secret"
ENDLESS = 8 << 30
GRANTED = "granted-token"
ANONYMOUS = "anonymous-token"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def small_image() -> im.Image:
    """One gzip layer of one small file: its blob is about a hundred bytes."""
    layer = im.Layer([im.file("hello.txt", b"hello from a hostile registry\n")])
    return im.Image([layer], format="oci")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: HostileRegistry | TokenRecorder

    def log_message(self, *args):  # keep test output clean
        pass

    # -- writing -----------------------------------------------------------------------

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _json(self, status: int, doc: dict, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(doc).encode()
        self._head(
            status,
            {
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
                **(headers or {}),
            },
        )
        self.wfile.write(body)

    def _bytes(self, body: bytes, content_type: str) -> None:
        self._head(200, {"Content-Type": content_type, "Content-Length": str(len(body))})
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream(self, prefix: bytes, unit: bytes, total: int, *, chunked: bool) -> None:
        """``prefix`` then ``unit`` again and again up to ``total`` bytes, or until the
        client hangs up; counted in ``owner.sent``."""
        block = unit * max(1, (64 << 10) // len(unit))
        sent = 0
        try:
            data = prefix
            while sent < total:
                data = data[: total - sent]
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
                sent += len(data)
                self.owner.count(len(data))
                data = block
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client hung up: what it is meant to do
        self.close_connection = True


class HostileRegistry:
    """A registry on 127.0.0.1 that misbehaves as ``mode`` says (see the module's text)."""

    def __init__(self, mode: str, *, size: int = ENDLESS):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        self.mode = mode
        self.size = size
        self.image = small_image()
        self.layer = self.image.layers[0]
        self.blob = self.layer.read_blob()
        self.sent = 0
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.realm: TokenRecorder | None = None
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self.port = self._httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.reference = f"{self.host}/{REPO}:{TAG}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def count(self, n: int) -> None:
        with self._lock:
            self.sent += n

    def start(self) -> Self:
        if self.mode == "realm-elsewhere":
            self.realm = TokenRecorder().start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self.realm is not None:
            self.realm.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- answers -----------------------------------------------------------------------

    def _handler(self):
        registry = self

        class Handler(_Handler):
            owner = registry

            def do_GET(self):
                with registry._lock:
                    registry.requests.append((self.command, self.path))
                registry._answer(self)

            do_HEAD = do_GET

        return Handler

    def _challenge(self, h: _Handler) -> bool:
        """True when the request may go on; else a 401 with the mode's challenge was sent."""
        if self.mode == "token-huge":
            realm = f"http://{self.host}/token"
        elif self.mode == "realm-elsewhere":
            assert self.realm is not None
            realm = self.realm.url
        else:
            return True
        auth = h.headers.get("Authorization", "")
        if auth == f"Bearer {GRANTED}":
            return True
        challenge = f'Bearer realm="{realm}",service="hostile"'
        if auth.startswith("Bearer "):
            challenge += ',error="insufficient_scope"'
        doc = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        if auth.startswith("Bearer "):
            doc = {"errors": [{"code": "DENIED", "message": "requested access denied"}]}
        h._json(401, doc, {"WWW-Authenticate": challenge})
        return False

    def _answer(self, h: _Handler) -> None:
        path = h.path.split("?")[0]
        mode = self.mode
        if path == "/token" and mode == "token-huge":
            h._head(200, {"Content-Type": "application/json", "Connection": "close"})
            h._stream(b'{"token": "', b"t", self.size, chunked=False)
            return
        if not path.startswith("/v2/"):
            h._json(404, {"errors": [{"code": "NOT_FOUND", "message": path}]})
            return
        if not self._challenge(h):
            return
        if path == "/v2/":
            h._json(200, {})
            return
        manifests = f"/v2/{REPO}/manifests/"
        blobs = f"/v2/{REPO}/blobs/"
        if path.startswith(manifests):
            self._manifest(h)
        elif path == blobs + self.image.image_id:
            h._bytes(self.image.config_bytes, "application/octet-stream")
        elif path == blobs + self.layer.digest:
            self._layer(h)
        else:
            h._json(404, {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]})

    def _manifest(self, h: _Handler) -> None:
        mode = self.mode
        if mode in ("manifest-endless", "manifest-huge"):
            headers = {"Content-Type": OCI_MANIFEST}
            if mode == "manifest-huge":
                headers["Content-Length"] = str(self.size)
            else:
                headers["Connection"] = "close"
            h._head(200, headers)
            if h.command != "HEAD":
                prefix = b'{"schemaVersion": 2, "mediaType": "%s", "layers": [' % (
                    OCI_MANIFEST.encode()
                )
                unit = b'{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", '
                unit += b'"digest": "sha256:%s", "size": 1}, ' % (b"0" * 64)
                h._stream(prefix, unit, self.size, chunked=False)
        elif mode == "manifest-objects":
            count = ((4 << 20) - 200) // 3
            body = b'{"schemaVersion": 2, "mediaType": "%s", "layers": [%s]}' % (
                OCI_MANIFEST.encode(),
                b",".join([b"{}"] * count),
            )
            h._bytes(body, OCI_MANIFEST)
        elif mode == "index-huge":
            h._head(200, {"Content-Type": OCI_INDEX, "Transfer-Encoding": "chunked"})
            if h.command != "HEAD":
                prefix = b'{"schemaVersion": 2, "mediaType": "%s", "manifests": [' % (
                    OCI_INDEX.encode()
                )
                unit = b'{"mediaType": "%s", "digest": "sha256:%s", "size": 1, ' % (
                    OCI_MANIFEST.encode(),
                    b"1" * 64,
                )
                unit += b'"platform": {"os": "linux", "architecture": "amd64"}}, '
                h._stream(prefix, unit, self.size, chunked=True)
        elif mode == "error-huge":
            h._head(404, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
            if h.command != "HEAD":
                prefix = b'{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "'
                h._stream(prefix, b"x", self.size, chunked=True)
        else:
            h._bytes(self.image.manifest_bytes, self.image.manifest_media_type)

    def _layer(self, h: _Handler) -> None:
        mode, blob = self.mode, self.blob
        if mode == "blob-longer":
            h._head(200, {"Content-Length": str(len(blob) + self.size)})
            if h.command != "HEAD":
                h._stream(blob, b"\0", len(blob) + self.size, chunked=False)
        elif mode == "blob-endless":
            h._head(200, {"Connection": "close"})
            if h.command != "HEAD":
                h._stream(blob, b"\0", self.size, chunked=False)
        elif mode == "blob-stall":
            h._head(200, {"Content-Length": str(len(blob))})
            if h.command != "HEAD":
                h.wfile.write(blob[: len(blob) // 2])
                h.wfile.flush()
                self.count(len(blob) // 2)
                self._stop.wait()  # hold the connection, send nothing more
                h.close_connection = True
        else:
            h._bytes(blob, "application/octet-stream")


class TokenRecorder:
    """A token server over plain HTTP on its own port that records what it is sent:
    ``seen`` holds (path, Authorization header or None) for every request. It grants
    ``GRANTED`` to ``USERNAME:PASSWORD`` sent as Basic auth, ``ANONYMOUS`` otherwise."""

    def __init__(self):
        self.seen: list[tuple[str, str | None]] = []
        self.forms: list[bytes] = []  # bodies of POSTs (OAuth2 forms: refresh tokens)
        self.sent = 0
        self._lock = threading.Lock()
        recorder = self

        class Handler(_Handler):
            owner = recorder

            def do_GET(self):
                auth = self.headers.get("Authorization")
                length = int(self.headers.get("Content-Length") or 0)
                form = self.rfile.read(length) if self.command == "POST" else b""
                with recorder._lock:
                    recorder.seen.append((self.path, auth))
                    if self.command == "POST":
                        recorder.forms.append(form)
                expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
                token = GRANTED if auth == expected else ANONYMOUS
                self._json(200, {"token": token, "expires_in": 300})

            do_POST = do_GET

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def count(self, n: int) -> None:
        self.sent += n

    @property
    def credentials_seen(self) -> list[str]:
        """The Authorization headers that carried a password (Basic)."""
        return [a for _, a in self.seen if a and a.startswith("Basic ")]

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class SilentServer:
    """A TCP socket on 127.0.0.1 that never answers: with ``accept`` it takes connections
    and reads nothing; without, it only listens (the kernel completes the handshake of the
    first few connections, nobody ever takes them). With ``drop_syn`` not even that: its
    backlog is full from the start, so the kernel drops every SYN and a client's connect
    waits as on a host behind a firewall that drops packets. ``accepted`` counts
    connections."""

    def __init__(self, *, accept: bool = True, drop_syn: bool = False):
        self.accept = accept and not drop_syn
        self.accepted = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(0 if drop_syn else 8)
        self.port = self._sock.getsockname()[1]
        self._filler = None
        if drop_syn:  # one connection fills a backlog of 0; nobody takes it
            self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.host = f"127.0.0.1:{self.port}"
        self.reference = f"{self.host}/{REPO}:{TAG}"
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            if not self.accept:
                time.sleep(0.1)
                continue
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            self.accepted += 1

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self._conns:
            conn.close()
        if self._filler is not None:
            self._filler.close()
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
