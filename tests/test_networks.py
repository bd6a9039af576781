"""Container networks through the runtime: the default bridge, user-defined networks with
names resolved by the embedded DNS, isolation between networks, internal networks, the
host's gateway, published ports onto the container's address (TCP and UDP), and nothing
left behind. Every namespace here is made by dockweb under /run/dockweb/<store key>/netns;
the host's interfaces are never touched (checked at the end)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

import pytest

from dockweb.runtime.containers import ContainerSpec
from dockweb.runtime.errors import DockwebError
from dockweb.runtime.networks import NetworkConflict, NetworkNotFound
from tests.support.containers import (
    busybox_store,
    logs_text,
    managed_with_networks,
    run_to_exit,
    with_static_tool,
)
from tests.support.stubdns import StubResolver

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def _host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@pytest.fixture(scope="module")
def host_links():
    return _host_links()


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory, host_links):
    return busybox_store(registry, tmp_path_factory, "networks")[0]


@pytest.fixture(scope="module")
def image(registry, store, tmp_path_factory):
    """busybox with ``udpecho`` (tests/support/udpecho.c): busybox's nc has no UDP."""
    return with_static_tool(
        registry, store, tmp_path_factory.mktemp("udpecho"), "networks", "udpecho"
    )


@pytest.fixture
def mgr(store, host_links):
    yield from managed_with_networks(store)
    assert _host_links() == host_links  # nothing on the host's side, ever


def _wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _run(mgr, image, *cmd, **kw):
    c = mgr.create(ContainerSpec(image=image, cmd=list(cmd), **kw))
    mgr.start(c.id)
    return mgr.get(c.id)


def _ip(mgr, c, network):
    net = mgr.networks.get(network)
    ep = mgr.networks.endpoint(net, c.id)
    return ep.ip if ep else ""


def test_the_default_bridge_gives_an_address_a_route_and_no_names(mgr, image):
    server = _run(mgr, image, "sh", "-c", "echo hello | nc -l -p 7000", name="named-server")
    ip = _ip(mgr, server, "bridge")
    assert ip.startswith("172.17.0.")
    c, code = run_to_exit(
        mgr,
        image,
        "sh",
        "-c",
        f"ip -4 addr show eth0; ip route; nc {ip} 7000 </dev/null; "
        "nslookup named-server 127.0.0.11 && echo RESOLVED",
    )
    out = logs_text(mgr, c.id)
    assert "inet 172.17.0." in out and "default via 172.17.0.1 dev eth0" in out, out
    assert "hello" in out and "RESOLVED" not in out, out
    assert mgr.wait(server.id) == 0


def test_a_user_network_resolves_names_and_aliases_and_isolates(mgr, image):
    mgr.networks.create("front")
    mgr.networks.create("back")
    srv = _run(
        mgr,
        image,
        "sh",
        "-c",
        "while true; do echo pong | nc -l -p 7001; done",
        name="db",
        network="back",
        network_aliases=["database"],
    )
    c, code = run_to_exit(
        mgr,
        image,
        "sh",
        "-c",
        # the server listens again after each answer: a connect in between is refused; the
        # client's input stays open a moment: at once at its end, busybox's nc -l may see
        # the client's end before it sends its own line, and exit without it
        f"for name in db database {srv.id[:12]}; do i=0; "
        "until sleep 1 | nc -w 3 $name 7001; do "
        "i=$((i+1)); [ $i -ge 25 ] && exit 1; sleep 0.2; done; done",
        network="back",
    )
    assert code == 0, logs_text(mgr, c.id)
    assert logs_text(mgr, c.id).count("pong") == 3
    # another network: neither the name nor the address reaches it
    ip = _ip(mgr, srv, "back")
    c, code = run_to_exit(
        mgr,
        image,
        "sh",
        "-c",
        f"nslookup db 127.0.0.11; nc -w 2 {ip} 7001 </dev/null; echo exit=$?",
        network="front",
    )
    out = logs_text(mgr, c.id)
    assert "pong" not in out and "exit=1" in out, out
    mgr.remove(srv.id, force=True)


