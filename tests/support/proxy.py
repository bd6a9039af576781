"""What the tests' HTTP proxies to a registry share: the server thread, the upstream request.

A ``LoopbackProxy`` subclass names its ``Handler`` (a ``ProxyHandler`` subclass whose
``_forward`` answers a GET or HEAD); each handler class reaches its proxy as ``self.proxy``.
The proxies listen on 127.0.0.1: a loopback registry is plain HTTP to dockweb, as to Docker.
Nothing here imports dockweb.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import urllib3

# Headers that describe one hop, not the resource (RFC 9110 7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


class ProxyHandler(BaseHTTPRequestHandler):
    """Serves GET and HEAD through ``_forward(method)``, which a subclass defines."""

    protocol_version = "HTTP/1.1"
    proxy: LoopbackProxy  # set for each proxy by LoopbackProxy

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self._forward("GET")

    def do_HEAD(self):
        self._forward("HEAD")

    def _forward(self, method: str) -> None:
        raise NotImplementedError

    def _upstream(self, method: str) -> urllib3.BaseHTTPResponse | None:
        """The upstream's answer to this request, its body unread (release it after); None
        once a 502 has been sent because the upstream could not be reached."""
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() != "host"
        }
        try:
            return self.proxy._pool.request(
                method,
                f"http://{self.proxy.upstream}{self.path}",
                headers=headers,
                preload_content=False,
                redirect=False,
                decode_content=False,
            )
        except urllib3.exceptions.HTTPError as e:
            self.send_error(502, f"upstream {self.proxy.upstream}: {e}")
            return None

    def _send_head(self, resp: urllib3.BaseHTTPResponse, length: str | None) -> None:
        """The upstream's status and end-to-end headers, with ``length`` as Content-Length
        (None: none)."""
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        if length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()


class LoopbackProxy:
    """An HTTP proxy on 127.0.0.1 to ``upstream`` (``host:port``), served by a thread of its
    own from ``start()`` to ``stop()``; a context manager. ``host`` is its ``host:port``."""

    Handler: type[ProxyHandler] = ProxyHandler
    thread_name = "proxy"

    def __init__(self, upstream: str, chunk: int = 64 << 10, connections: int = 16) -> None:
        self.upstream = upstream
        self.chunk = chunk
        self._pool = urllib3.PoolManager(maxsize=connections, retries=False)
        handler = type(self.Handler.__name__, (self.Handler,), {"proxy": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=self.thread_name, daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._pool.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
