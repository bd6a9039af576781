"""Network operations for the pages: verbs on the runtime (``NetworkManager`` and the
ContainerManager's ``connect``/``disconnect``) run by the worker (root), each followed by
the mirror; and the read side the pages use (database rows only).

Pages never call the verbs directly: they queue a ``NetworkOperation`` (``start_operation``)
that the worker runs through ``run_operation``. Errors are the runtime's, in dockerd's
words (``network foo not found``, ``... has active endpoints``).
"""

from __future__ import annotations

from containers.models import Container
from containers.services import sync_containers
from dockweb import jobs
from dockweb.engine import get_manager
from dockweb.runtime.errors import DockwebError
from dockweb.runtime.networks import NetworkNotFound
from networks.mirror import sync_networks
from networks.models import Network, NetworkOperation

# -- verbs (the worker) ------------------------------------------------------------------


def create_network(
    name: str,
    *,
    subnet: str = "",
    gateway: str = "",
    ip_range: str = "",
    internal: bool = False,
    attachable: bool = False,
    labels: dict[str, str] | None = None,
) -> str:
    """``docker network create``: the new network's ID."""
    mgr = get_manager()
    try:
        net = mgr.networks.create(
            name,
            subnet=subnet,
            gateway=gateway,
            ip_range=ip_range,
            internal=internal,
            attachable=attachable,
            labels=labels or {},
        )
        return net.id
    finally:
        sync_networks(mgr)


def remove_network(ref: str) -> str:
    """``docker network rm``: the removed network's name."""
    mgr = get_manager()
    try:
        return mgr.networks.remove(ref).name
    finally:
        sync_networks(mgr)


def prune_networks() -> list[str]:
    """``docker network prune``: the names removed."""
    mgr = get_manager()
    try:
        return [n.name for n in mgr.networks.prune()]
    finally:
        sync_networks(mgr)


def connect_container(network: str, container: str, *, aliases=(), ip: str = "") -> None:
    """``docker network connect``; the container's row and the networks mirrored after."""
    mgr = get_manager()
    try:
        mgr.connect(container, network, aliases=list(aliases), ip=ip)
    finally:
        sync_containers()


def disconnect_container(network: str, container: str, *, force: bool = False) -> None:
    mgr = get_manager()
    try:
        mgr.disconnect(container, network, force=force)
    finally:
        sync_containers()


# -- queued operations -------------------------------------------------------------------


def start_operation(
    kind: str, args: dict, *, user=None, network_id: str = "", container_id: str = ""
) -> NetworkOperation:
    """Queue an operation for the worker; it is sent after the transaction commits."""
    if kind not in NetworkOperation.Kind.values:
        raise DockwebError(f"unknown operation {kind!r}")
    return jobs.start(
        NetworkOperation,
        user=user,
        kind=kind,
        args=args,
        network_id=network_id,
        container_id=container_id,
    )


OPERATION_ABANDONED = "the worker stopped during the operation; look at the network and try again"


@jobs.kind(
    "network_operation",
    model=NetworkOperation,
    task="networks.tasks.run_operation",
    what=lambda op: f"network {op.kind}",
    abandoned=OPERATION_ABANDONED,
)
def run_operation(op: NetworkOperation) -> dict:
    """Run a queued operation in this process (the worker); ``run_operation(op_id)``.
    Records ``result`` (the new network's ID, the pruned names) or ``error`` with dockerd's
    words."""
    a = op.args
    K = NetworkOperation.Kind
    if op.kind == K.CREATE:
        nid = create_network(
            a["name"],
            subnet=a.get("subnet", ""),
            gateway=a.get("gateway", ""),
            ip_range=a.get("ip_range", ""),
            internal=bool(a.get("internal")),
            attachable=bool(a.get("attachable")),
            labels=dict(a.get("labels") or {}),
        )
        return {"network_id": nid, "result": {"id": nid}}
    if op.kind == K.REMOVE:
        return {"result": {"name": remove_network(a["network"])}}
    if op.kind == K.PRUNE:
        return {"result": {"deleted": prune_networks()}}
    if op.kind == K.CONNECT:
        connect_container(
            a["network"], a["container"], aliases=a.get("aliases") or [], ip=a.get("ip", "")
        )
    elif op.kind == K.DISCONNECT:
        disconnect_container(a["network"], a["container"], force=bool(a.get("force")))
    else:
        raise DockwebError(f"unknown operation {op.kind!r}")
    return {}


