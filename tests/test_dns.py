"""The embedded DNS server (dockweb/runtime/dns.py): what it refuses to answer, its bounds
on threads and connections, where its upstream sockets are made, and the names it answers
for containers (``<name>.<network>``, a renamed container).

The server's own tests run it on a network namespace made here (dockweb's NetNamespaces
under a temporary directory, never the host's network); the container tests run real
containers on user-defined networks."""

from __future__ import annotations

import os
import secrets
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from dockweb.runtime import dns
from dockweb.runtime.containers import ContainerSpec
from dockweb.runtime.netns import NetNamespaces
from tests.support.containers import (
    busybox_store,
    logs_text,
    managed_with_networks,
    run_to_exit,
    with_static_tool,
)
from tests.support.stubdns import StubResolver

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and containers need root")


def _query(name: str, qtype: int = 1, flags: int = 0x0100, qid: int = 0x1234, counts=(1, 0, 0, 0)):
    return (
        struct.pack("!HHHHHH", qid, flags, *counts)
        + dns._encode_name(name)
        + struct.pack("!HH", qtype, 1)
    )


def _rcode(reply: bytes) -> int:
    return struct.unpack("!H", reply[2:4])[0] & 0xF


def _loopback_addr() -> str:
    """An address on the host's loopback for a test's server on port 53."""
    return f"127.{os.getpid() % 200 + 20}.{secrets.randbelow(250) + 1}.53"


def _server(names=None, upstreams=(), host_ns=()):
    calls = []

    def resolve(name):
        calls.append(name)
        return (names or {}).get(name)

    kw = {"host_ns": host_ns} if host_ns else {}
    return dns.EmbeddedDNS(resolve, lambda ip: None, list(upstreams), **kw), calls


# -- what is answered (no namespace needed) -----------------------------------------------


def _addresses(reply: bytes) -> list[str]:
    count = struct.unpack("!H", reply[6:8])[0]
    _, _, _, _, _, end = dns.parse_query(reply)
    ips = []
    for i in range(count):  # each: pointer, type, class, ttl, length, 4 bytes
        ips.append(socket.inet_ntoa(reply[end + 16 * i + 12 : end + 16 * i + 16]))
    return ips


def test_many_addresses_are_shuffled_and_truncated_over_udp_as_libnetwork():
    ips = [f"10.30.{i // 250}.{i % 250 + 1}" for i in range(60)]
    srv, _ = _server({"many": ips})
    tcp = srv.handle(_query("many"), tcp=True)
    assert sorted(_addresses(tcp)) == sorted(ips) and not struct.unpack("!H", tcp[2:4])[0] & 0x0200
    udp = srv.handle(_query("many"), tcp=False)
    assert len(udp) <= 512 and struct.unpack("!H", udp[2:4])[0] & 0x0200  # TC: ask over TCP
    assert 0 < len(_addresses(udp)) < len(ips) and set(_addresses(udp)) <= set(ips)
    # EDNS0: the client's larger buffer is used
    opt = b"\x00" + struct.pack("!HHIH", 41, 4096, 0, 0)
    edns = srv.handle(_query("many", counts=(1, 0, 0, 1)) + opt, tcp=False)
    assert (
        sorted(_addresses(edns)) == sorted(ips) and not struct.unpack("!H", edns[2:4])[0] & 0x0200
    )
    orders = {tuple(_addresses(srv.handle(_query("many"), tcp=True))) for _ in range(5)}
    assert len(orders) > 1, "the addresses always came in one order"


def test_a_response_is_never_answered():
    srv, _ = _server({"web": ["172.18.0.2"]})
    reply = srv.handle(_query("web"), tcp=False)
    assert reply and reply[2] & 0x80 and _rcode(reply) == 0
    # fed back (two servers, or one forged to itself): dropped, else they answer forever
    assert srv.handle(reply, tcp=False) == b""
    assert srv.handle(_query("web", flags=0x8100), tcp=False) == b""


