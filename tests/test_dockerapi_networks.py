"""Networks through the doors: the `dockweb network` commands, Debian's docker CLI (20.10),
docker-py and docker-compose against ``dockweb system service`` (one store for all), with
containers that really talk to each other over the networks (busybox's nc; its wget
segfaults here)."""

from __future__ import annotations

import json
import os
import re
import socket
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

HEX64 = re.compile(r"^[0-9a-f]{64}$")
# a server answering "pong" to every connection, for ever
PONG = "trap 'exit 0' TERM; while true; do echo pong | nc -l -p {port}; done & wait"
# a client that tries for 20 s, printing what the server said
PING = "for i in $(seq 100); do nc -w 2 {host} {port} </dev/null && exit 0; sleep 0.2; done; exit 1"


@pytest.fixture(scope="module")
def image(engine_api, registry):
    return engine_api.pulled_busybox(registry, "api-networks")


@pytest.fixture
def dw(engine_api):
    def run(*args, check=True, **kw):
        return engine_api.dockweb(*args, check=check, **kw)

    return run


@pytest.fixture(autouse=True)
def clean(engine_api):
    yield
    ids = engine_api.dockweb("ps", "-aq").stdout.split()
    if ids:
        engine_api.dockweb("rm", "-f", *ids)
    engine_api.dockweb("network", "prune", "-f")


def mirrored_networks(engine_api) -> list[str]:
    """The Network rows the pages read (networks.mirror), by name."""
    import sqlite3

    with sqlite3.connect(engine_api.base / "data" / "db.sqlite3") as conn:
        rows = conn.execute("SELECT name FROM networks_network ORDER BY name").fetchall()
    return [r[0] for r in rows]


def _inspect(run, *args):
    return json.loads(run("inspect", *args, check=True).stdout)[0]


def test_cli_network_lifecycle_and_errors(engine_api, dw, image):
    out = dw(
        "network",
        "create",
        "--subnet",
        "10.77.0.0/24",
        "--gateway",
        "10.77.0.254",
        "--ip-range",
        "10.77.0.128/25",
        "--label",
        "team=x",
        "-o",
        "k=v",
        "cli-a",
    ).stdout
    net_id = out.strip()
    assert HEX64.match(net_id)
    assert mirrored_networks(engine_api) == ["bridge", "cli-a", "host", "none"]
    again = dw("network", "create", "cli-a", check=False)
    assert (again.returncode, again.stdout, again.stderr) == (
        1,
        "",
        "Error response from daemon: network with name cli-a already exists\n",
    )
    gw = dw("network", "create", "--gateway", "10.1.1.1", "cli-x", check=False)
    assert (gw.returncode, gw.stderr) == (1, "no matching subnet for gateway 10.1.1.1\n")
    pre = dw("network", "create", "bridge", check=False)
    assert (pre.returncode, pre.stderr) == (
        1,
        "Error response from daemon: operation is not permitted on predefined bridge network\n",
    )
    bad = dw("network", "create", "--driver", "overlay", "cli-x", check=False)
    assert bad.returncode == 1 and "not a swarm manager" in bad.stderr

    lines = dw("network", "ls").stdout.splitlines()
    assert re.fullmatch(r"NETWORK ID +NAME +DRIVER +SCOPE", lines[0])
    assert [line.split()[1] for line in lines[1:]] == ["bridge", "cli-a", "host", "none"]
    assert lines[2].split() == [net_id[:12], "cli-a", "bridge", "local"]
    assert dw("network", "ls", "-q", "-f", "label=team=x").stdout == net_id[:12] + "\n"
    assert dw("network", "ls", "-q", "--no-trunc", "-f", "type=custom").stdout == net_id + "\n"
    assert dw("network", "ls", "-f", "dangling=true", "--format", "{{.Name}}").stdout == ("cli-a\n")
    assert dw("network", "ls", "-f", "name=^cli", "--format", "{{.Name}} {{.Labels}}").stdout == (
        "cli-a team=x\n"
    )
    info = json.loads(dw("network", "inspect", "cli-a").stdout)[0]
    assert info["IPAM"] == {
        "Driver": "default",
        "Options": {},
        "Config": [
            {"Subnet": "10.77.0.0/24", "IPRange": "10.77.0.128/25", "Gateway": "10.77.0.254"}
        ],
    }
    assert (info["Id"], info["Options"], info["Labels"], info["Containers"]) == (
        net_id,
        {"k": "v"},
        {"team": "x"},
        {},
    )

    # a server on the network, with an alias and a fixed address
    cid = dw(
        "run",
        "-d",
        "--name",
        "cli-srv",
        "--network",
        "cli-a",
        "--network-alias",
        "srv",
        "--ip",
        "10.77.0.200",
        image,
        "sh",
        "-c",
        PONG.format(port=7001),
    ).stdout.strip()
    c = _inspect(dw, "cli-srv")
    assert c["HostConfig"]["NetworkMode"] == "cli-a"
    ns = c["NetworkSettings"]
    assert list(ns["Networks"]) == ["cli-a"]
    ep = ns["Networks"]["cli-a"]
    assert ep["IPAMConfig"] == {"IPv4Address": "10.77.0.200"}
    assert ep["Aliases"] == ["srv", cid[:12]]
    assert (ep["NetworkID"], ep["IPAddress"], ep["IPPrefixLen"], ep["Gateway"]) == (
        net_id,
        "10.77.0.200",
        24,
        "10.77.0.254",
    )
    assert ep["MacAddress"] == "02:42:0a:4d:00:c8" and HEX64.match(ep["EndpointID"])
    assert ns["IPAddress"] == "" and ns["Gateway"] == ""  # only the default bridge's
    members = json.loads(dw("network", "inspect", "cli-a").stdout)[0]["Containers"]
    assert members == {
        cid: {
            "Name": "cli-srv",
            "EndpointID": ep["EndpointID"],
            "MacAddress": "02:42:0a:4d:00:c8",
            "IPv4Address": "10.77.0.200/24",
            "IPv6Address": "",
        }
    }
    assert dw("ps", "--format", "{{.Names}} {{.Networks}}").stdout == "cli-srv cli-a\n"
    assert dw("ps", "-q", "-f", "network=cli-a").stdout == cid[:12] + "\n"
    assert dw("ps", "-q", "-f", f"network={net_id[:6]}").stdout == cid[:12] + "\n"
    assert dw("network", "ls", "-q", "-f", "dangling=true").stdout == ""

    busy = dw("network", "rm", "cli-a", check=False)
    assert (busy.returncode, busy.stderr) == (
        1,
        "Error response from daemon: error while removing network: network cli-a id "
        f"{net_id} has active endpoints\n",
    )
    # by name and by alias on the network; connect onto a second one with another alias
    by_name = dw(
        "run",
        "--rm",
        "--network",
        "cli-a",
        image,
        "sh",
        "-c",
        PING.format(host="cli-srv", port=7001),
        check=False,
    )
    assert (by_name.returncode, by_name.stdout) == (0, "pong\n")
    dw("network", "create", "cli-b")
    assert dw("network", "connect", "--alias", "second", "cli-b", "cli-srv").stdout == ""
    twice = dw("network", "connect", "cli-b", "cli-srv", check=False)
    assert (twice.returncode, twice.stderr) == (
        1,
        "Error response from daemon: endpoint with name cli-srv already exists in network cli-b\n",
    )
    ns = _inspect(dw, "cli-srv")["NetworkSettings"]
    assert list(ns["Networks"]) == ["cli-a", "cli-b"]
    assert ns["Networks"]["cli-b"]["Aliases"] == ["second", cid[:12]]
    by_alias = dw(
        "run",
        "--rm",
        "--network",
        "cli-b",
        image,
        "sh",
        "-c",
        PING.format(host="second", port=7001),
        check=False,
    )
    assert (by_alias.returncode, by_alias.stdout) == (0, "pong\n")
    assert dw("network", "disconnect", "cli-b", "cli-srv").stdout == ""
    assert json.loads(dw("network", "inspect", "cli-b").stdout)[0]["Containers"] == {}
    again = dw("network", "disconnect", "cli-b", "cli-srv", check=False)
    assert (again.returncode, again.stderr) == (
        1,
        f"Error response from daemon: container {cid} is not connected to network cli-b\n",
    )
    missing = dw("network", "connect", "nope", "cli-srv", check=False)
    assert (missing.returncode, missing.stderr) == (
        1,
        "Error response from daemon: network nope not found\n",
    )
    gone = dw("network", "rm", "nope", "bridge", check=False)
    assert (gone.returncode, gone.stdout, gone.stderr) == (
        1,
        "",
        "Error: No such network: nope\n"
        "Error response from daemon: bridge is a pre-defined network and cannot be removed\n",
    )
    nothing = dw("network", "inspect", "nope", check=False)
    assert (nothing.returncode, nothing.stdout, nothing.stderr) == (
        1,
        "[]\n",
        "Error: No such network: nope\n",
    )

    dw("rm", "-f", "cli-srv")
    kept = dw("network", "prune", "-f", "--filter", "label=team=y").stdout
    assert kept == ""
    pruned = dw("network", "prune", "-f").stdout
    assert pruned.startswith("Deleted Networks:\n") and pruned.endswith("\n\n")
    assert sorted(pruned.split("\n")[1:-2]) == ["cli-a", "cli-b"]
    assert dw("network", "ls", "--format", "{{.Name}}").stdout == "bridge\nhost\nnone\n"
    assert mirrored_networks(engine_api) == ["bridge", "host", "none"]


def test_cli_default_bridge_ports_and_inspect(dw, image):
    """``run`` without ``--network``: the default bridge (HostConfig.NetworkMode "default"
    as dockerd), its address at the top of NetworkSettings too; -p onto that address, with
    ``ps`` and ``port`` as docker prints them and a real connection through the port."""
    cid = dw(
        "run",
        "-d",
        "--name",
        "br-web",
        "-p",
        "127.0.0.1::7004",
        "--dns",
        "127.0.0.1",
        "--dns-search",
        "example.test",
        image,
        "sh",
        "-c",
        PONG.format(port=7004),
    ).stdout.strip()
    c = _inspect(dw, cid)
    host = c["HostConfig"]
    assert host["NetworkMode"] == "default"
    assert (host["Dns"], host["DnsSearch"], host["DnsOptions"]) == (
        ["127.0.0.1"],
        ["example.test"],
        [],
    )
    ns = c["NetworkSettings"]
    assert list(ns["Networks"]) == ["bridge"]
    ep = ns["Networks"]["bridge"]
    assert ep["IPAddress"].startswith("172.17.0.") and ep["IPPrefixLen"] == 16
    assert ep["Aliases"] is None and ep["Gateway"] == "172.17.0.1"
    assert (ns["IPAddress"], ns["Gateway"], ns["MacAddress"], ns["EndpointID"]) == (
        ep["IPAddress"],
        "172.17.0.1",
        ep["MacAddress"],
        ep["EndpointID"],
    )
    (line,) = dw("port", "br-web").stdout.splitlines()
    assert re.fullmatch(r"7004/tcp -> 127\.0\.0\.1:\d+", line)
    port = int(line.rsplit(":", 1)[1])
    assert dw("ps", "--format", "{{.Ports}} {{.Networks}}").stdout == (
        f"127.0.0.1:{port}->7004/tcp bridge\n"
    )
    assert _recv(port) == b"pong\n"
    bridge = json.loads(dw("network", "inspect", "bridge").stdout)[0]
    assert bridge["Containers"][cid]["IPv4Address"] == ep["IPAddress"] + "/16"
    assert bridge["IPAM"]["Config"] == [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]


def _recv(port: int, timeout: float = 20) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                data = b""
                while chunk := s.recv(100):
                    data += chunk
                if data:
                    return data
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing from 127.0.0.1:{port}")
        time.sleep(0.2)


def test_docker_cli_network_commands_and_inspect(engine_api, image):
    d = engine_api.docker
    since = time.time() - 1
    made = d(
        "network",
        "create",
        "--subnet",
        "10.78.0.0/16",
        "--label",
        "k=v",
        "--internal",
        "--attachable",
        "dk-net",
        check=True,
    )
    net_id = made.stdout.strip()
    assert HEX64.match(net_id)
    pre = d("network", "create", "host")
    assert (pre.returncode, pre.stderr) == (
        1,
        "Error response from daemon: operation is not permitted on predefined host network\n",
    )
    dup = d("network", "create", "dk-net")
    assert (dup.returncode, dup.stderr) == (
        1,
        "Error response from daemon: network with name dk-net already exists\n",
    )
    info = json.loads(d("network", "inspect", "dk-net", check=True).stdout)
    assert len(info) == 1
    n = info[0]
    assert list(n) == [
        "Name",
        "Id",
        "Created",
        "Scope",
        "Driver",
        "EnableIPv6",
        "IPAM",
        "Internal",
        "Attachable",
        "Ingress",
        "ConfigFrom",
        "ConfigOnly",
        "Containers",
        "Options",
        "Labels",
    ]
    assert (n["Name"], n["Id"], n["Driver"], n["Scope"], n["Internal"], n["Attachable"]) == (
        "dk-net",
        net_id,
        "bridge",
        "local",
        True,
        True,
    )
    assert n["IPAM"]["Config"] == [{"Subnet": "10.78.0.0/16", "Gateway": "10.78.0.1"}]
    assert n["Labels"] == {"k": "v"} and n["Containers"] == {}
    assert (
        d("network", "inspect", "-f", "{{.Name}} {{.Internal}}", "dk-net", check=True).stdout
        == "dk-net true\n"
    )
    out = d("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Internal}}", check=True).stdout
    assert out.splitlines() == [
        "bridge bridge false",
        "dk-net bridge true",
        "host host false",
        "none null false",
    ]
    assert d("network", "ls", "-q", "-f", "type=custom", check=True).stdout == net_id[:12] + "\n"

    cid = d(
        "run",
        "-d",
        "--name",
        "dk-srv",
        "--network",
        "dk-net",
        "--network-alias",
        "db",
        image,
        "sh",
        "-c",
        PONG.format(port=7005),
        check=True,
    ).stdout.strip()
    members = json.loads(d("network", "inspect", "dk-net", check=True).stdout)[0]["Containers"]
    assert list(members) == [cid] and members[cid]["IPv4Address"].startswith("10.78.0.")
    c = json.loads(d("inspect", "dk-srv", check=True).stdout)[0]
    assert c["HostConfig"]["NetworkMode"] == "dk-net"
    ep = c["NetworkSettings"]["Networks"]["dk-net"]
    assert ep["Aliases"] == ["db", cid[:12]] and ep["NetworkID"] == net_id
    assert ep["IPAddress"] + "/16" == members[cid]["IPv4Address"]
    client = d(
        "run", "--rm", "--network", "dk-net", image, "sh", "-c", PING.format(host="db", port=7005)
    )
    assert (client.returncode, client.stdout) == (0, "pong\n")

    d("network", "create", "dk-two", check=True)
    assert (
        d(
            "network",
            "connect",
            "--alias",
            "other",
            "--ip",
            "172.18.0.50",
            "dk-two",
            "dk-srv",
            check=True,
        ).stdout
        == ""
    )
    ep2 = json.loads(d("inspect", "dk-srv", check=True).stdout)[0]["NetworkSettings"]
    assert ep2["Networks"]["dk-two"]["IPAddress"] == "172.18.0.50"
    assert ep2["Networks"]["dk-two"]["IPAMConfig"] == {"IPv4Address": "172.18.0.50"}
    assert d("network", "disconnect", "-f", "dk-two", "dk-srv", check=True).stdout == ""
    rm = d("network", "rm", "dk-net")
    assert rm.returncode == 1 and "has active endpoints" in rm.stderr
    missing = d("network", "rm", "nope")
    assert (missing.returncode, missing.stderr) == (1, "Error: No such network: nope\n")
    d("rm", "-f", "dk-srv", check=True)
    assert "dk-two" in mirrored_networks(engine_api)  # through the API too
    assert d("network", "rm", "dk-net", "dk-two", check=True).stdout == "dk-net\ndk-two\n"
    assert mirrored_networks(engine_api) == ["bridge", "host", "none"]
    d("network", "create", "dk-left", check=True)
    pruned = d("network", "prune", "-f", check=True).stdout
    assert pruned == "Deleted Networks:\ndk-left\n\n"
    # the networks' events, as docker events prints them
    events = d(
        "events",
        "--since",
        str(int(since)),
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
        check=True,
    ).stdout.splitlines()
    assert [e for e in events if e.endswith(" dk-left")] == ["create dk-left", "destroy dk-left"]
    assert [e for e in events if e.endswith(" dk-two")] == [
        "create dk-two",
        "connect dk-two",
        "disconnect dk-two",
        "destroy dk-two",
    ]


def test_docker_cli_ps_and_port_show_published_ports_that_reach_the_container(engine_api, image):
    d = engine_api.docker
    d(
        "run",
        "-d",
        "--name",
        "dk-web",
        "-p",
        "127.0.0.1::7008",
        "-P",
        "--expose",
        "7009",
        image,
        "sh",
        "-c",
        PONG.format(port=7008),
        check=True,
    )
    lines = sorted(d("port", "dk-web", check=True).stdout.splitlines())
    assert len(lines) == 2, lines
    assert re.fullmatch(r"7008/tcp -> 127\.0\.0\.1:\d+", lines[0])
    assert re.fullmatch(r"7009/tcp -> 0\.0\.0\.0:\d+", lines[1])
    port = int(lines[0].rsplit(":", 1)[1])
    other = int(lines[1].rsplit(":", 1)[1])
    assert d("port", "dk-web", "7008", check=True).stdout == f"127.0.0.1:{port}\n"
    ps = d("ps", "--format", "{{.Ports}}", "-f", "name=dk-web", check=True).stdout
    assert ps == f"127.0.0.1:{port}->7008/tcp, 0.0.0.0:{other}->7009/tcp\n"
    assert _recv(port) == b"pong\n"
    info = json.loads(d("inspect", "dk-web", check=True).stdout)[0]
    assert info["HostConfig"]["PublishAllPorts"] is True
    assert info["NetworkSettings"]["Ports"]["7008/tcp"] == [
        {"HostIp": "127.0.0.1", "HostPort": str(port)}
    ]


def test_docker_py_two_containers_reach_each_other_by_name(engine_api, image):
    client = engine_api.client()
    from docker.types import IPAMConfig, IPAMPool

    net = client.networks.create(
        "py-net",
        driver="bridge",
        labels={"made": "py"},
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet="10.79.0.0/24")]),
    )
    assert net.attrs["Name"] == "py-net" and net.attrs["Labels"] == {"made": "py"}
    assert [n.name for n in client.networks.list(names=["py-net"])] == ["py-net"]
    server = client.containers.run(
        image,
        ["sh", "-c", PONG.format(port=7006)],
        name="py-server",
        network="py-net",
        detach=True,
    )
    server.reload()
    assert list(server.attrs["NetworkSettings"]["Networks"]) == ["py-net"]
    net.reload()
    assert list(net.attrs["Containers"]) == [server.id]
    out = client.containers.run(
        image,
        ["sh", "-c", PING.format(host="py-server", port=7006)],
        network="py-net",
        remove=True,
    )
    assert out == b"pong\n"
    # the API's create with an endpoint config: an alias and a fixed address
    endpoint = client.api.create_endpoint_config(aliases=["pyalias"], ipv4_address="10.79.0.99")
    made = client.api.create_container(
        image,
        ["sleep", "60"],
        name="py-fixed",
        host_config=client.api.create_host_config(network_mode="py-net"),
        networking_config=client.api.create_networking_config({"py-net": endpoint}),
    )
    client.api.start(made["Id"])
    fixed = client.containers.get("py-fixed")
    ep = fixed.attrs["NetworkSettings"]["Networks"]["py-net"]
    assert ep["IPAddress"] == "10.79.0.99" and ep["Aliases"] == ["pyalias", made["Id"][:12]]
    out = client.containers.run(
        image, ["busybox", "nslookup", "pyalias", "127.0.0.11"], network="py-net", remove=True
    )
    assert b"10.79.0.99" in out
    net.disconnect(fixed, force=True)
    fixed.remove(force=True)
    server.remove(force=True)
    net.remove()
    assert client.networks.list(names=["py-net"]) == []


def test_compose_project_on_its_default_network(engine_api, image, tmp_path):
    """A server and a client on the project's default network: the client reaches the
    server by its service name; down removes the containers and the network."""
    port = 7007
    (tmp_path / "docker-compose.yml").write_text(
        f"""version: "3.7"
services:
  server:
    image: {image}
    command: ["sh", "-c", "{PONG.format(port=port).replace("$", "$$")}"]
  client:
    image: {image}
    depends_on: [server]
    command: ["sh", "-c", "{PING.format(host="server", port=port).replace("$", "$$")}"]
"""
    )
    env = engine_api.client_env()

    def compose(*args):
        proc = engine_api.compose(tmp_path, "-p", "netp", *args, env=env)
        assert proc.returncode == 0, f"docker-compose {' '.join(args)}:\n{proc.stderr}"
        return proc

    up = compose("up", "-d")
    assert 'Creating network "netp_default" with the default driver' in up.stderr
    nets = engine_api.docker("network", "ls", "--format", "{{.Name}}", check=True).stdout
    assert "netp_default" in nets.split()
    assert engine_api.dockweb("wait", "netp_client_1", check=True).stdout == "0\n"
    logs = compose("logs", "--no-color", "client").stdout
    assert "client_1  | pong" in logs
    server = json.loads(engine_api.docker("inspect", "netp_server_1", check=True).stdout)[0]
    ep = server["NetworkSettings"]["Networks"]["netp_default"]
    assert "server" in ep["Aliases"] and ep["IPAddress"]
    down = compose("down")
    assert "Removing network netp_default" in down.stderr
    nets = engine_api.docker("network", "ls", "--format", "{{.Name}}", check=True).stdout
    assert nets.split() == ["bridge", "host", "none"]
    left = engine_api.dockweb("ps", "-a", "--format", "{{.Names}}", check=True).stdout
    assert "netp" not in left


def test_system_prune_removes_unused_networks(dw, image):
    dw("network", "create", "sp-used")
    dw("network", "create", "sp-unused")
    dw("run", "-d", "--name", "sp-c", "--network", "sp-used", image, "sleep", "60")
    out = dw("system", "prune", "-f").stdout
    assert out == "Deleted Networks:\nsp-unused\n\nTotal reclaimed space: 0B\n"
    assert dw("network", "ls", "-q", "-f", "name=sp-").stdout.split() == [
        json.loads(dw("network", "inspect", "sp-used").stdout)[0]["Id"][:12]
    ]
