"""Networks as dockerd keeps them: the three predefined ones (``bridge``, ``host``, ``none``)
and user-defined bridge networks, with their address management (IPAM) and endpoints.

This module is the records only: ``<root>/networks/<id>.json`` for a user-defined network,
``<root>/networks/<id>/endpoints/<container id>.json`` for each running container attached
to it (its address, MAC address and aliases; the embedded DNS answers from these). The
kernel side (namespaces, bridges, veth pairs, the user-mode forwarder) is
``dockweb.runtime.netns``.

Like dockerd, a stopped container holds no endpoint and no address: a network is in use
(``rm`` refused, ``prune`` keeps it) while a running container is attached. Every change of
the records is made under ``networks/.lock``; files are replaced whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from dockweb.runtime import events
from dockweb.runtime.errors import Conflict, DockwebError, InvalidArgument, NotFound
from dockweb.runtime.netns import NetNamespaces, run_dir

# name -> driver, as dockerd lists them
PREDEFINED = {"bridge": "bridge", "host": "host", "none": "null"}
# the default bridge's addresses, as dockerd's defaults (docker0)
BRIDGE_SUBNET = "172.17.0.0/16"
BRIDGE_GATEWAY = "172.17.0.1"
# dockerd's default address pools for new networks: 172.18-31.0.0/16, then 192.168.x.0/20
_POOLS = [f"172.{n}.0.0/16" for n in range(18, 32)] + [
    f"192.168.{n}.0/20" for n in range(0, 256, 16)
]
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class NetworkError(DockwebError):
    """A network operation refused, with dockerd's words."""


class NetworkNotFound(NetworkError, NotFound):
    """``network X not found``."""


class NetworkConflict(NetworkError, Conflict):
    """A name taken, a network in use, an address taken."""


class InvalidNetwork(NetworkError, InvalidArgument):
    """A create or connect option dockerd refuses."""


def network_id(root: str, name: str) -> str:
    """A predefined network's ID: 64 hex, the same for a store every time."""
    return hashlib.sha256(f"dockweb-network:{os.path.abspath(root)}:{name}".encode()).hexdigest()


def container_network(spec) -> str:
    """The network mode a container's spec puts it in: ``bridge``, ``none``, ``host``,
    ``container:<id>`` or a user-defined network's name (``default`` is ``bridge``)."""
    name = getattr(spec, "network", "") or "bridge"
    return "bridge" if name == "default" else name


def is_user_defined(mode: str) -> bool:
    return mode not in PREDEFINED and not mode.startswith("container:")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def mac_for(ip: str) -> str:
    """dockerd 20.10's MAC address for an IPv4 address: 02:42 and the address's bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


@dataclass
class Network:
    """One network. ``subnet``/``gateway`` are empty for ``host`` and ``none``."""

    id: str
    name: str
    driver: str = "bridge"
    created: str = ""
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def prefix(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen if self.subnet else 0

    @property
    def bridge_name(self) -> str:
        """The bridge's interface name in dockweb's network namespace (15 bytes at most)."""
        return "dockweb0" if self.name == "bridge" else f"br-{self.id[:12]}"


@dataclass
class Endpoint:
    """A running container's attachment to a network."""

    container_id: str
    name: str  # the container's name, without "/"
    network_id: str
    ip: str  # without prefix
    mac: str
    aliases: list[str] = field(default_factory=list)
    ifname: str = "eth0"  # inside the container
    host_ifname: str = ""  # the bridge's side, in dockweb's namespace
    endpoint_id: str = ""


_lock_state = threading.local()


def _held_locks() -> dict[str, int]:
    """The networks' locks this thread holds: lock file -> pid of the holder."""
    held = getattr(_lock_state, "held", None)
    if held is None:
        held = _lock_state.held = {}
    return held