# -- read side for the pages (database rows only) ----------------------------------------


def find_network(key: str) -> Network:
    """A Network row by full name, full ID or unique ID prefix (dockerd's order); raises
    NetworkNotFound with its words."""
    key = key.strip()
    found = (
        Network.objects.filter(name=key).first() or Network.objects.filter(network_id=key).first()
    )
    if found:
        return found
    if key and all(ch in "0123456789abcdef" for ch in key):
        matches = list(Network.objects.filter(network_id__startswith=key)[:2])
        if len(matches) == 1:
            return matches[0]
    raise NetworkNotFound(f"network {key} not found")


def _running() -> dict[str, Container]:
    return {
        c.container_id: c
        for c in Container.objects.filter(status__in=["running", "paused", "restarting"])
    }


def _rows() -> dict[str, Container]:
    return {c.container_id: c for c in Container.objects.all()}


def attached(net: Network, running: dict[str, Container] | None = None) -> list[dict]:
    """The endpoints of ``net`` whose container still runs (as its row says), each with
    its ``container`` row."""
    running = _running() if running is None else running
    out = []
    for ep in net.endpoints:
        c = running.get(ep.get("container_id", ""))
        if c is not None:
            out.append({**ep, "container": c})
    return out


def network_rows() -> list[dict]:
    """Each network with its attached (running) containers, for the list."""
    running = _running()
    return [{"network": n, "attached": attached(n, running)} for n in Network.objects.all()]


def _member(container: Container, aliases: list[str], ep: dict | None) -> dict:
    return {
        "container": container,
        "endpoint": ep,
        "mac": ep["mac"] if ep else "",
        "aliases": list(ep.get("aliases") or []) if ep else list(aliases),
    }


def network_detail(net: Network) -> list[dict]:
    """The containers configured on ``net`` (running or not), each with its address there
    while it runs: ``container``, ``endpoint`` (or None), ``mac``, ``aliases``."""
    rows = _rows()
    eps = {ep["container_id"]: ep for ep in attached(net)}
    out, seen = [], set()
    for m in net.members:
        c = rows.get(m.get("container_id", ""))
        if c is None:
            continue
        seen.add(c.container_id)
        out.append(_member(c, m.get("aliases") or [], eps.get(c.container_id)))
    for cid, ep in eps.items():  # an endpoint of a container connected since the last sync
        if cid not in seen:
            out.append(_member(ep["container"], [], ep))
    return out


def prune_preview() -> tuple[list[Network], list[Network]]:
    """(the user-defined networks ``prune`` would remove, those it keeps): in use while a
    running container holds an endpoint on it, as the runtime decides."""
    running = _running()
    gone, kept = [], []
    for n in Network.objects.all():
        if n.predefined:
            continue
        (kept if attached(n, running) else gone).append(n)
    return gone, kept


def container_networks(container: Container) -> list[dict]:
    """The networks ``container`` is on: ``network``, and while it runs its ``endpoint``
    there (ip, prefix), ``mac`` and ``aliases`` (else the aliases it asked for)."""
    running = container.is_running
    out = []
    for n in Network.objects.all():
        member = next(
            (m for m in n.members if m.get("container_id") == container.container_id), None
        )
        ep = next((e for e in n.endpoints if e.get("container_id") == container.container_id), None)
        if member is None and ep is None:
            continue
        row = _member(container, (member or {}).get("aliases") or [], ep if running else None)
        row["network"] = n
        out.append(row)
    return out


def network_choices() -> list[str]:
    """The networks the Run form offers: bridge, none, host, then the user-defined ones."""
    users = [n.name for n in Network.objects.all() if not n.predefined]
    return ["bridge", "none", "host", *users]
