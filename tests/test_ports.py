"""docker run -p: parsing as docker's nat.ParsePortSpec, the PORTS column, and real
connections from the host into a container that has only its own loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import pytest

from dockweb.docker.ps import display_ports
from dockweb.runtime.containers import ContainerSpec, Status
from dockweb.runtime.errors import ContainerStartError
from dockweb.runtime.ports import Binding, PortError, parse_publish
from tests.support.containers import busybox_store, managed


@pytest.mark.parametrize(
    ("value", "bindings"),
    [
        ("80", [Binding(80)]),
        ("8080:80", [Binding(80, host_port=8080)]),
        ("127.0.0.1:8080:80/tcp", [Binding(80, "tcp", "127.0.0.1", 8080)]),
        ("127.0.0.1::80", [Binding(80, "tcp", "127.0.0.1", 0)]),
        ("8000-8001:80-81", [Binding(80, host_port=8000), Binding(81, host_port=8001)]),
        ("[::1]:8080:80", [Binding(80, "tcp", "::1", 8080)]),
        ("5353:53/UDP", [Binding(53, "udp", "", 5353)]),
    ],
)
def test_it_parses_publish_specs_as_docker(value, bindings):
    assert parse_publish(value) == bindings


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x", "Invalid containerPort: x"),
        ("0", "Invalid containerPort: 0"),
        ("x:80", "Invalid hostPort: x"),
        ("1.2.3:80:80", "Invalid ip address: 1.2.3"),
        ("8000-8002:80-81", "Invalid ranges specified for container and host Ports: "
                            "8000-8002:80-81"),
        ("80/sctp", "dockweb publishes tcp and udp ports, not sctp: 80/sctp"),
        ("80/icmp", "Invalid proto: icmp"),
    ],
)
def test_it_refuses_bad_publish_specs(value, message):
    with pytest.raises(PortError) as e:
        parse_publish(value)
    assert str(e.value) == message


def test_it_shows_ports_as_dockers_ps():
    ports = [
        {"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 8001, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8000, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 9000, "PublicPort": 39000, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"},
    ]
    assert display_ports(ports) == (
        "0.0.0.0:8000-8001->80-81/tcp, 443/tcp, 127.0.0.1:39000->9000/tcp"
    )


# -- real containers -------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def image_store(registry, tmp_path_factory):
    return busybox_store(registry, tmp_path_factory, "ports")


@pytest.fixture(scope="module")
def manager(image_store):
    yield from managed(image_store[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask(port: int, data: bytes) -> bytes:
    """Send ``data`` and end our side while reading the answer to its end (an echo server
    answers as it reads: reading only afterwards would fill both ways' buffers)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                received: list[bytes] = []
                reader = threading.Thread(
                    target=lambda s=s, out=received: out.extend(iter(lambda: s.recv(65536), b""))
                )
                reader.start()
                try:
                    s.sendall(data)
                    s.shutdown(socket.SHUT_WR)
                finally:
                    reader.join(10)
                out = b"".join(received)
                if out or time.monotonic() > deadline:
                    return out
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)  # the server in the container is not listening yet


@needs_root
def test_it_passes_host_connections_on_to_the_containers_loopback(manager, image_store):
    host_port = _free_port()
    # an echo server on the container's own loopback: nothing else could reach it
    c = manager.create(ContainerSpec(
        image=image_store[1],
        cmd=["nc", "-ll", "-p", "7000", "-e", "cat"],
        ports=[vars(Binding(7000, host_ip="127.0.0.1", host_port=host_port)),
               vars(Binding(7001, host_ip="127.0.0.1"))],
    ))
    manager.start(c.id)
    st = manager.get(c.id).state
    assert [(p["container_port"], p["host_ip"]) for p in st.ports] == [
        (7000, "127.0.0.1"), (7001, "127.0.0.1")
    ]
    assert st.ports[0]["host_port"] == host_port and st.ports[1]["host_port"] > 0
    assert _ask(host_port, b"ping\n") == b"ping\n"
    assert _ask(host_port, b"x" * 200_000) == b"x" * 200_000  # both ways, to the end
    # nothing listens on 7001 in the container: the connection just ends
    with socket.create_connection(("127.0.0.1", st.ports[1]["host_port"]), timeout=5) as s:
        assert s.recv(10) == b""
    # the port is taken while it runs: another container cannot start on it
    other = manager.create(ContainerSpec(
        image=image_store[1], cmd=["true"],
        ports=[vars(Binding(80, host_ip="127.0.0.1", host_port=host_port))],
    ))
    with pytest.raises(ContainerStartError) as e:
        manager.start(other.id)
    assert e.value.exit_code == 125
    assert str(e.value).endswith(
        f"Error starting userland proxy: listen tcp4 127.0.0.1:{host_port}: bind: "
        "address already in use"
    )
    assert manager.get(other.id).status is Status.CREATED
    # stopped: the listeners went with it, and its state holds no ports
    manager.stop(c.id, 0)
    assert manager.get(c.id).state.ports == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", host_port), timeout=5).close()
    manager.start(other.id)  # the port is free again
    manager.wait(other.id)


@pytest.mark.skipif(os.geteuid() != 0, reason="setns needs root")
def test_closing_a_udp_proxy_ends_its_threads_without_an_error():
    """close() shuts the listener down: recvfrom then returns (b"", None) and a flow's
    socket b"" at once, again and again; both loops must end there (they made a flow for
    the client None, sent it empty datagrams and spun until the sockets were closed)."""
    from dockweb.runtime.ports import PortProxy

    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))

    def serve_echo():
        with contextlib.suppress(OSError):
            while True:
                data, peer = echo.recvfrom(100)
                echo.sendto(b"echo:" + data, peer)

    threading.Thread(target=serve_echo, daemon=True).start()
    errors = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        before = threading.active_count()
        proxy = PortProxy([Binding(echo.getsockname()[1], "udp", "127.0.0.1", 0)])
        (bound,) = proxy.bind()
        proxy.serve(os.getpid(), "127.0.0.1")  # this process's own namespace
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(5)
        client.sendto(b"ping", ("127.0.0.1", bound.host_port))
        assert client.recvfrom(100)[0] == b"echo:ping"
        assert threading.active_count() >= before + 2  # the listener's loop and the flow's
        proxy.close()
        deadline = time.monotonic() + 5
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() == before, [t.name for t in threading.enumerate()]
        assert errors == []
    finally:
        threading.excepthook = old_hook
        echo.close()
