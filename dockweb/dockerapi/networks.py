"""Engine API: networks, as dockerd 20.10 answers them: the three predefined networks and
user-defined bridge networks (the runtime's ``NetworkManager``), listed with dockerd's
filters, inspected, created (409 for a name taken), removed, pruned; containers connected
(aliases, a fixed IPv4 address) and disconnected (``Force``). The shapes are
dockweb.docker.networks'; the runtime's errors carry dockerd's words and category."""

from __future__ import annotations

from dockweb.docker.filters import InvalidFilter
from dockweb.docker.networks import (
    filter_networks,
    inspect_network,
    network_resources,
    predefined_create_error,
    prune_keep,
)
from dockweb.dockerapi.http import ApiError, Json, Raw, Request, bad_request, unsupported
from dockweb.dockerapi.router import Routes

routes = Routes()


def _mgr():
    from dockweb.engine import get_manager

    return get_manager()


def _sync(cid: str = "") -> None:
    from containers import services

    services.sync_after_network_change(_mgr(), cid)


@routes.get("/networks")
def network_list(req: Request) -> Json:
    try:
        return Json(filter_networks(network_resources(_mgr().networks), req.qfilters()))
    except InvalidFilter as err:
        raise bad_request(str(err)) from None


@routes.get("/networks/{id}")
def network_inspect(req: Request) -> Json:
    scope = req.q("scope", "")
    if scope and scope != "local":
        raise ApiError(404, f"network {req.params['id']} not found")
    return Json(inspect_network(_mgr().networks, req.params["id"]))


def _ipam(body: dict) -> dict:
    ipam = body.get("IPAM") or {}
    if (ipam.get("Driver") or "default") != "default":
        raise unsupported(f"IPAM.Driver={ipam['Driver']}")
    if ipam.get("Options"):
        raise unsupported("IPAM.Options")
    configs = ipam.get("Config") or []
    if len(configs) > 1:
        raise unsupported("IPAM.Config with more than one subnet")
    cfg = configs[0] if configs else {}
    if cfg.get("AuxiliaryAddresses"):
        raise unsupported("IPAM.Config.AuxiliaryAddresses")
    return {
        "subnet": cfg.get("Subnet") or "",
        "gateway": cfg.get("Gateway") or "",
        "ip_range": cfg.get("IPRange") or "",
    }


@routes.post("/networks/create", audit="network.create")
def network_create(req: Request) -> Json:
    body = req.json({}) or {}
    if not isinstance(body, dict):
        raise bad_request("invalid JSON body")
    name = body.get("Name", "")
    if predefined_create_error(name):
        raise ApiError(403, predefined_create_error(name))
    for key in ("EnableIPv6", "Ingress", "ConfigOnly"):
        if body.get(key):
            raise unsupported(key)
    if (body.get("ConfigFrom") or {}).get("Network"):
        raise unsupported("ConfigFrom")
    if (body.get("Scope") or "local") != "local":
        raise unsupported(f"Scope={body['Scope']}")
    try:
        net = _mgr().networks.create(
            name,
            driver=body.get("Driver") or "bridge",
            internal=bool(body.get("Internal")),
            attachable=bool(body.get("Attachable")),
            labels=dict(body.get("Labels") or {}),
            options=dict(body.get("Options") or {}),
            **_ipam(body),
        )
    finally:
        _sync()
    return Json({"Id": net.id, "Warning": ""}, status=201)


@routes.delete("/networks/{id}", audit="network.remove", target="id")
def network_remove(req: Request) -> Raw:
    try:
        _mgr().networks.remove(req.params["id"])
    finally:
        _sync()
    return Raw(status=204, content_type=None)


@routes.post("/networks/{id}/connect", audit="network.connect", target="id")
def network_connect(req: Request) -> Raw:
    body = req.json({}) or {}
    cid = body.get("Container") or ""
    if not cid:
        raise bad_request("container is required")  # not reached by docker clients
    ec = body.get("EndpointConfig") or {}
    for key in ("Links", "DriverOpts"):
        if ec.get(key):
            raise unsupported(f"EndpointConfig.{key}")
    ipam = ec.get("IPAMConfig") or {}
    if ipam.get("IPv6Address") or ipam.get("LinkLocalIPs"):
        raise unsupported("EndpointConfig.IPAMConfig (IPv6, link-local)")
    c = _mgr().connect(
        cid,
        req.params["id"],
        aliases=list(ec.get("Aliases") or []),
        ip=ipam.get("IPv4Address") or "",
    )
    _sync(c.id)
    return Raw(status=200, content_type=None)


@routes.post("/networks/{id}/disconnect", audit="network.disconnect", target="id")
def network_disconnect(req: Request) -> Raw:
    body = req.json({}) or {}
    c = _mgr().disconnect(
        body.get("Container") or "", req.params["id"], force=bool(body.get("Force"))
    )
    _sync(c.id if c is not None else "")
    return Raw(status=200, content_type=None)


@routes.post("/networks/prune", audit="network.prune")
def network_prune(req: Request) -> Json:
    try:
        keep = prune_keep(req.qfilters())
    except InvalidFilter as err:
        raise bad_request(str(err)) from None
    try:
        removed = _mgr().networks.prune(keep)
    finally:
        _sync()
    return Json({"NetworksDeleted": [n.name for n in removed] or None})
