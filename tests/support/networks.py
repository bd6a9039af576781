"""The rows the network pages' tests read (the database mirror, no runtime): the three
predefined networks, an ``appnet`` with one container attached and one stopped member, and
the containers' rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

PREDEFINED = (("bridge", "bridge"), ("host", "host"), ("none", "null"))


def make_networks(
    network_id: str,
    *,
    web: str,
    old: str,
    subnet: str,
    ip: str,
    mac: str,
    aliases: list[str],
    **fields: Any,
):
    """bridge (172.17.0.0/16), host and none, then ``appnet`` (ID ``network_id``, internal,
    label tier=back) on ``subnet`` (``.1`` its gateway, a /24): the container ``web`` (an
    ID) attached at ``ip`` with ``mac`` and ``aliases``, ``old`` a member without an
    endpoint; ``fields`` add to appnet's row (``ip_range``, ``created`` ...). Its row."""
    from networks.models import Network

    for i, (name, driver) in enumerate(PREDEFINED):
        Network.objects.create(
            network_id=f"{i:02d}" * 32,
            name=name,
            driver=driver,
            position=i,
            subnet="172.17.0.0/16" if name == "bridge" else "",
            gateway="172.17.0.1" if name == "bridge" else "",
        )
    base, _, prefix = subnet.rpartition("/")
    return Network.objects.create(
        network_id=network_id,
        name="appnet",
        position=3,
        subnet=subnet,
        gateway=base.rsplit(".", 1)[0] + ".1",
        internal=True,
        labels={"tier": "back"},
        endpoints=[
            {
                "container_id": web,
                "name": "web",
                "ip": ip,
                "prefix": int(prefix),
                "mac": mac,
                "aliases": aliases,
                "ifname": "eth0",
            }
        ],
        members=[
            {"container_id": web, "name": "web", "aliases": ["db"], "ipv4": ""},
            {"container_id": old, "name": "old", "aliases": [], "ipv4": ""},
        ],
        **fields,
    )


def make_container(
    cid: str, name: str, status: str = "running", *, network: str = "appnet", **fields: Any
):
    """A busybox container's row (``sh``), made three minutes ago and started five seconds
    ago (unless only ``created``) on ``network``; ``fields`` add to the row, and a given
    ``inspect`` to the row's ``Id`` and ``Name``."""
    from django.utils import timezone

    from containers.models import Container

    now = timezone.now()
    inspect = {"Id": cid, "Name": "/" + name, **fields.pop("inspect", {})}
    return Container.objects.create(
        container_id=cid,
        name=name,
        image="busybox",
        path="sh",
        args=[],
        status=status,
        created=now - timedelta(minutes=3),
        network=network,
        started_at=None if status == "created" else now - timedelta(seconds=5),
        inspect=inspect,
        **fields,
    )
