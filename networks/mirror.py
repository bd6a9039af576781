"""The database mirror of the runtime's networks (``Network`` rows), kept by the processes
that change the runtime (the worker, the CLI): ``sync_networks`` runs whenever the
containers are mirrored (``containers.services.sync_containers``) and after every network
verb (``networks.services``). Pages read the rows only."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection, transaction

from dockweb.runtime.networks import container_network
from networks.models import Network

log = logging.getLogger(__name__)


def _parse_time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def sync_networks(mgr) -> None:
    """Make the Network rows mirror ``mgr``'s networks (a ContainerManager): each network,
    its endpoints (the addresses of its running containers) and the containers configured
    on it (running or not). Idempotent."""
    if Network._meta.db_table not in connection.introspection.table_names():
        log.warning("database not migrated: networks not mirrored (run `manage.py migrate`)")
        return
    nm = mgr.networks
    nets = nm.list()
    members: dict[str, list[dict]] = {n.name: [] for n in nets}
    for c in mgr.list(all=True):
        mode = container_network(c.spec)
        names = list(c.networks)
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
    with transaction.atomic():
        for nid, fields in rows:
            Network.objects.update_or_create(network_id=nid, defaults=fields)
        Network.objects.exclude(network_id__in=[nid for nid, _ in rows]).delete()