def test_other_opcodes_get_notimp_and_extra_sections_formerr():
    srv, calls = _server({"web": ["172.18.0.2"]})
    for opcode in (1, 2, 4, 5):  # IQUERY, STATUS, NOTIFY, UPDATE
        reply = srv.handle(_query("web", flags=opcode << 11), tcp=False)
        assert _rcode(reply) == 4 and reply[2] & 0x80, opcode  # NOTIMP, a response
        assert (struct.unpack("!H", reply[2:4])[0] >> 11) & 0xF == opcode
    for counts in ((1, 1, 0, 0), (1, 0, 1, 0), (1, 0, 0, 3), (2, 0, 0, 0)):
        assert _rcode(srv.handle(_query("web", counts=counts), tcp=False)) == 1, counts
    assert calls == []  # none of them was looked up
    # a compression pointer in a query's question (pointing past it) is refused too
    m = struct.pack("!HHHHHH", 1, 0x100, 1, 0, 0, 0) + b"\xc0\x12" + b"\x00\x01\x00\x01"
    assert _rcode(srv.handle(m, tcp=False)) == 1
    # an EDNS query (one OPT record) is still answered
    edns = _query("web", counts=(1, 0, 0, 1)) + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    assert _rcode(srv.handle(edns, tcp=False)) == 0


# -- the server on a namespace of its own --------------------------------------------------


@pytest.fixture
def netns(tmp_path):
    """A network namespace (loopback up) made by dockweb's NetNamespaces."""
    ns = NetNamespaces(str(tmp_path / "run"))
    path = ns.path("dnstest")
    ns.create(path)
    yield path
    ns.destroy(path)
    subprocess.run(["umount", ns.dir], check=False)


def _inside(path: str, fn):
    """``fn()`` in a thread that joins the namespace at ``path`` (and ends there)."""
    out, err = [], []

    def run():
        try:
            fd = os.open(path, os.O_RDONLY)
            os.setns(fd, os.CLONE_NEWNET)
            os.close(fd)
            out.append(fn())
        except BaseException as e:  # noqa: BLE001 - re-raised below
            err.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


def _udp_client(path: str) -> socket.socket:
    s = _inside(path, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s.settimeout(3)
    return s


@root_only
def test_a_datagram_forged_from_the_server_itself_is_dropped(netns):
    srv, calls = _server({"web": ["172.18.0.2"]})
    srv.bind(netns)
    srv.serve()
    try:
        # CAP_NET_RAW (a default capability): one datagram 127.0.0.11:53 -> 127.0.0.11:53
        q = _query("web", qid=7)
        udp = struct.pack("!HHHH", 53, 53, 8 + len(q), 0) + q
        addr = socket.inet_aton(dns.ADDRESS)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, addr, addr)

        def forge():
            with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as r:
                r.sendto(ip + udp, (dns.ADDRESS, 0))

        _inside(netns, forge)
        time.sleep(1)
        assert calls == []  # before: answered to itself, thousands of rounds a second
        c = _udp_client(netns)
        c.sendto(_query("web"), (dns.ADDRESS, dns.PORT))
        assert _rcode(c.recv(512)) == 0 and calls == ["web"]  # clients still served
        c.close()
    finally:
        srv.close()


@root_only
def test_forwards_are_bounded_and_local_names_answered_meanwhile(netns):
    # an upstream that never answers (at the same address inside the namespace and on the
    # host's loopback): each forward waits its timeout
    addr = _loopback_addr()
    silent = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
    silent.append(_inside(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
    for s in silent:
        s.bind((addr, 53))
    srv, _ = _server({"web": ["172.18.0.2"]}, upstreams=[addr])
    srv.bind(netns)
    before = threading.active_count()
    srv.serve()
    try:
        c = _udp_client(netns)
        for i in range(300):
            c.sendto(_query(f"x{i}.example", qid=i), (dns.ADDRESS, dns.PORT))
            if i % 50 == 49:
                time.sleep(0.05)  # no more than the sockets' buffers hold
        time.sleep(0.3)
        assert threading.active_count() <= before + 1 + dns.MAX_FORWARDS + 2
        # beyond the bound: SERVFAIL at once (not a thread each, not a wait)
        got = {}
        while len(got) < 200:
            r = c.recv(512)
            got[struct.unpack("!H", r[:2])[0]] = _rcode(r)
        assert set(got.values()) == {2}
        # a local name is answered at once while the forwards wait
        c.sendto(_query("web", qid=9999), (dns.ADDRESS, dns.PORT))
        t0 = time.monotonic()
        while True:
            r = c.recv(512)
            if r[:2] == b"\x27\x0f":
                break
        assert _rcode(r) == 0 and time.monotonic() - t0 < 1.5
        c.close()
    finally:
        srv.close()
        for s in silent:
            s.close()


@root_only
def test_tcp_connections_are_bounded(netns):
    srv, _ = _server({"web": ["172.18.0.2"]})
    srv.bind(netns)
    before = threading.active_count()
    srv.serve()
    conns = []
    try:
        for _ in range(100):
            conns.append(_connect(netns))
        time.sleep(0.3)
        assert threading.active_count() <= before + 1 + dns.MAX_TCP + 2
    finally:
        for s in conns:
            s.close()
        srv.close()


def _connect(netns):
    def connect():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((dns.ADDRESS, dns.PORT))
        return s

    return _inside(netns, connect)


@root_only
def test_a_tcp_connection_ends_by_its_deadline_however_it_drips(netns):
    srv, _ = _server({"web": ["172.18.0.2"]})
    srv.bind(netns)
    srv.serve()
    conns = []
    try:
        # one that sends a byte every 0.3 s is still cut at the deadline (a timeout per read
        # would keep it forever)
        drip = _connect(netns)
        conns.append(drip)
        drip.send(b"\x01\x00")  # a 256-byte message to come
        drip.settimeout(0.3)
        t0 = time.monotonic()
        closed = None
        while closed is None and time.monotonic() - t0 < dns.TCP_DEADLINE + 3:
            try:
                drip.send(b"x")
                if drip.recv(10) == b"":
                    closed = time.monotonic() - t0
            except TimeoutError:
                continue
            except OSError:
                closed = time.monotonic() - t0
        assert closed is not None and closed < dns.TCP_DEADLINE + 3, closed
    finally:
        for s in conns:
            s.close()
        srv.close()


_NO_THREAD = """
import os, resource, socket, struct, sys, threading
from dockweb.runtime import dns

def q(name, qid):
    head = struct.pack("!HHHHHH", qid, 0x100, 1, 0, 0, 0)
    return head + dns._encode_name(name) + struct.pack("!HH", 1, 1)

srv = dns.EmbeddedDNS(lambda n: ["172.18.0.2"] if n == "web" else None, lambda ip: None,
                      ["127.0.0.1"])
srv.bind(sys.argv[1])
srv.serve()
box = []
def client():
    fd = os.open(sys.argv[1], os.O_RDONLY)
    os.setns(fd, os.CLONE_NEWNET)
    box.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
t = threading.Thread(target=client)
t.start()
t.join()
c = box[0]
c.settimeout(2)
c.sendto(q("web", 1), ("127.0.0.11", 53))
print("before", c.recv(512)[3] & 15, flush=True)
# from here no thread can start: a new thread's stack (larger than the cached ones) cannot
# be mapped
threading.stack_size(64 << 20)
vm = int([ln for ln in open("/proc/self/status") if ln.startswith("VmSize")][0].split()[1])
resource.setrlimit(resource.RLIMIT_AS, (vm * 1024 + (1 << 20), resource.RLIM_INFINITY))
try:
    threading.Thread(target=lambda: None).start()
except RuntimeError:
    print("no thread", flush=True)
for qid, name in ((2, "x.example"), (3, "web")):
    c.sendto(q(name, qid), ("127.0.0.11", 53))
    try:
        r = c.recv(512)
        print(name, r[1], r[3] & 15, flush=True)
    except TimeoutError:
        print(name, "no answer", flush=True)
"""


@root_only
def test_no_thread_to_start_fails_a_forward_not_the_server(netns):
    """A forward that cannot get a thread is answered SERVFAIL, and the server goes on (the
    thread-start error killed its loop: no DNS for the container any more)."""
    proc = subprocess.run(
        [sys.executable, "-c", _NO_THREAD, netns],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["before 0", "no thread"], (proc.stdout, proc.stderr)
    assert lines[2:] == ["x.example 2 2", "web 3 0"], (proc.stdout, proc.stderr)


def _Resolver(addr: str, ip: str) -> StubResolver:
    """A DNS server at ``addr``:53 (UDP) answering every query with one A record ``ip``,
    its socket made in the current thread's namespace."""
    return StubResolver(addr, default=ip)


@root_only
def test_upstreams_are_dialled_from_the_containers_namespace_but_the_hosts_loopback(netns):
    addr = _loopback_addr()
    on_host = _Resolver(addr, "10.0.0.1")
    inside = _inside(netns, lambda: _Resolver(addr, "10.0.0.2"))
    try:
        for host_ns, want in (((), "10.0.0.2"), ((addr,), "10.0.0.1")):
            srv, _ = _server(upstreams=[addr], host_ns=host_ns)
            srv.bind(netns)
            try:
                reply = srv.handle(_query("outside.test"), tcp=False)
                assert reply.endswith(socket.inet_aton(want)), (host_ns, reply)
            finally:
                srv.close()
        assert on_host.queries == inside.queries == ["outside.test"]
    finally:
        on_host.close()
        inside.close()


# -- containers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("containers need root")
    return busybox_store(registry, tmp_path_factory, "dns")[0]


@pytest.fixture(scope="module")
def image(registry, store, tmp_path_factory):
    """busybox with ``dnsstub`` (tests/support/dnsstub.c): busybox has no DNS server."""
    return with_static_tool(registry, store, tmp_path_factory.mktemp("dnsstub"), "dns", "dnsstub")


@pytest.fixture
def mgr(store):
    yield from managed_with_networks(store)


_ETH0_IP = (
    "$(ip -4 -o addr show eth0 | sed 's/.*inet \\([0-9.]*\\).*/\\1/')"  # in a container's shell
)


def _run(mgr, image, *cmd, **kw):
    c = mgr.create(ContainerSpec(image=image, cmd=list(cmd), **kw))
    mgr.start(c.id)
    return mgr.get(c.id)


def _ip(mgr, c, network):
    ep = mgr.networks.endpoint(mgr.networks.get(network), c.id)
    return ep.ip if ep else ""


def _lookup(mgr, image, names, network, **kw) -> str:
    """busybox nslookup of each name at 127.0.0.11, from a container on ``network``."""
    script = "; ".join(f"echo Q={n}; nslookup {n} 127.0.0.11" for n in names)
    c, _ = run_to_exit(mgr, image, "sh", "-c", script, network=network, **kw)
    return logs_text(mgr, c.id)


def _answers(out: str) -> dict[str, str]:
    """name asked -> the text nslookup printed for it."""
    parts = out.split("Q=")[1:]
    return {p.split("\n", 1)[0]: p.split("\n", 1)[1] for p in parts}


@root_only
def test_name_dot_network_resolves_on_that_network_only(mgr, image):
    mgr.networks.create("mynet")
    mgr.networks.create("other")
    web = _run(mgr, image, "sleep", "60", name="web", network="mynet")
    mgr.connect(web.id, "other")
    ip, other_ip = _ip(mgr, web, "mynet"), _ip(mgr, web, "other")
    out = _answers(_lookup(mgr, image, ["web.mynet", "web.other", "web.nonet", ip, "web"], "mynet"))
    assert ip in out["web.mynet"] and other_ip not in out["web.mynet"], out
    # "other" is not one of the asking container's networks
    assert other_ip not in out["web.other"] and ip not in out["web.other"], out
    assert ip not in out["web.nonet"], out
    assert "name = web.mynet" in out[ip], out  # the PTR answer, which resolves forwards
    assert ip in out["web"], out
    mgr.remove(web.id, force=True)


@root_only
def test_a_renamed_running_container_answers_to_its_new_name(mgr, image):
    mgr.networks.create("renet")
    c = _run(mgr, image, "sleep", "60", name="before-name", network="renet")
    ip = _ip(mgr, c, "renet")
    mgr.rename(c.id, "after-name")
    out = _answers(_lookup(mgr, image, ["after-name", "before-name"], "renet"))
    assert ip in out["after-name"], out
    assert ip not in out["before-name"], out
    ep = mgr.networks.endpoint(mgr.networks.get("renet"), c.id)
    assert ep.name == "after-name"
    mgr.remove(c.id, force=True)


@root_only
def test_dns_a_container_on_the_same_network(mgr, image):
    mgr.networks.create("dnsnet")
    resolver = _run(
        mgr,
        image,
        "sh",
        "-c",
        f"dnsstub {_ETH0_IP} 10.9.8.7",
        name="resolver",
        network="dnsnet",
    )
    rip = _ip(mgr, resolver, "dnsnet")
    out = _answers(_lookup(mgr, image, ["outside.test"], "dnsnet", dns=[rip]))
    assert "10.9.8.7" in out["outside.test"], out  # before: dialled from the host, unreachable
    mgr.remove(resolver.id, force=True)


@root_only
def test_dns_on_loopback_is_the_containers_loopback_not_the_hosts(mgr, image):
    addr = _loopback_addr()
    on_host = _Resolver(addr, "10.0.0.1")
    try:
        mgr.networks.create("lonet")
        out = _answers(_lookup(mgr, image, ["outside.test"], "lonet", dns=[addr]))
        assert "10.0.0.1" not in out["outside.test"] and on_host.queries == [], out
    finally:
        on_host.close()


@root_only
def test_an_internal_network_forwards_nothing_beyond_itself(mgr, image):
    from dockweb.runtime.netns import host_address

    host = host_address()
    if not host:
        pytest.skip("the host has no address of its own")
    on_host = _Resolver(host, "10.0.0.1")
    try:
        mgr.networks.create("opennet")
        mgr.networks.create("sealednet", internal=True)
        out = _answers(_lookup(mgr, image, ["outside.test"], "opennet", dns=[host]))
        assert "10.0.0.1" in out["outside.test"], out  # reached through the way out
        n = len(on_host.queries)
        out = _answers(_lookup(mgr, image, ["outside.test"], "sealednet", dns=[host]))
        assert "10.0.0.1" not in out["outside.test"] and len(on_host.queries) == n, out
    finally:
        on_host.close()


@root_only
def test_the_names_are_read_again_after_any_change_of_the_records(mgr):
    """The names are kept between queries while the records are still, and every change
    (an endpoint added, renamed, removed, a network connected) is seen by the next query."""
    net = mgr.networks.create("cached")
    me, other = "a" * 64, "b" * 64
    with mgr.networks.locked():
        mgr.networks.allocate(net, me, "me")
    resolve, reverse = mgr.dns_names(me)
    assert resolve("web") is None
    time.sleep(1.2)  # still for a second: kept from here
    assert resolve("web") is None and resolve("me")
    with mgr.networks.locked():
        ep = mgr.networks.allocate(net, other, "web")
    assert resolve("web") == [ep.ip] and reverse(ep.ip) == "web.cached"
    time.sleep(1.2)
    assert resolve("web") == [ep.ip]
    mgr._rename_endpoints(other, "api")
    assert resolve("web") is None and resolve("api") == [ep.ip]
    time.sleep(1.2)
    assert resolve("api.cached") == [ep.ip]
    net2 = mgr.networks.create("cached2")
    with mgr.networks.locked():
        ep2 = mgr.networks.allocate(net2, other, "api")
        mgr.networks.allocate(net2, me, "me")
    assert resolve("api.cached2") == [ep2.ip]
    time.sleep(1.2)
    assert resolve("api") == [ep.ip, ep2.ip]
    with mgr.networks.locked():
        mgr.networks.release(net, other)
    assert resolve("api") == [ep2.ip] and resolve("api.cached") is None
    with mgr.networks.locked():
        for n in (net, net2):
            for cid in (me, other):
                mgr.networks.release(n, cid)


@root_only
def test_port_53_is_free_for_a_dns_server_of_the_containers_own(mgr, image):
    """The embedded DNS listens on random ports, 127.0.0.11:53 redirected to them inside
    the container's namespace (as dockerd): a server of the image's own binds 0.0.0.0:53."""
    mgr.networks.create("ownnet")
    c, code = run_to_exit(
        mgr,
        image,
        "sh",
        "-c",
        "dnsstub 0.0.0.0 10.9.8.7 & sleep 0.5; "
        "echo Q=self; nslookup selfdns 127.0.0.11; "
        f"echo Q=own; nslookup x.test {_ETH0_IP}; "
        "kill %1",
        name="selfdns",
        network="ownnet",
    )
    out = logs_text(mgr, c.id)
    assert "listening" in out and "in use" not in out, out
    answers = _answers(out)
    ip = answers["self"].split("Address: ")[-1].strip()
    assert ip.startswith("172."), out  # the embedded DNS answered its own name
    assert "10.9.8.7" in answers["own"], out  # and its own server on port 53 answered
