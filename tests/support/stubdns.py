"""A small DNS server for tests on loopback or inside a namespace: UDP on ``addr``:53,
answering the names it is given (or every name, with ``default``) with one A record each,
NXDOMAIN otherwise; ``queries`` lists the names asked. Its socket is made in the calling
thread's network namespace."""

from __future__ import annotations

import contextlib
import socket
import threading

from dockweb.runtime import dns


class StubResolver:
    def __init__(self, addr: str, names: dict[str, str] | None = None, default: str = ""):
        self.addr = addr
        self.names = dict(names or {})
        self.default = default
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 53))
        self.queries: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if not data:
                return  # shut down
            name = dns.parse_query(data)[2]
            self.queries.append(name)
            ip = self.names.get(name.rstrip("."), self.default)
            if ip:
                reply = dns.answer(data, 0, [(1, socket.inet_aton(ip))])
            else:
                reply = dns.answer(data, 3, [])
            self.sock.sendto(reply, peer)

    def close(self) -> None:
        # wakes the thread in recvfrom, which holds the socket (its port) until it returns
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
