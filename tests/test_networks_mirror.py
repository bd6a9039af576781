"""The Network rows: the CLI's fast ``run`` path (plain sqlite3, containers/fastmirror.py)
writes the rows the ORM path (networks/mirror.py) writes, the running container's
endpoint and its membership included."""

# ruff: noqa: F811  (pytest fixtures imported from test_containers_fastrun)
from __future__ import annotations

import json

from dockweb.runtime.networks import NetworkManager
from tests.test_containers_fastrun import busybox, cli, needs_root, rows  # noqa: F401


@needs_root
def test_the_fast_path_writes_the_network_rows_the_orm_path_writes(cli, busybox):
    cli("-m", "dockweb.cli", "pull", "-q", busybox)  # migrates and stamps the database
    net = NetworkManager(cli.env["DOCKWEB_ROOT"]).create("fastnet", subnet="10.66.0.0/24")
    cid = cli(
        "-m",
        "dockweb.cli",
        "run",
        "-d",
        "--name",
        "fast",
        "--network",
        "fastnet",
        "--network-alias",
        "api",
        "--ip",
        "10.66.0.7",
        busybox,
        "sleep",
        "30",
    ).stdout.strip()
    fast = rows(cli.db, "networks_network")
    by_position = sorted(fast, key=lambda r: r["position"])
    assert [r["name"] for r in by_position] == ["bridge", "host", "none", "fastnet"]
    row = by_position[3]
    assert (row["network_id"], row["subnet"], row["gateway"]) == (
        net.id,
        "10.66.0.0/24",
        "10.66.0.1",
    )
    [ep] = json.loads(row["endpoints"])
    assert (ep["container_id"], ep["ip"], ep["prefix"], ep["mac"]) == (
        cid,
        "10.66.0.7",
        24,
        "02:42:0a:42:00:07",
    )
    assert ep["aliases"] == ["api", cid[:12]]
    assert json.loads(row["members"]) == [
        {"container_id": cid, "name": "fast", "aliases": ["api"], "ipv4": "10.66.0.7"}
    ]
    cli("manage.py", "container_exited", cid)  # the same, mirrored through the ORM
    assert rows(cli.db, "networks_network") == fast
