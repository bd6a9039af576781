"""The embedded DNS server of a container on a bridge network, at 127.0.0.11:53 (UDP and
TCP) inside the container's network namespace, as dockerd's.

Its sockets are made inside the container's namespace (a thread ``setns``-es into it, makes
them, and ends there), on random ports that 127.0.0.11:53 is redirected to there (as
dockerd's: port 53 stays free for the container), and it is served by its supervisor from
the host's namespace. It
answers A (and empty AAAA) queries for the names ``resolve(name)`` knows (on user-defined
networks: the containers' names, short IDs and aliases, and ``<name>.<network>``) and PTR
queries for their addresses, at once in its loop's thread; every other query is forwarded
as it is to the upstream servers and the answer passed back. As libnetwork, an upstream's
socket is made inside the container's namespace (its routes, its network's isolation),
except for the host's own loopback resolvers (``host_ns``), dialled from the host's.

What a container can send it is bounded as in dockerd (miekg/dns's default filter, its
caps): responses are never answered (two servers, or one fed a forged packet from itself,
would answer each other forever), nor datagrams from the server's own address; opcodes
other than QUERY get NOTIMP, extra sections FORMERR; at most ``MAX_FORWARDS`` queries are
forwarded at once (beyond, SERVFAIL at once) and ``MAX_TCP`` TCP connections served, each
for ``TCP_DEADLINE`` seconds at most whatever it sends.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import selectors
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterable

ADDRESS = "127.0.0.11"
PORT = 53
TTL = 600  # dockerd's respTTL
_UPSTREAM_TIMEOUT = 2.0
MAX_FORWARDS = 64  # queries being forwarded at once; beyond, SERVFAIL at once
MAX_TCP = 32  # TCP connections served at once; beyond, closed at once
TCP_DEADLINE = 8.0  # a TCP connection's whole life (miekg/dns's idle timeout), bytes or not
QTYPE_A, QTYPE_PTR, QTYPE_AAAA = 1, 12, 28


def host_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    return re.findall(r"^\s*nameserver\s+(\S+)", text, re.M)


def is_loopback(server: str) -> bool:
    try:
        return ipaddress.ip_address(server).is_loopback
    except ValueError:
        return False


def _read_name(msg: bytes, off: int, *, pointers: bool = True) -> tuple[str, int]:
    labels, jumped, end = [], False, off
    for _ in range(128):
        if off >= len(msg):
            raise ValueError("truncated name")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if not pointers:
                raise ValueError("compression pointer in a question")
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
    # a query's only name has nothing before it to point to: a pointer there is a forgery,
    # and the question is echoed as it is into the answer, where it would point elsewhere
    name, off = _read_name(msg, 12, pointers=False)
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
    keep = flags & 0x7900  # opcode and RD, as the query's
    hdr = struct.pack(
        "!HHHHHH", qid, 0x8000 | keep | 0x0400 | 0x0080 | rcode, 1, len(records), 0, 0
    )
    body = query[12:qend]
    for rtype, rdata in records:
        body += b"\xc0\x0c" + struct.pack("!HHIH", rtype, qclass, TTL, len(rdata)) + rdata
    return hdr + body


class EmbeddedDNS:
    """``resolve(name)`` gives the IPv4 addresses of a name it knows, or None;
    ``reverse(ip)`` the name of an address, or None. ``upstreams`` are dialled from inside
    the container's namespace (the one :meth:`bind` is given), except those in ``host_ns``
    (the host's own loopback resolvers), dialled from the supervisor's (the host's)."""

    def __init__(
        self,
        resolve: Callable[[str], list[str] | None],
        reverse: Callable[[str], str | None],
        upstreams: list[str],
        *,
        host_ns: Iterable[str] = (),
    ) -> None:
        self.resolve, self.reverse = resolve, reverse
        self.upstreams = [u for u in upstreams if u != ADDRESS]
        self.host_ns = set(host_ns)
        self.sel = selectors.DefaultSelector()
        self.udp: socket.socket | None = None
        self.tcp: socket.socket | None = None
        self._netns = -1  # the container's namespace, for the upstream sockets made in it
        self._stop = False
        self._wake_r, self._wake_w = os.pipe()
        self._forwards = threading.BoundedSemaphore(MAX_FORWARDS)
        self._tcp_conns = threading.BoundedSemaphore(MAX_TCP)

    def bind(self, netns_path: str) -> None:
        """Make the sockets inside the namespace at ``netns_path``: on random ports of
        127.0.0.11, with ``127.0.0.11:53`` redirected to them in that namespace (NAT rules,
        as libnetwork's setupIPTable), so that port 53 stays free for a server of the
        container's own on ``0.0.0.0:53``; on 53 itself when no rule can be set."""
        self._netns = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)

        def make(port: int) -> None:
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind((ADDRESS, port))
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind((ADDRESS, port))
            self.tcp.listen(64)

        try:
            self._in_netns(lambda: make(0))
            try:
                # run from a thread in the namespace: the tool starts in it (no nsenter)
                self._in_netns(lambda: _redirect(*self.ports))
            except OSError:
                self.udp.close()
                self.tcp.close()
                self._in_netns(lambda: make(PORT))
        except BaseException:
            self.close()
            raise

    @property
    def ports(self) -> tuple[int, int]:
        """The UDP and TCP ports the server's sockets are bound to."""
        return self.udp.getsockname()[1], self.tcp.getsockname()[1]

    def _in_netns(self, fn: Callable[[], object]):
        """``fn()`` run by a thread that joins the container's namespace (and ends there:
        never reused); sockets it makes stay in that namespace wherever they are used."""
        out: list = []
        err: list[BaseException] = []

        def inside() -> None:
            try:
                os.setns(self._netns, os.CLONE_NEWNET)
                out.append(fn())
            except BaseException as e:  # noqa: BLE001 - passed to the caller
                err.append(e)

        t = threading.Thread(target=inside)
        t.start()  # RuntimeError when no thread can be made: the caller's to handle
        t.join()
        if err:
            raise err[0]
        return out[0]

    def serve(self) -> None:
        threading.Thread(target=self._loop, name="dns", daemon=True).start()

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        for s in (self.udp, self.tcp):
            if s is not None:
                s.close()
        if self._netns >= 0:
            with contextlib.suppress(OSError):
                os.close(self._netns)
            self._netns = -1

    def _loop(self) -> None:
        self.sel.register(self.udp, selectors.EVENT_READ)
        self.sel.register(self.tcp, selectors.EVENT_READ)
        self.sel.register(self._wake_r, selectors.EVENT_READ)
        while not self._stop:
            for key, _ in self.sel.select():
                if self._stop:
                    break
                try:
                    if key.fileobj is self.udp:
                        self._on_datagram()
                    elif key.fileobj is self.tcp:
                        self._on_connection()
                except Exception:  # noqa: BLE001 - one query's failure never ends the loop
                    pass
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _on_datagram(self) -> None:
        try:
            data, addr = self.udp.recvfrom(4096)
        except OSError:
            return
        if addr[0] == ADDRESS and addr[1] in (PORT, self.ports[0]):
            return  # "from" the server itself: a forged datagram, never a client's
        reply = self.local(data, udp=True)
        if reply is None:  # to forward: in a thread of its own, at most MAX_FORWARDS
            if self._start(self._forwards, self._forward_udp, data, addr):
                return
            reply = _servfail(data)
        if reply:
            with contextlib.suppress(OSError):
                self.udp.sendto(reply, addr)

    def _on_connection(self) -> None:
        try:
            conn, _ = self.tcp.accept()
        except OSError:
            return
        if not self._start(self._tcp_conns, self._tcp, conn):
            conn.close()  # MAX_TCP connections served already

    def _start(self, slots: threading.BoundedSemaphore, target, *args) -> bool:
        """``target(*args)`` in a new thread holding one of ``slots``; False when none is
        free or no thread can be started."""
        if not slots.acquire(blocking=False):
            return False

        def run() -> None:
            try:
                target(*args)
            finally:
                slots.release()

        try:
            threading.Thread(target=run, daemon=True).start()
        except RuntimeError:  # can't start new thread
            slots.release()
            return False
        return True

    def _forward_udp(self, data: bytes, addr) -> None:
        reply = self.forward(data, tcp=False)
        if reply:
            with contextlib.suppress(OSError):
                self.udp.sendto(reply, addr)

    def _tcp(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + TCP_DEADLINE  # the whole connection's, not per read
        with conn:
            try:
                while True:
                    hdr = _recv_exact(conn, 2, deadline)
                    if not hdr:
                        return
                    data = _recv_exact(conn, struct.unpack("!H", hdr)[0], deadline)
                    reply = self.handle(data, tcp=True)
                    if not reply:
                        return
                    conn.settimeout(max(0.01, deadline - time.monotonic()))
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return

    def handle(self, data: bytes, *, tcp: bool) -> bytes:
        """The reply to one message (b"": none), forwarded upstream if not answered here."""
        reply = self.local(data, udp=not tcp)
        return self.forward(data, tcp=tcp) if reply is None else reply

    def local(self, data: bytes, *, udp: bool = False) -> bytes | None:
        """The reply made here without waiting on anything: an answer from the names
        known, an error, or b"" to drop the message; None when it is to be forwarded.
        Addresses come in a random order, as libnetwork shuffles them; over UDP an answer
        larger than 512 bytes (or the query's EDNS0 size) keeps the records that fit and
        says it is truncated (TC), as libnetwork's ``truncateResp``: the client asks again
        over TCP.

        As miekg/dns's default filter (dockerd's server): responses are dropped (a reply
        answered again would loop), opcodes other than QUERY get NOTIMP, and a message
        with other than one question, or with answer or authority records, FORMERR."""
        if len(data) < 12:
            return b""
        _qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", data[:12])
        if flags & 0x8000:
            return b""
        if (flags >> 11) & 0xF != 0:
            return _error(data, 4)  # NOTIMP
        if qd != 1 or an or ns or ar > 2:
            return _error(data, 1)  # FORMERR
        try:
            _qid, _flags, name, qtype, _qclass, _end = parse_query(data)
        except ValueError:
            return _error(data, 1)
        lname = name.lower().rstrip(".")
        if qtype in (QTYPE_A, QTYPE_AAAA):
            ips = self.resolve(lname)
            if ips is not None:
                if qtype == QTYPE_AAAA:
                    return answer(data, 0, [])
                ips = random.sample(list(ips), len(ips))
                records = [(QTYPE_A, socket.inet_aton(ip)) for ip in ips]
                return _fit(data, records, _udp_size(data) if udp else 0)
        elif qtype == QTYPE_PTR and lname.endswith(".in-addr.arpa"):
            parts = lname[: -len(".in-addr.arpa")].split(".")
            with contextlib.suppress(ValueError):
                ip = str(ipaddress.IPv4Address(".".join(reversed(parts))))
                host = self.reverse(ip)
                if host:
                    return answer(data, 0, [(QTYPE_PTR, _encode_name(host))])
        return None

    def _sockets(self, kind: int) -> list[tuple[str, socket.socket]]:
        """A socket for each upstream, made in the namespace it is dialled from."""
        made: list[tuple[str, socket.socket]] = []

        def make(servers: list[str]) -> list[tuple[str, socket.socket]]:
            return [
                (s, socket.socket(socket.AF_INET6 if ":" in s else socket.AF_INET, kind))
                for s in servers
            ]

        try:
            inside = [s for s in self.upstreams if s not in self.host_ns]
            made += make([s for s in self.upstreams if s in self.host_ns])
            if inside and self._netns >= 0:
                made += self._in_netns(lambda: make(inside))
        except (OSError, RuntimeError):
            pass  # no socket, no thread: the servers not reached
        order = {s: i for i, s in enumerate(self.upstreams)}
        return sorted(made, key=lambda m: order[m[0]])

    def forward(self, data: bytes, *, tcp: bool) -> bytes:
        socks = self._sockets(socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        try:
            for server, s in socks:
                try:
                    s.settimeout(_UPSTREAM_TIMEOUT)
                    s.connect((server, PORT))
                    if tcp:
                        s.sendall(struct.pack("!H", len(data)) + data)
                        deadline = time.monotonic() + _UPSTREAM_TIMEOUT
                        hdr = _recv_exact(s, 2, deadline)
                        if hdr:
                            reply = _recv_exact(s, struct.unpack("!H", hdr)[0], deadline)
                            if reply[:2] == data[:2]:
                                return reply
                        continue
                    s.send(data)
                    reply = s.recv(65535)
                    if reply[:2] == data[:2] and len(reply) > 2 and reply[2] & 0x80:
                        return reply
                except OSError:
                    continue
        finally:
            for _server, s in socks:
                s.close()
        return _servfail(data)  # no upstream answered


def _redirect(udp_port: int, tcp_port: int) -> None:
    """In the current thread's namespace: 127.0.0.11:53 (UDP, TCP) to the server's ports,
    and its replies from port 53 (libnetwork's rules, inserted first: a server made again in
    the same namespace takes over). iptables-legacy first: a fifth of the
    nf_tables one's time (this is on every container's start); OSError when neither
    sets the rules."""
    rules = "\n".join(
        [
            "*nat",
            *(
                f"-I OUTPUT -d {ADDRESS}/32 -p {proto} --dport {PORT} -j DNAT "
                f"--to-destination {ADDRESS}:{port}\n"
                f"-I POSTROUTING -s {ADDRESS}/32 -p {proto} --sport {port} -j SNAT "
                f"--to-source :{PORT}"
                for proto, port in (("udp", udp_port), ("tcp", tcp_port))
            ),
            "COMMIT",
            "",
        ]
    )
    for tool in ("iptables-legacy-restore", "iptables-restore"):
        try:
            proc = subprocess.run(
                [tool, "--noflush"],
                input=rules,
                capture_output=True,
                text=True,
            )
        except OSError:
            continue
        if proc.returncode == 0:
            return
    raise OSError("cannot redirect 127.0.0.11:53 in the container's namespace")


def _udp_size(query: bytes) -> int:
    """The largest UDP answer the client takes: 512 bytes, or its EDNS0 OPT record's
    payload size when larger (an OPT record: root name, type 41, the size as its class)."""
    size = 512
    with contextlib.suppress(ValueError, struct.error, IndexError):
        *_, end = parse_query(query)
        if struct.unpack("!H", query[10:12])[0] and query[end] == 0:
            rtype, payload = struct.unpack("!HH", query[end + 1 : end + 5])
            if rtype == 41:
                size = max(size, min(payload, 65535))
    return size


def _fit(query: bytes, records: list[tuple[int, bytes]], limit: int) -> bytes:
    """``answer(query, 0, records)``, with as many records as fit in ``limit`` bytes (0:
    no limit) and the TC flag set when some were left out."""
    reply = answer(query, 0, records)
    if not limit or len(reply) <= limit:
        return reply
    while records and len(reply) > limit:
        records = records[:-1]
        reply = answer(query, 0, records)
    return reply[:2] + struct.pack("!H", struct.unpack("!H", reply[2:4])[0] | 0x0200) + reply[4:]


def _error(query: bytes, rcode: int) -> bytes:
    """An error response: the question echoed when it can be read, else the header alone."""
    with contextlib.suppress(ValueError):
        return answer(query, rcode, [])
    qid, flags = struct.unpack("!HH", query[:4])
    return struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7900) | 0x0080 | rcode, 0, 0, 0, 0)


def _servfail(query: bytes) -> bytes:
    with contextlib.suppress(ValueError):
        return answer(query, 2, [])
    return b""


def _recv_exact(s: socket.socket, n: int, deadline: float) -> bytes:
    """``n`` bytes, by ``deadline`` (monotonic) at the latest; b"" at the end of the stream.
    Raises TimeoutError (an OSError) when the deadline passes."""
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        s.settimeout(left)
        chunk = s.recv(n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf
