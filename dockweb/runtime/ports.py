"""``docker run -p``: TCP ports of the host passed on to a container, as docker-proxy does.

A container on the ``none`` network has only its own loopback, so the supervisor listens on
the host's side and, for every connection, opens one from inside the container's network
namespace (a thread that has ``setns``-ed into it) to the container's port on its loopback,
then copies both ways until both sides have finished. The listeners are bound before the
container's process runs, so a port in use fails the start with nothing run; they close
when the supervisor ends, with the container.

:func:`parse_publish` reads ``-p`` values; :class:`PortProxy` serves them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import selectors
import socket
import threading
from dataclasses import dataclass

from dockweb.runtime.errors import DockwebError, os_reason

_BUFFER = 1 << 16
UDP_IDLE = 90.0  # seconds without a datagram before a UDP flow is closed
_UDP_SLICE = 0.5  # how soon a UDP flow's thread notices that the proxy is closed


class PortError(DockwebError):
    """A ``-p`` value docker refuses, or a host port that cannot be had."""


@dataclass
class Binding:
    """One published port: ``host_port`` 0 asks the kernel for a free one."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0

    @property
    def key(self) -> str:  # docker's nat.Port: "80/tcp"
        return f"{self.container_port}/{self.proto}"


def _port_range(text: str, what: str) -> list[int]:
    first, sep, last = text.partition("-")
    try:
        start = int(first)
        end = int(last) if sep else start
    except ValueError:
        raise PortError(f"Invalid {what}: {text}") from None
    low = 1 if what == "containerPort" else 0
    if not low <= start <= end <= 65535:
        raise PortError(f"Invalid {what}: {text}")
    return list(range(start, end + 1))


def parse_publish(value: str) -> list[Binding]:
    """``-p [ip:][hostPort:]containerPort[/proto]`` (ranges ``8000-8001:80-81`` too), as
    docker's nat.ParsePortSpec; tcp and udp are served (sctp is refused)."""
    spec, _, proto = value.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise PortError(f"Invalid proto: {proto}")
    if proto == "sctp":
        raise PortError(f"dockweb publishes tcp and udp ports, not sctp: {value}")
    ip = host = ""
    if spec.startswith("[") and "]:" in spec:  # [::1]:8080:80
        ip, rest = spec[1:].split("]:", 1)
        host, _, container = rest.rpartition(":")
    else:
        parts = spec.split(":")
        if len(parts) == 1:
            container = parts[0]
        elif len(parts) == 2:
            host, container = parts
        elif len(parts) == 3:
            ip, host, container = parts
        else:
            raise PortError(f"Invalid ip address: {':'.join(parts[:-2])}")
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise PortError(f"Invalid ip address: {ip}") from None
    if not container:
        raise PortError(f"No port specified: {value}<empty>")
    containers = _port_range(container, "containerPort")
    hosts = _port_range(host, "hostPort") if host else [0] * len(containers)
    if len(hosts) != len(containers):
        raise PortError(f"Invalid ranges specified for container and host Ports: {value}")
    return [Binding(c, proto, ip, h) for c, h in zip(containers, hosts, strict=True)]


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways; a side that ends its output gets the other's shutdown (half-close)."""
    peer = {a: b, b: a}
    with selectors.DefaultSelector() as sel:
        for s in (a, b):
            sel.register(s, selectors.EVENT_READ)
        while peer:
            for key, _ in sel.select():
                src = key.fileobj
                try:
                    data = src.recv(_BUFFER)
                except OSError:
                    data = b""
                dst = peer.get(src)
                if data and dst is not None:
                    try:
                        dst.sendall(data)
                        continue
                    except OSError:
                        pass
                sel.unregister(src)
                peer.pop(src, None)
                if dst is not None:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
    a.close()
    b.close()


