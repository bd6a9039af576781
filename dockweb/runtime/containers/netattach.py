"""Containers on networks: the checks of a network mode at create, the attachment of a
starting container (its namespace, an address and a veth per network) and its detachment
when it ends, ``network connect``/``disconnect``, and the names its embedded DNS answers.

A container's ``networks`` (in its record) say which bridge networks it is connected to and
what it asked there (aliases, a fixed address). Its endpoints (``NetworkManager``) exist
while it runs. The supervisor calls :meth:`attach_networks` before the container's process
runs and :meth:`detach_networks` after it ends; reconcile calls the latter for a supervisor
that died.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from dockweb.runtime import events
from dockweb.runtime.containers.state import Container, Status
from dockweb.runtime.crashpoint import crashpoint
from dockweb.runtime.errors import ContainerNotFound, InvalidContainerSpec
from dockweb.runtime.netns import NetNamespaces
from dockweb.runtime.networks import (
    PREDEFINED,
    Endpoint,
    InvalidNetwork,
    Network,
    NetworkConflict,
    NetworkManager,
    NetworkNotFound,
    container_network,
    is_user_defined,
)


def bridged(mode: str) -> bool:
    """Whether the mode gives the container a namespace of its own with interfaces on
    bridges (``bridge`` or a user-defined network)."""
    return mode not in ("none", "host") and not mode.startswith("container:")


class NetAttachMixin:
    """``ContainerManager``'s networking."""

    networks: NetworkManager
    netns: NetNamespaces

    # -- create -----------------------------------------------------------------------------

    def _check_network(self, spec) -> dict[str, dict]:
        """The checks dockerd makes of ``--network`` and its options at create, with its
        words; the record's ``networks``."""
        if not spec.network_mode:
            spec.network_mode = spec.network or "default"
        mode = container_network(spec)
        spec.network = mode
        if mode.startswith("container:"):
            if spec.hostname:
                raise InvalidContainerSpec("conflicting options: hostname and the network mode")
            if spec.ports or spec.publish_all:
                raise InvalidContainerSpec(
                    "conflicting options: port publishing and the container type network mode"
                )
            if spec.dns or spec.dns_search or spec.dns_options:
                raise InvalidContainerSpec("conflicting options: dns and the network mode")
            if spec.extra_hosts:
                raise InvalidContainerSpec(
                    "conflicting options: custom host-to-IP mapping and the network mode"
                )
            self.get(mode.split(":", 1)[1])  # No such container: X
            return {}
        if mode in ("none", "host"):
            if spec.network_aliases:
                raise InvalidContainerSpec(
                    "network-scoped alias is supported only for containers in user defined networks"
                )
            if spec.ipv4:
                raise InvalidContainerSpec(
                    "user specified IP address is supported on user defined networks only"
                )
            return {}
        net = self.networks.get(mode)  # network X not found
        if not is_user_defined(net.name):
            if spec.network_aliases:
                raise InvalidContainerSpec(
                    "network-scoped alias is supported only for containers in user defined networks"
                )
            if spec.ipv4:
                raise InvalidContainerSpec(
                    "user specified IP address is supported on user defined networks only"
                )
        elif spec.ipv4:
            import ipaddress

            try:
                ok = ipaddress.ip_address(spec.ipv4) in ipaddress.ip_network(net.subnet)
            except ValueError:
                ok = False
            if not ok:
                raise InvalidContainerSpec(
                    f"Invalid address {spec.ipv4}: It does not belong to any of this network's "
                    "subnets"
                )
        spec.network = net.name
        return {net.name: {"aliases": list(spec.network_aliases), "ipv4": spec.ipv4}}

    def _publish_exposed(self, spec, cfg: dict) -> None:
        """``-P``: each port the image exposes, not published already, on a random host
        port."""
        if container_network(spec) == "host":
            return
        have = {(p["container_port"], p.get("proto", "tcp")) for p in spec.ports}
        for key in sorted((cfg.get("ExposedPorts") or {}), key=str):
            port, _, proto = key.partition("/")
            with contextlib.suppress(ValueError):
                if (int(port), proto or "tcp") not in have:
                    spec.ports.append(
                        {
                            "container_port": int(port),
                            "proto": proto or "tcp",
                            "host_ip": "",
                            "host_port": 0,
                        }
                    )

    # -- start and end ----------------------------------------------------------------------

    def netns_path(self, c: Container) -> str:
        """The network namespace the container's process joins ("" for its runtime's new
        one: ``none``; the host's: ``host``)."""
        mode = container_network(c.spec)
        if bridged(mode):
            return self.netns.path(c.id)
        if mode.startswith("container:"):
            other = self.get(mode.split(":", 1)[1])
            if other.status is not Status.RUNNING and other.status is not Status.PAUSED:
                raise InvalidContainerSpec(
                    f"cannot join network of a non running container: {other.id}"
                )
            if bridged(container_network(other.spec)):
                return self.netns.path(other.id)
            return f"/proc/{other.state.pid}/ns/net"
        return ""

    def attach_networks(self, c: Container) -> list[tuple[Network, Endpoint]]:
        """Before the process runs: its namespace, then an endpoint on each of its networks
        (the first one's gateway its default route). On failure nothing is left."""
        if not bridged(container_network(c.spec)):
            return []
        path = self.netns.path(c.id)
        out: list[tuple[Network, Endpoint]] = []
        with self.networks.locked():
            try:
                self._release_all(c.id)  # a crash's leftovers
                with contextlib.suppress(OSError, ValueError, KeyError):
                    # its name now: a rename since ``c`` was read renames endpoints under
                    # this lock, after its record is written
                    with open(os.path.join(self.cdir(c.id), "container.json")) as f:
                        c.name = json.load(f)["name"]
                self.netns.create(path)
                crashpoint("network.attach.netns")
                for i, (name, cfg) in enumerate(c.networks.items()):
                    net = self.networks.get(name)
                    out.append((net, self._plug(c, net, cfg, f"eth{i}", default=not out)))
            except BaseException:
                self._release_all(c.id)
                raise
        return out

    def _plug(self, c: Container, net: Network, cfg: dict, ifname: str, *, default: bool):
        aliases = list(cfg.get("aliases") or [])
        if is_user_defined(net.name):
            aliases = aliases + [c.id[:12]]  # dockerd adds the short ID as an alias
        self.netns.ensure_infra(self.networks.get("bridge").gateway)
        self.netns.ensure_bridge(net)
        ep = self.networks.allocate(
            net, c.id, c.name, ip=cfg.get("ipv4") or "", aliases=aliases, ifname=ifname
        )
        crashpoint("network.attach.endpoint")
        try:
            self.netns.plug(
                net, ep, self.netns.path(c.id), default_route=default and not net.internal
            )
        except BaseException:
            self.networks.release(net, c.id)
            raise
        crashpoint("network.attach.plugged")
        return ep

    def detach_networks(self, cid: str) -> None:
        """After the process ended: the endpoints released, the namespace removed, and
        dockweb's namespace too once nothing is attached."""
        with self.networks.locked():
            self._release_all(cid)

    def _release_all(self, cid: str) -> None:
        for net, ep in self.networks.container_endpoints(cid):
            self.netns.unplug(ep)
            self.networks.release(net, cid)
        crashpoint("network.detach.released")
        self.netns.destroy(self.netns.path(cid))
        if not self.networks.all_endpoints():
            self.netns.teardown_infra()

    # -- connect and disconnect -------------------------------------------------------------

    def connect(self, ref: str, network: str, *, aliases=(), ip: str = "") -> Container:
        """``docker network connect``: recorded; plugged at once if the container runs."""
        net = self.networks.get(network)
        c = self.get(ref)
        mode = container_network(c.spec)
        if net.name == "host" or mode == "host":
            raise InvalidNetwork(
                "container cannot be disconnected from host network or connected to host network"
            )
        if net.name == "none" or mode == "none" or mode.startswith("container:"):
            raise InvalidNetwork(
                "container cannot be connected to multiple networks with one of the "
                "networks in private (none) mode"
                if net.name == "none" or mode == "none"
                else "container sharing network namespace with another container or host "
                "cannot be connected to any other network"
            )
        if net.name in c.networks:
            raise NetworkConflict(
                f"endpoint with name {c.name} already exists in network {net.name}"
            )
        if not is_user_defined(net.name) and (aliases or ip):
            raise InvalidNetwork(
                "network-scoped alias is supported only for containers in user defined networks"
                if aliases
                else "user specified IP address is supported on user defined networks only"
            )
        with self.store.locked():
            c = self.get(ref)
            c.networks[net.name] = {"aliases": list(aliases), "ipv4": ip}
            if c.status in (Status.RUNNING, Status.PAUSED):
                with self.networks.locked():
                    self._plug(c, net, c.networks[net.name], self._next_ifname(c.id), default=False)
                    self._add_host_entry(c)
                crashpoint("network.connect.plugged")
            self._write_record(c)
        events.network(self.root, "connect", net.id, net.name, net.driver, container=c.id)
        return c

    def _next_ifname(self, cid: str) -> str:
        used = {ep.ifname for _, ep in self.networks.container_endpoints(cid)}
        return next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)

    def disconnect(self, ref: str, network: str, *, force: bool = False) -> Container:
        """``docker network disconnect``."""
        net = self.networks.get(network)
        try:
            c = self.get(ref)
        except ContainerNotFound:
            if not force:
                raise
            # -f: an endpoint of a container that is gone
            with self.networks.locked():
                for n, ep in self.networks.container_endpoints(ref):
                    if n.id == net.id:
                        self.netns.unplug(ep)
                        self.networks.release(n, ref)
            return None
        if net.name == "host" or container_network(c.spec) == "host":
            raise InvalidNetwork(
                "container cannot be disconnected from host network or connected to host network"
            )
        if net.name not in c.networks:
            raise InvalidNetwork(f"container {c.id} is not connected to network {net.name}")
        with self.store.locked():
            c = self.get(ref)
            c.networks.pop(net.name, None)
            if container_network(c.spec) == net.name and c.networks:
                # the mode named a network it has left: the next one, as dockerd's. Left
                # with none, it keeps its mode (a namespace of its own, no network yet), as
                # dockerd keeps HostConfig.NetworkMode: compose disconnects a created
                # container from its network and connects it again before it starts
                c.spec.network = next(iter(c.networks))
            # the record first: an endpoint its record does not name is reconcile's to free
            self._write_record(c)
            crashpoint("network.disconnect.recorded")
            with self.networks.locked():
                ep = self.networks.endpoint(net, c.id)
                if ep is not None:
                    self.netns.unplug(ep)
                    self.networks.release(net, c.id)
        events.network(self.root, "disconnect", net.id, net.name, net.driver, container=c.id)
        return c

    def _add_host_entry(self, c: Container) -> None:
        """/etc/hosts: the container's own address on each network, as dockerd writes it."""
        path = os.path.join(self.cdir(c.id), "hosts")
        eps = self.networks.container_endpoints(c.id)
        with contextlib.suppress(OSError):
            with open(path) as f:
                lines = f.read().splitlines()
            mine = {ep.ip for _, ep in eps}
            lines = [ln for ln in lines if not (ln.split("\t")[:1] and ln.split("\t")[0] in mine)]
            lines += [f"{ep.ip}\t{c.hostname}" for _, ep in eps]
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")

    # -- names ------------------------------------------------------------------------------

    def dns_names(self, cid: str):
        """The ``resolve`` and ``reverse`` functions of the container's embedded DNS: the
        names on its user-defined networks (container names, aliases, short IDs)."""
        nm = self.networks
        cache: dict = {}

        def stamp(ids) -> tuple[int, ...]:
            # records are replaced whole or removed, never written in place: a change
            # changes its directory's mtime
            out = [os.stat(nm.dir).st_mtime_ns]
            for net_id in ids:
                try:
                    out.append(os.stat(os.path.join(nm.dir, net_id, "endpoints")).st_mtime_ns)
                except FileNotFoundError:
                    out.append(0)
            return tuple(out)

        def table() -> list[tuple[Network, list]]:
            """The container's user-defined networks and their endpoints, read again only
            when a records directory changed (a flood of queries reads no file)."""
            with contextlib.suppress(OSError):
                if cache and stamp(cache["ids"]) == cache["key"]:
                    return cache["table"]
            cache.clear()
            now = time.time_ns()
            try:
                top = os.stat(nm.dir).st_mtime_ns
                ids = sorted(
                    n[:-5] for n in os.listdir(nm.dir) if n.endswith(".json") and len(n) == 69
                )
                key = (top, *stamp(ids)[1:])
            except OSError:
                key = None
            out = [
                (net, nm.endpoints(net))
                for net, _ep in nm.container_endpoints(cid)
                if is_user_defined(net.name)
            ]
            # kept only once the directories have been still for a second: a change within
            # the same tick of the file system's clock as the last one keeps its mtime
            if key is not None and all(now - m > 1_000_000_000 for m in key):
                cache.update(ids=ids, key=key, table=out)
            return out

        def resolve(name: str) -> list[str] | None:
            # as libnetwork: "a.b.c" is a name on any of its networks, else "a.b" on a
            # network named "c", else "a" on a network named "b.c"
            networks = table()
            tries, head = [(name, None)], name
            while "." in head:
                head = head[: head.rindex(".")]
                tries.append((head, name[len(head) + 1 :]))
            for want, network in tries:
                ips = []
                for net, eps in networks:
                    if network is not None and network != net.name.lower():
                        continue
                    for ep in eps:
                        if want == ep.name.lower() or want in (a.lower() for a in ep.aliases):
                            ips.append(ep.ip)
                if ips:
                    return ips
            return None

        def reverse(ip: str) -> str | None:
            for net, eps in table():
                for ep in eps:
                    if ep.ip == ip:
                        return f"{ep.name}.{net.name}"
            return None

        return resolve, reverse

    def dns_upstreams(self, c: Container) -> tuple[list[str], set[str]]:
        """The servers the container's embedded DNS forwards to, and those of them dialled
        from the host's namespace. As libnetwork: ``--dns`` servers, else the host's
        resolv.conf's, are dialled from inside the container's namespace (its routes, its
        network's isolation; ``--dns 127.0.0.1`` is its own loopback); only the host's own
        loopback resolvers are dialled from the host's, and not for a container on
        ``--internal`` networks only."""
        from dockweb.runtime.dns import host_nameservers, is_loopback

        if c.spec.dns:
            return list(c.spec.dns), set()
        servers = host_nameservers()
        if not any(not net.internal for net, _ in self.networks.container_endpoints(c.id)):
            return [s for s in servers if not is_loopback(s)], set()
        return servers, {s for s in servers if is_loopback(s)}

    def _rename_endpoints(self, cid: str, name: str) -> None:
        """``rename``: the running container's endpoints take its new name (the embedded
        DNS answers from them), as dockerd renames its sandbox's endpoints. Called after
        the record is written: an attach that read the old name holds the lock until its
        endpoints are written, and is rewritten here after."""
        from dataclasses import asdict

        nm = self.networks
        with nm.locked():
            for net, ep in nm.container_endpoints(cid):
                if ep.name != name:
                    ep.name = name
                    nm._write(os.path.join(nm._edir(net), f"{cid}.json"), asdict(ep), durable=False)

    def network_events(self, c: Container, action: str) -> None:
        """dockerd's connect/disconnect events of a start or an end, one per network."""
        mode = container_network(c.spec)
        if bridged(mode):
            names = list(c.networks)
        elif mode in PREDEFINED:
            names = [mode]
        else:
            names = []
        for name in names:
            with contextlib.suppress(NetworkNotFound):
                net = self.networks.get(name)
                events.network(self.root, action, net.id, net.name, net.driver, container=c.id)
