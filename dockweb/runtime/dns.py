"""The embedded DNS server of a container on a bridge network, at 127.0.0.11:53 (UDP and
TCP) inside the container's network namespace, as dockerd's.

Its sockets are made inside the container's namespace (a thread ``setns``-es into it, makes
them, and returns), and it is served by its supervisor from the host's namespace. It
answers A (and empty AAAA) queries for the names ``resolve(name)`` knows (on user-defined
networks: the containers' names, short IDs and aliases) and PTR queries for their
addresses; every other query is forwarded as it is to the upstream servers (``--dns``, else
the host's ``/etc/resolv.conf``, loopback ones included, as they are reached from the
host's namespace) and the answer passed back.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import selectors
import socket
import struct
import threading
from collections.abc import Callable

ADDRESS = "127.0.0.11"
PORT = 53
TTL = 600  # dockerd's respTTL
_UPSTREAM_TIMEOUT = 2.0
QTYPE_A, QTYPE_PTR, QTYPE_AAAA = 1, 12, 28


def host_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    return re.findall(r"^\s*nameserver\s+(\S+)", text, re.M)


def _read_name(msg: bytes, off: int) -> tuple[str, int]:
    labels, jumped, end = [], False, off
    for _ in range(128):
        if off >= len(msg):
            raise ValueError("truncated name")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg):
                raise ValueError("truncated pointer")
            if not jumped:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumped = True
            continue
        if n == 0:
            if not jumped:
                end = off + 1
            return ".".join(labels), end
        labels.append(msg[off + 1 : off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    raise ValueError("name loop")


def parse_query(msg: bytes) -> tuple[int, int, str, int, int, int]:
    """(id, flags, name, qtype, qclass, end of the question) of a one-question query."""
    if len(msg) < 12:
        raise ValueError("short message")
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd != 1:
        raise ValueError("not one question")
    name, off = _read_name(msg, 12)
    if off + 4 > len(msg):
        raise ValueError("truncated question")
    qtype, qclass = struct.unpack("!HH", msg[off : off + 4])
    return qid, flags, name, qtype, qclass, off + 4


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        if label:
            b = label.encode()[:63]
            out += bytes([len(b)]) + b
    return out + b"\x00"


def answer(query: bytes, rcode: int, records: list[tuple[int, bytes]]) -> bytes:
    """A response to ``query`` with ``records`` [(type, rdata)] for its question's name."""
    qid, flags, _name, _qt, qclass, qend = parse_query(query)
    rd = flags & 0x0100
    hdr = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, len(records), 0, 0)
    body = query[12:qend]
    for rtype, rdata in records:
        body += b"\xc0\x0c" + struct.pack("!HHIH", rtype, qclass, TTL, len(rdata)) + rdata
    return hdr + body


class EmbeddedDNS:
    """``resolve(name)`` gives the IPv4 addresses of a name it knows, or None;
    ``reverse(ip)`` the name of an address, or None."""

    def __init__(
        self,
        resolve: Callable[[str], list[str] | None],
        reverse: Callable[[str], str | None],
        upstreams: list[str],
    ) -> None:
        self.resolve, self.reverse = resolve, reverse
        self.upstreams = [u for u in upstreams if u != ADDRESS]
        self.sel = selectors.DefaultSelector()
        self.udp: socket.socket | None = None
        self.tcp: socket.socket | None = None
        self._stop = False
        self._wake_r, self._wake_w = os.pipe()

    def bind(self, netns_path: str) -> None:
        """Make the sockets inside the namespace at ``netns_path``."""
        err: list[BaseException] = []

        def inside() -> None:
            try:
                fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.setns(fd, os.CLONE_NEWNET)
                finally:
                    os.close(fd)
                self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.udp.bind((ADDRESS, PORT))
                self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.tcp.bind((ADDRESS, PORT))
                self.tcp.listen(64)
            except BaseException as e:  # noqa: BLE001 - passed to the caller
                err.append(e)

        t = threading.Thread(target=inside)  # the thread ends in the namespace: never reused
        t.start()
        t.join()
        if err:
            self.close()
            raise err[0]

    def serve(self) -> None:
        threading.Thread(target=self._loop, name="dns", daemon=True).start()

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        for s in (self.udp, self.tcp):
            if s is not None:
                s.close()

    def _loop(self) -> None:
        self.sel.register(self.udp, selectors.EVENT_READ)
        self.sel.register(self.tcp, selectors.EVENT_READ)
        self.sel.register(self._wake_r, selectors.EVENT_READ)
        while not self._stop:
            for key, _ in self.sel.select():
                if self._stop:
                    break
                if key.fileobj is self.udp:
                    try:
                        data, addr = self.udp.recvfrom(4096)
                    except OSError:
                        continue
                    threading.Thread(target=self._udp, args=(data, addr), daemon=True).start()
                elif key.fileobj is self.tcp:
                    try:
                        conn, _ = self.tcp.accept()
                    except OSError:
                        continue
                    threading.Thread(target=self._tcp, args=(conn,), daemon=True).start()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _udp(self, data: bytes, addr) -> None:
        reply = self.handle(data, tcp=False)
        if reply:
            with contextlib.suppress(OSError):
                self.udp.sendto(reply, addr)

    def _tcp(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            try:
                while True:
                    hdr = _recv_exact(conn, 2)
                    if not hdr:
                        return
                    data = _recv_exact(conn, struct.unpack("!H", hdr)[0])
                    reply = self.handle(data, tcp=True)
                    if not reply:
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return

    def handle(self, data: bytes, *, tcp: bool) -> bytes:
        try:
            _qid, _flags, name, qtype, _qclass, _end = parse_query(data)
        except ValueError:
            return b""
        lname = name.lower().rstrip(".")
        if qtype in (QTYPE_A, QTYPE_AAAA):
            ips = self.resolve(lname)
            if ips is not None:
                if qtype == QTYPE_AAAA:
                    return answer(data, 0, [])
                return answer(data, 0, [(QTYPE_A, socket.inet_aton(ip)) for ip in ips])
        elif qtype == QTYPE_PTR and lname.endswith(".in-addr.arpa"):
            parts = lname[: -len(".in-addr.arpa")].split(".")
            with contextlib.suppress(ValueError):
                ip = str(ipaddress.IPv4Address(".".join(reversed(parts))))
                host = self.reverse(ip)
                if host:
                    return answer(data, 0, [(QTYPE_PTR, _encode_name(host))])
        return self.forward(data, tcp=tcp)

    def forward(self, data: bytes, *, tcp: bool) -> bytes:
        for server in self.upstreams:
            try:
                if tcp:
                    with socket.create_connection((server, PORT), timeout=_UPSTREAM_TIMEOUT) as s:
                        s.sendall(struct.pack("!H", len(data)) + data)
                        hdr = _recv_exact(s, 2)
                        if hdr:
                            return _recv_exact(s, struct.unpack("!H", hdr)[0])
                    continue
                family = socket.AF_INET6 if ":" in server else socket.AF_INET
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.settimeout(_UPSTREAM_TIMEOUT)
                    s.connect((server, PORT))
                    s.send(data)
                    reply = s.recv(65535)
                    if reply[:2] == data[:2]:
                        return reply
            except OSError:
                continue
        with contextlib.suppress(ValueError):
            return answer(data, 2, [])  # SERVFAIL: no upstream answered
        return b""


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf
