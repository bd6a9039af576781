"""Container networks: TCP throughput and connection latency between two containers on one
user-defined network, and from the host to a container's published port, against the same
traffic over the host's loopback (the ceiling on this machine).

    cd /work/main && sudo .venv/bin/python -m benchmarks.networks [--mb 512] [--conns 300]

Set up: busybox pushed to a docker-registry on 127.0.0.1, a store in a scratch directory on
the machine's own file system, a user-defined network with two containers (``sleep``), the
server one publishing a port. The traffic's ends are small Python peers run with
``nsenter --net`` in each container's network namespace (busybox has no benchmark tool):
the path measured is the containers' — veth, the bridge in dockweb's namespace, the port
proxy of the container's supervisor — not the peers' process.

- throughput: one connection sends ``--mb`` MiB in 256 KiB writes; MB/s at the receiver;
- latency: ``--conns`` times connect, 1 byte there and back, close; median and p95 in ms;
- the cost of a network on a container's start: ``--runs`` times create, start, wait and
  remove of ``true`` through the runtime, on ``none``, on the default ``bridge`` with
  another container attached (dockweb's namespace up) and with none (it is made and
  removed with the container), alternating; medians in ms.

Not run in CI: it needs root and a few minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from benchmarks import common
from tests.support import images as im

PEER = r"""
import socket, sys, time
mode = sys.argv[1]
if mode == "serve":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(128)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        first = c.recv(1)
        if first == b"p":  # a ping: answer the byte, then the client closes
            c.sendall(b"p"); c.recv(1); c.close(); continue
        n, t0 = len(first), time.perf_counter()
        while True:
            d = c.recv(1 << 18)
            if not d:
                break
            n += len(d)
        dt = time.perf_counter() - t0
        c.sendall(f"{n} {dt}".encode()); c.close()
elif mode == "send":
    host, port, mb = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    c = socket.create_connection((host, port)); buf = b"x" * (1 << 18)
    for _ in range(mb * 4):
        c.sendall(buf)
    c.shutdown(socket.SHUT_WR)
    n, dt = c.recv(100).decode().split(); print(int(n) / float(dt) / 1e6)
elif mode == "ping":
    host, port, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        c = socket.create_connection((host, port)); c.sendall(b"p"); c.recv(1)
        out.append((time.perf_counter() - t0) * 1000); c.close()
    print(" ".join(f"{x:.4f}" for x in out))
"""


def _peer(netns: str, *args: str, background: bool = False):
    cmd = (["nsenter", f"--net={netns}"] if netns else []) + [sys.executable, "-c", PEER, *args]
    if background:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        return p
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def measure(
    label: str,
    server_ns: str,
    client_ns: str,
    host: str,
    port: int,
    mb: int,
    conns: int,
    server_port: int | None = None,
) -> dict:
    srv = _peer(server_ns, "serve", str(server_port or port), background=True)
    try:
        time.sleep(0.2)
        _peer(client_ns, "ping", host, str(port), "20")  # warm up
        mbps = [float(_peer(client_ns, "send", host, str(port), str(mb))) for _ in range(3)]
        lat = [float(x) for x in _peer(client_ns, "ping", host, str(port), str(conns)).split()]
    finally:
        srv.kill()
        srv.wait()
    out = {
        "label": label,
        "MB/s": statistics.median(mbps),
        "conn median ms": statistics.median(lat),
        "conn p95 ms": common.percentile(lat, 95),
    }
    common.log(
        f"{label}: {out['MB/s']:.0f} MB/s, connect+rtt median "
        f"{out['conn median ms']:.3f} ms, p95 {out['conn p95 ms']:.3f} ms"
    )
    return out


def start_costs(mgr, ref: str, runs: int) -> dict[str, float]:
    from dockweb.runtime.containers import ContainerSpec

    def once(network: str) -> float:
        t0 = time.perf_counter()
        c = mgr.create(ContainerSpec(image=ref, cmd=["true"], network=network))
        mgr.start(c.id)
        mgr.wait(c.id)
        mgr.remove(c.id)
        return (time.perf_counter() - t0) * 1000

    times: dict[str, list[float]] = {
        "none": [],
        "bridge, namespace made": [],
        "bridge, namespace up": [],
    }
    for mode in times:  # warm up
        once("none" if mode == "none" else "bridge")
    keeper = None
    for _ in range(runs):
        times["none"].append(once("none"))
        times["bridge, namespace made"].append(once("bridge"))
        keeper = mgr.create(ContainerSpec(image=ref, cmd=["sleep", "60"]))
        mgr.start(keeper.id)
        times["bridge, namespace up"].append(once("bridge"))
        mgr.remove(keeper.id, force=True)
    out = {k: statistics.median(v) for k, v in times.items()}
    common.log("start costs: " + ", ".join(f"{k} {v:.0f} ms" for k, v in out.items()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    from dockweb.runtime.containers import ContainerManager, ContainerSpec
    from dockweb.runtime.pull import pull
    from dockweb.runtime.registry import RegistryClient
    from dockweb.runtime.store import Store

    with common.scratch_dir("netbench-") as scratch, common.registry(scratch / "reg") as reg:
        im.push_image(reg.host, "bench/busybox", "1", im.busybox_base())
        store = Store(str(scratch / "store"))
        ref = f"{reg.host}/bench/busybox:1"
        pull(store, RegistryClient(), ref)
        mgr = ContainerManager(store)
        mgr.networks.create("benchnet")
        made = []
        try:
            server = mgr.create(
                ContainerSpec(
                    image=ref,
                    cmd=["sleep", "600"],
                    network="benchnet",
                    ports=[
                        {
                            "container_port": 5001,
                            "proto": "tcp",
                            "host_ip": "127.0.0.1",
                            "host_port": 0,
                        }
                    ],
                )
            )
            made.append(server.id)
            client = mgr.create(ContainerSpec(image=ref, cmd=["sleep", "600"], network="benchnet"))
            made.append(client.id)
            for c in made:
                mgr.start(c)
            net = mgr.networks.get("benchnet")
            server_ip = mgr.networks.endpoint(net, server.id).ip
            host_port = mgr.get(server.id).state.ports[0]["host_port"]
            rows = [
                measure("host loopback (ceiling)", "", "", "127.0.0.1", 5002, args.mb, args.conns),
                measure(
                    "container -> container (one network)",
                    mgr.netns.path(server.id),
                    mgr.netns.path(client.id),
                    server_ip,
                    5001,
                    args.mb,
                    args.conns,
                ),
                measure(
                    "host -> published port",
                    mgr.netns.path(server.id),
                    "",
                    "127.0.0.1",
                    host_port,
                    args.mb,
                    args.conns,
                    server_port=5001,
                ),
            ]
        finally:
            for c in made:
                mgr.remove(c, force=True)
            mgr.networks.remove("benchnet")
        starts = start_costs(mgr, ref, args.runs)
    print(f"{'start of `true` (create+start+wait+rm)':40} {'median ms':>10}")
    for label, ms in starts.items():
        print(f"{label:40} {ms:10.0f}")
    base = rows[0]
    print(f"{'path':40} {'MB/s':>8} {'ratio':>6} {'conn ms median':>15} {'p95':>8}")
    for r in rows:
        print(
            f"{r['label']:40} {r['MB/s']:8.0f} {r['MB/s'] / base['MB/s']:6.2f} "
            f"{r['conn median ms']:15.3f} {r['conn p95 ms']:8.3f}"
        )


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("run as root: containers and namespaces")
    main()