def test_network_connect_and_disconnect_on_a_running_container(mgr, image):
    mgr.networks.create("n1")
    mgr.networks.create("n2")
    c = _run(mgr, image, "sleep", "60", name="multi", network="n1")
    mgr.connect(c.id, "n2", aliases=["second"])
    assert _ip(mgr, c, "n2")
    probe, code = run_to_exit(
        mgr, image, "busybox", "nslookup", "second", "127.0.0.11", network="n2"
    )
    assert code == 0 and _ip(mgr, c, "n2") in logs_text(mgr, probe.id)
    with pytest.raises(NetworkConflict):
        mgr.connect(c.id, "n2")
    mgr.disconnect(c.id, "n2")
    assert not _ip(mgr, c, "n2")
    assert list(mgr.get(c.id).networks) == ["n1"]
    with pytest.raises(NetworkConflict, match="active endpoints"):
        mgr.networks.remove("n1")
    mgr.remove(c.id, force=True)
    mgr.networks.remove("n1")
    mgr.networks.remove("n2")
    with pytest.raises(NetworkNotFound):
        mgr.networks.get("n1")


def test_an_internal_network_does_not_reach_the_host(mgr, image):
    mgr.networks.create("sealed", internal=True)
    httpd = _HostHTTP()
    try:
        get = _http_get("host-gw", httpd.port)
        c, _ = run_to_exit(
            mgr, image, "sh", "-c", get, network="sealed", extra_hosts=["host-gw:host-gateway"]
        )
        assert "from-host" not in logs_text(mgr, c.id)
        for network in ("bridge", "open"):
            if network == "open":
                mgr.networks.create("open")
            c, _ = run_to_exit(
                mgr,
                image,
                "sh",
                "-c",
                get,
                network=network,
                extra_hosts=["host-gw:host-gateway"],
            )
            assert "from-host" in logs_text(mgr, c.id), (network, logs_text(mgr, c.id))
    finally:
        httpd.close()


def test_published_tcp_and_udp_ports_reach_the_containers_address(mgr, image):
    srv = _run(
        mgr,
        image,
        "sh",
        "-c",
        "(while true; do echo tcp-ok | nc -l -p 8080; done &) ; udpecho 8081",
        ports=[
            {"container_port": 8080, "proto": "tcp", "host_ip": "127.0.0.1", "host_port": 0},
            {"container_port": 8081, "proto": "udp", "host_ip": "127.0.0.1", "host_port": 0},
        ],
    )
    ports = {p["proto"]: p["host_port"] for p in mgr.get(srv.id).state.ports}
    _wait_for(lambda: _read_line(ports["tcp"]) == "tcp-ok\n", what="tcp port")
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(0.5)
    for _ in range(20):  # the server may not be bound yet: datagrams are not queued then
        u.sendto(b"ping\n", ("127.0.0.1", ports["udp"]))
        try:
            assert u.recvfrom(100)[0] == b"udp-ping\n"
            break
        except TimeoutError:
            continue
    else:
        raise AssertionError("no UDP answer through the published port")
    u.close()
    mgr.remove(srv.id, force=True)


def test_nothing_is_left_once_the_containers_are_gone(mgr, image):
    mgr.networks.create("tmpnet")
    c = _run(mgr, image, "sleep", "60", network="tmpnet")
    assert os.path.exists(mgr.netns.path(c.id)) and mgr.netns.infra_up()
    mgr.remove(c.id, force=True)
    assert not os.path.exists(mgr.netns.path(c.id))
    assert not mgr.netns.infra_up() and not os.path.exists(mgr.netns.infra)
    assert mgr.networks.all_endpoints() == []
    mgr.networks.remove("tmpnet")


