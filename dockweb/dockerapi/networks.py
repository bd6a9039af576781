"""Engine API: networks. dockweb has dockerd's three predefined networks and no others: a
container runs in its own network namespace with only a loopback (``none``; ``bridge`` is
taken as that) or in the host's (``host``). They are listed and inspected as dockerd shows
them, with IDs stable for a store; creating, removing, connecting and disconnecting are
refused with dockerd's words for the predefined networks, or a 400 that names what dockweb
does not support."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from dockweb.docker.filters import regex_match
from dockweb.dockerapi.http import ApiError, Json, Request, bad_request, unsupported
from dockweb.dockerapi.router import Routes
from dockweb.runtime.networks import container_network, network_id

routes = Routes()

# name -> (driver, Options)
PREDEFINED = {
    "bridge": (
        "bridge",
        {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": "docker0",
            "com.docker.network.driver.mtu": "1500",
        },
    ),
    "host": ("host", {}),
    "none": ("null", {}),
}
NETWORK_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")

# as dockerd's: the predefined networks are made when the engine starts
_STARTED_NS = time.time_ns()


def _created() -> str:
    secs, nanos = divmod(_STARTED_NS, 1_000_000_000)
    stamp = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def _root() -> str:
    from dockweb.engine import get_store

    return get_store().root


def _resource(root: str, name: str, containers: dict | None = None) -> dict:
    driver, options = PREDEFINED[name]
    return {
        "Name": name,
        "Id": network_id(root, name),
        "Created": _created(),
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers or {},
        "Options": dict(options),
        "Labels": {},
    }


def _find(root: str, ref: str) -> str:
    """The predefined network's name for a full ID, a name or an ID prefix (dockerd's
    FindNetwork); 404 in dockerd's words."""
    if ref in PREDEFINED:
        return ref
    ids = {network_id(root, n): n for n in PREDEFINED}
    if ref in ids:
        return ids[ref]
    found = [n for i, n in ids.items() if ref and i.startswith(ref)]
    if len(found) == 1:
        return found[0]
    raise ApiError(404, f"network {ref} not found")


def _attached(name: str) -> dict:
    """The running containers in the network, as dockerd's EndpointResource."""
    from dockweb.engine import get_manager

    out = {}
    for c in get_manager().list():
        if container_network(c.spec) == name:
            out[c.id] = {
                "Name": c.name,
                "EndpointID": "",
                "MacAddress": "",
                "IPv4Address": "",
                "IPv6Address": "",
            }
    return out


@routes.get("/networks")
def network_list(req: Request) -> Json:
    filters = req.qfilters()
    for key in filters:
        if key not in NETWORK_FILTERS:
            raise bad_request(f"Invalid filter '{key}'")
    for value in filters.get("type", []):
        if value not in ("builtin", "custom"):
            raise bad_request(f"Invalid filter: 'type'='{value}'")
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "1", "false", "0"):
            raise bad_request(f"Invalid filter 'dangling={value}'")
    root = _root()
    out = []
    for name in PREDEFINED:
        net = _resource(root, name)
        if "name" in filters and not any(regex_match(p, name) for p in filters["name"]):
            continue
        if "id" in filters and not any(regex_match(p, net["Id"]) for p in filters["id"]):
            continue
        if "driver" in filters and net["Driver"] not in filters["driver"]:
            continue
        if "scope" in filters and "local" not in filters["scope"]:
            continue
        if "type" in filters and "builtin" not in filters["type"]:
            continue
        if "label" in filters:
            continue  # the predefined networks have no labels
        if "dangling" in filters and filters["dangling"][-1].lower() in ("true", "1"):
            continue  # dockerd never counts a predefined network as dangling
        out.append(net)
    return Json(out)


@routes.get("/networks/{id}")
def network_inspect(req: Request) -> Json:
    root = _root()
    name = _find(root, req.params["id"])
    scope = req.q("scope", "")
    if scope and scope != "local":
        raise ApiError(404, f"network {req.params['id']} not found")
    return Json(_resource(root, name, _attached(name)))


@routes.post("/networks/create", audit="network.create")
def network_create(req: Request) -> Json:
    body = req.json({}) or {}
    name = body.get("Name", "") if isinstance(body, dict) else ""
    if name in PREDEFINED:
        raise ApiError(403, f"{name} is a pre-defined network and cannot be created")
    if not name:
        raise bad_request("network name is required")  # not reached by docker clients
    raise unsupported(
        f"creating networks ({name}): a container has its own loopback "
        "(--network none) or the host's (--network host)"
    )


@routes.delete("/networks/{id}", audit="network.remove", target="id")
def network_remove(req: Request) -> Json:
    name = _find(_root(), req.params["id"])
    raise ApiError(403, f"{name} is a pre-defined network and cannot be removed")


def _connection(req: Request, verb: str) -> ApiError:
    name = _find(_root(), req.params["id"])
    return unsupported(
        f"{verb} a container to or from a network ({name}): a container's network is "
        "chosen when it is created"
    )


@routes.post("/networks/{id}/connect", audit="network.connect", target="id")
def network_connect(req: Request) -> Json:
    raise _connection(req, "connecting")


@routes.post("/networks/{id}/disconnect", audit="network.disconnect", target="id")
def network_disconnect(req: Request) -> Json:
    raise _connection(req, "disconnecting")


@routes.post("/networks/prune", audit="network.prune")
def network_prune(req: Request) -> Json:
    filters = req.qfilters()
    for key in filters:
        if key not in ("label", "label!", "until"):
            raise bad_request(f"Invalid filter '{key}'")
    return Json({"NetworksDeleted": None})