class NetworkManager:
    """The networks of one store (``root``)."""

    def __init__(self, root: str):
        self.root = root
        self.dir = os.path.join(root, "networks")
        os.makedirs(self.dir, exist_ok=True)
        self.netns = NetNamespaces(run_dir(root))

    # -- locking and files ------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The networks' lock (an flock on ``networks/.lock``), re-entrant within a thread:
        a thread already holding it goes on (a second flock on another descriptor would wait
        for the first forever, e.g. reconcile loading a container whose supervisor just died,
        which detaches its networks under this lock). Other threads and processes wait."""
        path = os.path.join(self.dir, ".lock")
        held = _held_locks()
        if held.get(path) == os.getpid():
            yield
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held[path] = os.getpid()  # the pid: a forked child holds nothing of its own
            try:
                yield
            finally:
                del held[path]
        finally:
            os.close(fd)

    def _write(self, path: str, value: dict, *, durable: bool = True) -> None:
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(3)}.tmp"
        with open(tmp, "w") as f:
            json.dump(value, f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)

    # -- networks ---------------------------------------------------------------------------

    def _predefined(self, name: str) -> Network:
        n = Network(id=network_id(self.root, name), name=name, driver=PREDEFINED[name])
        if name == "bridge":
            n.subnet, n.gateway = BRIDGE_SUBNET, BRIDGE_GATEWAY
            n.options = {
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                "com.docker.network.bridge.name": "dockweb0",
                "com.docker.network.driver.mtu": "1500",
            }
        n.created = self._store_created()
        return n

    def _store_created(self) -> str:
        try:
            st = os.stat(self.dir)
        except OSError:
            return ""
        return datetime.fromtimestamp(st.st_ctime, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _user_networks(self) -> list[Network]:
        out = []
        for n in sorted(os.listdir(self.dir)):
            if not n.endswith(".json") or len(n) != 69:
                continue
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, TypeError):
                with open(os.path.join(self.dir, n)) as f:
                    out.append(Network(**json.load(f)))
        return out

    def list(self) -> list[Network]:
        """The predefined networks, then the user-defined ones by creation."""
        users = sorted(self._user_networks(), key=lambda n: n.created)
        return [self._predefined(n) for n in PREDEFINED] + users

    def get(self, ref: str) -> Network:
        """By full name, full ID, or unique ID prefix (dockerd's order)."""
        if ref in PREDEFINED:
            return self._predefined(ref)
        nets = self.list()
        for n in nets:
            if n.name == ref:
                return n
        for n in nets:
            if n.id == ref:
                return n
        if ref and re.fullmatch(r"[0-9a-f]+", ref):
            found = [n for n in nets if n.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise NetworkNotFound(f"network {ref} is ambiguous ({len(found)} matches found)")
        raise NetworkNotFound(f"network {ref} not found")

    def create(
        self,
        name: str,
        *,
        driver: str = "bridge",
        subnet: str = "",
        gateway: str = "",
        ip_range: str = "",
        internal: bool = False,
        attachable: bool = False,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> Network:
        """``docker network create``: a bridge network with dockerd's checks and words."""
        if not name or not NAME.match(name):
            raise InvalidNetwork(
                f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                if name
                else "network name is required"
            )
        driver = driver or "bridge"
        if driver in ("host", "null"):
            raise InvalidNetwork(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise InvalidNetwork(
                f'plugin "{driver}" not found'
                if driver != "overlay"
                else 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm'
                ' join" to connect this node to swarm and try again.'
            )
        with self.locked():
            existing = self.list()
            if any(n.name == name for n in existing):
                raise NetworkConflict(f"network with name {name} already exists")
            net = self._address(existing, subnet, gateway, ip_range)
            net.id = secrets.token_hex(32)
            net.name = name
            net.created = _now()
            net.internal = bool(internal)
            net.attachable = bool(attachable)
            net.labels = dict(labels or {})
            net.options = dict(options or {})
            self._write(os.path.join(self.dir, f"{net.id}.json"), asdict(net))
        events.network(self.root, "create", net.id, name, "bridge")
        return net

    def _address(self, existing: list[Network], subnet: str, gateway: str, ip_range: str):
        taken = [ipaddress.ip_network(n.subnet) for n in existing if n.subnet]
        if subnet:
            try:
                sub = ipaddress.ip_network(subnet, strict=False)
            except ValueError:
                raise InvalidNetwork(f"invalid CIDR address: {subnet}") from None
            if sub.version != 4:
                raise InvalidNetwork("IPv6 subnets are not supported by dockweb's networks")
            if sub.prefixlen > 30:
                raise InvalidNetwork(f"subnet {subnet} is too small for a network")
            if any(sub.overlaps(t) for t in taken):
                raise NetworkConflict("Pool overlaps with other one on this address space")
        else:
            if gateway or ip_range:
                raise InvalidNetwork("ip-range and gateway need a subnet (--subnet)")
            sub = next(
                (
                    ipaddress.ip_network(p)
                    for p in _POOLS
                    if not any(ipaddress.ip_network(p).overlaps(t) for t in taken)
                ),
                None,
            )
            if sub is None:
                raise NetworkConflict(
                    "could not find an available, non-overlapping IPv4 address pool among "
                    "the defaults to assign to the network"
                )
        rng = ""
        if ip_range:
            try:
                r = ipaddress.ip_network(ip_range, strict=False)
            except ValueError:
                raise InvalidNetwork(f"invalid CIDR address: {ip_range}") from None
            if not r.subnet_of(sub):
                raise InvalidNetwork(f"no matching subnet for range {ip_range}")
            rng = str(r)
        if gateway:
            try:
                gw = ipaddress.ip_address(gateway)
            except ValueError:
                raise InvalidNetwork(f"invalid gateway address {gateway}") from None
            if gw not in sub:
                raise InvalidNetwork(f"no matching subnet for gateway {gateway}")
        else:
            gw = next(sub.hosts())
        return Network(id="", name="", subnet=str(sub), gateway=str(gw), ip_range=rng)

    def remove(self, ref: str) -> Network:
        """``docker network rm``: refused for the predefined networks and while in use."""
        with self.locked():
            net = self.get(ref)
            if net.predefined:
                raise NetworkConflict(f"{net.name} is a pre-defined network and cannot be removed")
            if self.endpoints(net):
                raise NetworkConflict(
                    f"error while removing network: network {net.name} id {net.id} has "
                    "active endpoints"
                )
            os.unlink(os.path.join(self.dir, f"{net.id}.json"))
            self.netns.remove_bridge(net)  # a later network may take its subnet
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(os.path.join(self.dir, net.id))
        events.network(self.root, "destroy", net.id, net.name, "bridge")
        return net

    def prune_candidates(self, keep=None) -> list[Network]:
        """The user-defined networks ``prune`` would remove: no endpoint, ``keep(net)``
        false."""
        return [
            n for n in self._user_networks() if not self.endpoints(n) and not (keep and keep(n))
        ]

    def prune(self, keep=None) -> list[Network]:
        """``docker network prune``: every user-defined network with no endpoint (and
        ``keep(net)`` false). Returns the removed networks."""
        out = []
        for n in self.prune_candidates(keep):
            with contextlib.suppress(NetworkNotFound, NetworkConflict):
                out.append(self.remove(n.id))
        return out

    # -- endpoints and addresses ------------------------------------------------------------

    def _edir(self, net: Network) -> str:
        return os.path.join(self.dir, net.id, "endpoints")

    def endpoints(self, net: Network) -> list[Endpoint]:
        d = self._edir(net)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return []
        out = []
        for n in sorted(names):
            if not n.endswith(".json"):
                continue
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, TypeError):
                with open(os.path.join(d, n)) as f:
                    out.append(Endpoint(**json.load(f)))
        return out

    def endpoint(self, net: Network, cid: str) -> Endpoint | None:
        try:
            with open(os.path.join(self._edir(net), f"{cid}.json")) as f:
                return Endpoint(**json.load(f))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def container_endpoints(self, cid: str) -> list[tuple[Network, Endpoint]]:
        """Every network ``cid`` holds an endpoint on."""
        out = []
        for net in self.list():
            if net.subnet:
                ep = self.endpoint(net, cid)
                if ep is not None:
                    out.append((net, ep))
        return out

    def allocate(
        self,
        net: Network,
        cid: str,
        name: str,
        *,
        ip: str = "",
        aliases=(),
        ifname="eth0",
        host_ifname: str = "",
    ) -> Endpoint:
        """Reserve an address on ``net`` for ``cid`` (``ip`` if asked, else the lowest free
        one) and record the endpoint. Call with :meth:`locked` held."""
        if self.endpoint(net, cid) is not None:
            raise NetworkConflict(f"endpoint with name {name} already exists in network {net.name}")
        sub = ipaddress.ip_network(net.subnet)
        used = {e.ip for e in self.endpoints(net)} | {net.gateway}
        if ip:
            try:
                want = ipaddress.ip_address(ip)
            except ValueError:
                raise InvalidNetwork(f"invalid IPv4 address: {ip}") from None
            if want not in sub or want in (sub.network_address, sub.broadcast_address):
                raise InvalidNetwork(
                    f"Invalid address {ip}: It does not belong to any of this network's subnets"
                )
            if str(want) in used:
                raise NetworkConflict("Address already in use")
            addr = str(want)
        else:
            pool = ipaddress.ip_network(net.ip_range) if net.ip_range else sub
            addr = next((str(h) for h in pool.hosts() if str(h) not in used), "")
            if not addr:
                raise NetworkConflict(
                    f"no available IPv4 addresses on this network's address pools: "
                    f"{net.name} ({net.id})"
                )
        ep = Endpoint(
            container_id=cid,
            name=name,
            network_id=net.id,
            ip=addr,
            mac=mac_for(addr),
            aliases=list(aliases),
            ifname=ifname,
            host_ifname=host_ifname or f"veth{secrets.token_hex(4)[:7]}",
            endpoint_id=secrets.token_hex(32),
        )
        os.makedirs(self._edir(net), exist_ok=True)
        # not fsync'd: an endpoint lives as long as its container's processes, which a power
        # cut ends too (reconcile frees what is left)
        self._write(os.path.join(self._edir(net), f"{cid}.json"), asdict(ep), durable=False)
        return ep

    def release(self, net: Network, cid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self._edir(net), f"{cid}.json"))

    def all_endpoints(self) -> list[tuple[Network, Endpoint]]:
        out = []
        for net in self.list():
            if net.subnet:
                out.extend((net, e) for e in self.endpoints(net))
        return out