class PortProxy:
    """The listeners of a container's published ports and the copying behind them."""

    def __init__(self, bindings: list[Binding], *, name: str = "", cid: str = "") -> None:
        self.bindings = bindings
        self.name, self.cid = name, cid
        self.listeners: list[tuple[socket.socket, Binding]] = []
        self.netns = -1
        self.target = "127.0.0.1"

    def bind(self) -> list[Binding]:
        """Listen on every host port (before the container runs); the bindings with the
        ports the kernel chose. Raises PortError with docker's words for a port in use."""
        bound = []
        try:
            for b in self.bindings:
                ip = b.host_ip or "0.0.0.0"
                family = socket.AF_INET6 if ":" in ip else socket.AF_INET
                udp = b.proto == "udp"
                s = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((ip, b.host_port))
                except OSError as e:
                    s.close()
                    net = b.proto + ("6" if family == socket.AF_INET6 else "4")
                    raise PortError(
                        "driver failed programming external connectivity on endpoint "
                        f"{self.name} ({self.cid}): Error starting userland proxy: listen "
                        f"{net} {ip}:{b.host_port}: bind: {os_reason(e)}"
                    ) from None
                if not udp:
                    s.listen(128)  # not inherited by the runtime: sockets are not, by default
                self.listeners.append((s, b))
                bound.append(Binding(b.container_port, b.proto, ip, s.getsockname()[1]))
        except BaseException:
            self.close()
            raise
        return bound

    def serve(self, pid: int, target: str = "127.0.0.1") -> None:
        """Accept on every listener; connect into the network namespace of ``pid``, to
        ``target`` (the container's address on its network, its loopback on ``none``). A
        process that has ended already has no namespace left: nothing is served."""
        try:
            self.netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.close()
            return
        self.target = target
        for s, b in self.listeners:
            run = self._datagrams if b.proto == "udp" else self._accept
            threading.Thread(target=run, args=(s, b), daemon=True).start()

    def _datagrams(self, listener: socket.socket, b: Binding) -> None:
        """UDP as docker-proxy relays it: a socket inside the container's namespace per
        client address, its replies sent back from the published port; a flow idle for
        ``UDP_IDLE`` seconds is closed."""
        flows: dict = {}
        lock = threading.Lock()
        ending = threading.Event()

        def back(inner: socket.socket, client) -> None:
            # in slices: shutting a connected UDP socket down does not wake a blocked recv,
            # so the end of the proxy is looked for between them
            inner.settimeout(_UDP_SLICE)
            idle = 0.0
            try:
                while not ending.is_set() and idle < UDP_IDLE:
                    try:
                        data = inner.recv(_BUFFER)
                    except TimeoutError:
                        idle += _UDP_SLICE
                        continue
                    idle = 0.0
                    listener.sendto(data, client)
            except OSError:
                pass
            with lock:
                flows.pop(client, None)
            inner.close()

        while True:
            try:
                data, client = listener.recvfrom(_BUFFER)
            except OSError:
                break  # closed: the container ended
            if client is None:
                break  # shut down (close()): recvfrom returns (b"", None) from now on
            with lock:
                inner = flows.get(client)
            if inner is None:
                inner = self._inside(socket.SOCK_DGRAM, b)
                if inner is None:
                    continue
                with lock:
                    flows[client] = inner
                threading.Thread(target=back, args=(inner, client), daemon=True).start()
            with contextlib.suppress(OSError):
                inner.send(data)
        ending.set()  # each flow's thread ends within _UDP_SLICE and closes its socket

    def _inside(self, kind: int, b: Binding) -> socket.socket | None:
        """A socket made in the container's namespace, connected to the target port."""
        out: list = []

        def make() -> None:
            try:
                os.setns(self.netns, os.CLONE_NEWNET)
                s = socket.socket(socket.AF_INET, kind)
                s.connect((self.target, b.container_port))
                out.append(s)
            except OSError:
                pass

        t = threading.Thread(target=make)  # ends in the namespace: never reused
        t.start()
        t.join()
        return out[0] if out else None

    def _accept(self, listener: socket.socket, b: Binding) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the container ended
            threading.Thread(target=self._forward, args=(conn, b), daemon=True).start()

    def _forward(self, conn: socket.socket, b: Binding) -> None:
        try:
            os.setns(self.netns, os.CLONE_NEWNET)  # this thread only; it ends with the copy
            inner = socket.create_connection((self.target, b.container_port), timeout=10)
            inner.settimeout(None)
        except OSError:
            conn.close()  # nothing listens there: the client sees the connection end
            return
        _relay(conn, inner)

    def close(self) -> None:
        for s, _ in self.listeners:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.listeners = []
        if self.netns >= 0:
            os.close(self.netns)
            self.netns = -1
