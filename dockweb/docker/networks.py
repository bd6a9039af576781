"""Docker's shapes of networks, for every door: ``network inspect``'s NetworkResource as
dockerd 20.10 sends it, ``network ls`` rows and filters (dockerd's daemon/network/filter.go,
docker/cli's formatter/network.go), the prune filters, and a container's NetworkSettings
(container inspect) from the runtime's records and endpoints.

Without Django: the runtime's ``NetworkManager`` gives the networks and their endpoints.
"""

from __future__ import annotations

from dockweb.docker.filters import InvalidFilter, match_labels, regex_match
from dockweb.docker.times import created_at, go_time
from dockweb.docker.times import unix_ns as _unix_ns

# For type checkers only, without importing typing
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockweb.runtime.networks import Endpoint, Network, NetworkManager

NETWORK_TYPE = "*formatter.networkContext"
NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}
LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
PRUNE_FILTERS = ("label", "label!", "until")
PRUNE_WARNING = (
    "WARNING! This will remove all custom networks not used by at least one container.\n"
    "Are you sure you want to continue?"
)


def predefined_create_error(name: str) -> str:
    """dockerd's PredefinedNetworkError (403) for ``network create`` of a predefined name
    (``default`` counts, as runconfig.IsPreDefinedNetwork); "" for any other name."""
    if name in ("bridge", "host", "none", "default"):
        return f"operation is not permitted on predefined {name} network "
    return ""


# -- NetworkResource ------------------------------------------------------------------------


def _ipam_config(net: Network) -> list[dict]:
    if not net.subnet:
        return []
    cfg = {"Subnet": net.subnet}
    if net.ip_range:
        cfg["IPRange"] = net.ip_range
    if net.gateway:
        cfg["Gateway"] = net.gateway
    return [cfg]


def endpoint_resource(net: Network, ep: Endpoint) -> dict:
    """One of a network's ``Containers``: dockerd's EndpointResource."""
    return {
        "Name": ep.name,
        "EndpointID": ep.endpoint_id,
        "MacAddress": ep.mac,
        "IPv4Address": f"{ep.ip}/{net.prefix}" if ep.ip else "",
        "IPv6Address": "",
    }


def network_json(net: Network, endpoints: list[Endpoint] | None = None) -> dict:
    """``network inspect``'s NetworkResource for a runtime network and its endpoints (the
    running containers attached)."""
    predefined = net.predefined
    return {
        "Name": net.name,
        "Id": net.id,
        "Created": go_time(net.created),
        "Scope": "local",
        "Driver": net.driver,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            # docker network create sends its --ipam-opt map (empty); the predefined: null
            "Options": None if predefined else {},
            "Config": _ipam_config(net),
        },
        "Internal": bool(net.internal),
        "Attachable": bool(net.attachable),
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {ep.container_id: endpoint_resource(net, ep) for ep in endpoints or []},
        "Options": dict(net.options or {}),
        "Labels": dict(net.labels or {}),
    }


def network_resources(nm: NetworkManager) -> list[dict]:
    """Every network of the store as dockerd lists them, with their endpoints."""
    return [network_json(n, nm.endpoints(n) if n.subnet else []) for n in nm.list()]


def inspect_network(nm: NetworkManager, ref: str) -> dict:
    """``network inspect REF``; ``NetworkNotFound`` (dockerd's words) when there is none."""
    net = nm.get(ref)
    return network_json(net, nm.endpoints(net) if net.subnet else [])


# -- list filters ---------------------------------------------------------------------------


def check_list_filters(filters: dict[str, list[str]]) -> None:
    """dockerd's validation of ``GET /networks`` filters, in its words."""
    for key in filters:
        if key not in LIST_FILTERS:
            raise InvalidFilter(f"Invalid filter '{key}'")
    for value in filters.get("type", []):
        if value not in ("builtin", "custom"):
            raise InvalidFilter(f"Invalid filter: 'type'='{value}'")
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "1", "false", "0"):
            raise InvalidFilter(f"Invalid filter 'dangling={value}'")


def _builtin(n: dict) -> bool:
    return n["Name"] in ("bridge", "host", "none")


def filter_networks(resources: list[dict], filters: dict[str, list[str]]) -> list[dict]:
    """dockerd's FilterNetworks: driver and scope exact, name and id as regular
    expressions, label (key or key=value), dangling (no container, not predefined) and
    type (builtin or custom)."""
    check_list_filters(filters)
    out = []
    for n in resources:
        if "driver" in filters and n["Driver"] not in filters["driver"]:
            continue
        if "name" in filters and not any(regex_match(p, n["Name"]) for p in filters["name"]):
            continue
        if "id" in filters and not any(regex_match(p, n["Id"]) for p in filters["id"]):
            continue
        if "label" in filters and not match_labels(filters["label"], n.get("Labels")):
            continue
        if "scope" in filters and n["Scope"] not in filters["scope"]:
            continue
        out.append(n)
    if filters.get("dangling"):
        want = filters["dangling"][-1].lower() in ("true", "1")
        out = [n for n in out if (not _builtin(n) and not n["Containers"]) == want]
    if filters.get("type"):
        kinds = set(filters["type"])
        out = [n for n in out if ("builtin" if _builtin(n) else "custom") in kinds]
    return out