def test_create_refuses_what_dockerd_refuses(mgr, image):
    with pytest.raises(DockwebError, match="network nope not found"):
        mgr.create(ContainerSpec(image=image, cmd=["true"], network="nope"))
    with pytest.raises(DockwebError, match="user defined networks only"):
        mgr.create(ContainerSpec(image=image, cmd=["true"], ipv4="172.17.0.9"))
    with pytest.raises(DockwebError, match="alias is supported only"):
        mgr.create(ContainerSpec(image=image, cmd=["true"], network_aliases=["x"]))
    mgr.networks.create("fixed", subnet="10.77.0.0/24", gateway="10.77.0.1")
    with pytest.raises(NetworkConflict, match="already exists"):
        mgr.networks.create("fixed")
    with pytest.raises(NetworkConflict, match="overlaps"):
        mgr.networks.create("other", subnet="10.77.0.128/25")
    c, code = run_to_exit(
        mgr,
        image,
        "busybox",
        "ip",
        "-4",
        "addr",
        "show",
        "eth0",
        network="fixed",
        ipv4="10.77.0.50",
    )
    assert code == 0 and "10.77.0.50/24" in logs_text(mgr, c.id)
    with pytest.raises(NetworkConflict, match="pre-defined"):
        mgr.networks.remove("bridge")


class _HostHTTP:
    """An HTTP server on the host's 0.0.0.0, as a test's "server on the host"."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"from-host\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("0.0.0.0", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def _read_line(port: int) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.makefile().readline()
    except OSError:
        return ""


def _http_get(url_host: str, port: int) -> str:
    """An HTTP GET through busybox's nc (its wget crashes, statically linked)."""
    return f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {url_host} {port}"


def _HostResolver() -> StubResolver:
    """A DNS server on the host's own address's port 53 (UDP) answering ``outside.test``
    with 10.1.2.3 and NXDOMAIN otherwise: "a resolver beyond the host" of a test, reached
    from a container's namespace through the way out (as ``--dns`` servers are dialled)."""
    from dockweb.runtime.netns import host_address

    addr = host_address()
    if not addr:
        pytest.skip("the host has no address of its own")
    return StubResolver(addr, {"outside.test": "10.1.2.3"})


def test_other_names_are_forwarded_to_the_upstream_resolver(mgr, image):
    resolver = _HostResolver()
    try:
        mgr.networks.create("fwd")
        for network in ("fwd", "bridge"):
            c, code = run_to_exit(
                mgr,
                image,
                "busybox",
                "nslookup",
                "outside.test",
                network=network,
                dns=[resolver.addr],
            )
            out = logs_text(mgr, c.id)
            assert code == 0 and "10.1.2.3" in out, (network, out)
        assert "outside.test" in resolver.queries
        # a container's own name is answered by the embedded DNS, never forwarded
        srv = _run(mgr, image, "sleep", "30", name="inside", network="fwd")
        c, code = run_to_exit(
            mgr, image, "busybox", "nslookup", "inside", network="fwd", dns=[resolver.addr]
        )
        assert code == 0 and _ip(mgr, srv, "fwd") in logs_text(mgr, c.id)
        assert not any(q.startswith("inside") for q in resolver.queries)
    finally:
        resolver.close()


def test_a_container_joins_another_containers_namespace(mgr, image):
    mgr.networks.create("shared")
    srv = _run(
        mgr,
        image,
        "sh",
        "-c",
        "while true; do echo same-ns | nc -l -p 7100; done",
        name="holder",
        network="shared",
    )
    c, code = run_to_exit(
        mgr,
        image,
        "sh",
        "-c",
        "i=0; until nc -w 3 127.0.0.1 7100 </dev/null; do "
        "i=$((i+1)); [ $i -ge 25 ] && break; sleep 0.2; done; cat /etc/resolv.conf",
        network="container:holder",
    )
    out = logs_text(mgr, c.id)
    assert code == 0 and "same-ns" in out and "127.0.0.11" in out, out
    assert mgr.networks.container_endpoints(c.id) == []  # no endpoint of its own
    with pytest.raises(DockwebError, match="conflicting options: port publishing"):
        mgr.create(
            ContainerSpec(
                image=image,
                cmd=["true"],
                network="container:holder",
                ports=[{"container_port": 1, "proto": "tcp", "host_ip": "", "host_port": 0}],
            )
        )
    mgr.remove(srv.id, force=True)
