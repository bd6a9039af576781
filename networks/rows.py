"""The Network rows' fields from the runtime, without Django: what ``networks.mirror``
writes through the ORM and ``containers.fastmirror`` with plain sqlite3 (the CLI's fast
``run`` path and the supervisor's exit hook), from one function."""

from __future__ import annotations

from datetime import datetime

from dockweb.runtime.networks import container_network


def _parse_time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def network_rows(mgr) -> list[tuple[str, dict]]:
    """(network ID, the row's fields) for each of ``mgr``'s networks (a ContainerManager),
    in the runtime's order: its settings, its endpoints (the addresses of its running
    containers) and the containers configured on it (running or not)."""
    nm = mgr.networks
    nets = nm.list()
    members: dict[str, list[dict]] = {n.name: [] for n in nets}
    for c in mgr.list(all=True):
        names = list(c.networks)
        mode = container_network(c.spec)
        if mode in ("host", "none") and mode not in names:
            names.append(mode)
        for name in names:
            cfg = c.networks.get(name) or {}
            members.setdefault(name, []).append(
                {
                    "container_id": c.id,
                    "name": c.name.lstrip("/"),
                    "aliases": list(cfg.get("aliases") or []),
                    "ipv4": cfg.get("ipv4") or "",
                }
            )
    rows = []
    for position, net in enumerate(nets):
        endpoints = [
            {
                "container_id": ep.container_id,
                "name": ep.name,
                "ip": ep.ip,
                "prefix": net.prefix,
                "mac": ep.mac,
                "aliases": list(ep.aliases),
                "ifname": ep.ifname,
            }
            for ep in (nm.endpoints(net) if net.subnet else [])
        ]
        rows.append(
            (
                net.id,
                {
                    "name": net.name,
                    "position": position,
                    "driver": net.driver,
                    "created": _parse_time(net.created),
                    "subnet": net.subnet,
                    "gateway": net.gateway,
                    "ip_range": net.ip_range,
                    "internal": net.internal,
                    "attachable": net.attachable,
                    "labels": dict(net.labels),
                    "options": dict(net.options),
                    "endpoints": endpoints,
                    "members": members.get(net.name, []),
                },
            )
        )
    return rows