def prune_keep(filters: dict[str, list[str]]):
    """The ``keep(net)`` of ``NetworkManager.prune`` for prune's filters (until, label,
    label!), checked as dockerd checks them."""
    from dockweb.runtime.units import TimestampError, get_timestamp

    for key in filters:
        if key not in PRUNE_FILTERS:
            raise InvalidFilter(f"Invalid filter '{key}'")
    until = None
    if filters.get("until"):
        try:
            until = get_timestamp(filters["until"][-1])
        except TimestampError as err:
            raise InvalidFilter(str(err)) from None

    def keep(net: Network) -> bool:
        if until is not None and _unix_ns(go_time(net.created)) / 1e9 >= until:
            return True
        if filters.get("label") and not match_labels(filters["label"], net.labels):
            return True
        if filters.get("label!") and any(
            match_labels([want], net.labels) for want in filters["label!"]
        ):
            return True
        return False

    return keep


# -- network ls rows ------------------------------------------------------------------------


def network_rows(resources: list[dict], *, trunc: bool = True) -> list[dict]:
    """docker/cli's networkContext for each network: what ``network ls --format`` sees,
    sorted by name as docker/cli sorts them."""
    from dockweb.docker.template_funcs import lookup_method

    rows = []
    for n in sorted(resources, key=lambda n: _natural(n["Name"])):
        labels = n.get("Labels") or {}
        row = {
            "ID": n["Id"][:12] if trunc else n["Id"],
            "Name": n["Name"],
            "Driver": n["Driver"],
            "Scope": n["Scope"],
            "IPv6": "true" if n["EnableIPv6"] else "false",
            "Internal": "true" if n["Internal"] else "false",
            "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "CreatedAt": _time_string(n["Created"]),
        }
        row["Label"] = lookup_method(labels)
        rows.append(row)
    return rows


def _time_string(created: str) -> str:
    """Go's time.Time.String() of an RFC 3339 time (docker/cli's CreatedAt): the local
    zone, the fraction of a second without its trailing zeros."""
    from dockweb.runtime.units import go_unix

    text = created_at(go_unix(created))
    frac = created.rstrip("Z").partition(".")[2].rstrip("0")
    if frac.isdigit():
        head, _, zone = text.partition(" +") if " +" in text else text.partition(" -")
        sep = " +" if " +" in text else " -"
        text = f"{head}.{frac}{sep}{zone}"
    return text


def _natural(name: str) -> list:
    """docker/cli's sortorder.NaturalLess: runs of digits compare as numbers."""
    import re

    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p]


# -- a container's NetworkSettings ----------------------------------------------------------


def _blank_endpoint() -> dict:
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": None,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": "",
        "DriverOpts": None,
    }


def _network_names(c: Any, mode: str) -> list[str]:
    networks = getattr(c, "networks", None) or {}
    if isinstance(c, dict):
        networks = c.get("networks") or {}
    if networks or mode not in ("none", "host"):
        return list(networks)  # a bridged mode's networks (none left once disconnected)
    return [mode]


def network_settings(
    c: Any,
    nm: NetworkManager | None,
    *,
    mode: str,
    pid: int,
    ports: dict,
    started: bool,
    sandbox_key: str = "",
) -> dict:
    """NetworkSettings as dockerd 20.10 shows it: an entry per network the container is
    connected to (its endpoint's address, gateway, MAC and aliases while it runs), the
    default bridge's address also at the top level, and the ports."""
    cid = getattr(c, "id", "") if not isinstance(c, dict) else c.get("id", "")
    records = (c.get("networks") if isinstance(c, dict) else getattr(c, "networks", None)) or {}
    eps: dict[str, tuple[Any, Any]] = {}
    if nm is not None and cid and pid:
        for net, ep in nm.container_endpoints(cid):
            eps[net.name] = (net, ep)
    networks: dict[str, dict] = {}
    for name in _network_names(c, mode):
        e = _blank_endpoint()
        cfg = records.get(name) or {}
        if cfg.get("ipv4"):
            e["IPAMConfig"] = {"IPv4Address": cfg["ipv4"]}
        aliases = list(cfg.get("aliases") or [])
        if name in eps:
            net, ep = eps[name]
            e.update(
                Aliases=list(ep.aliases) or None,
                NetworkID=net.id,
                EndpointID=ep.endpoint_id,
                Gateway=net.gateway,
                IPAddress=ep.ip,
                IPPrefixLen=net.prefix,
                MacAddress=ep.mac,
            )
        else:
            if aliases:
                e["Aliases"] = aliases
            if started and nm is not None:
                try:
                    e["NetworkID"] = nm.get(name).id
                except Exception:  # a network removed since: dockerd shows it without
                    pass
        networks[name] = e
    top = networks.get("bridge") if "bridge" in eps else None
    return {
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SandboxKey": sandbox_key,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": top["EndpointID"] if top else "",
        "Gateway": top["Gateway"] if top else "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top["IPAddress"] if top else "",
        "IPPrefixLen": top["IPPrefixLen"] if top else 0,
        "IPv6Gateway": "",
        "MacAddress": top["MacAddress"] if top else "",
        "Networks": networks,
    }
