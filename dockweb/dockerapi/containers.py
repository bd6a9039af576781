"""Engine API: containers (list, create, inspect, start, stop, restart, kill, pause, unpause,
wait, remove, rename, update, prune, logs, attach, resize).

The handlers call ``containers.services`` (which mirrors every change into the database)
and take Docker's shapes from ``dockweb.docker`` (inspect's ContainerJSON, ps's
types.Container). ``create`` maps the Config and HostConfig docker sends onto dockweb's
ContainerSpec (``dockweb.docker.run_options`` parses what the CLI would have parsed);
every option set to something dockweb does not do is a 400 naming it. Attach and wait work
before the container starts, as the docker CLI's ``run`` calls them first: both watch the
supervisor's lock file (``RunWatch``), and a ``-i``/``-t`` container started while a client
waits to attach is started with that client attached (``Attachers``), so it misses nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator

from containers import services
from dockweb.docker.ps import container_summary, filter_summaries
from dockweb.docker.run_options import (
    parse_mount,
    parse_restart,
    parse_tmpfs,
    parse_ulimits,
)
from dockweb.dockerapi.http import (
    ApiError,
    Hijack,
    Json,
    Raw,
    Request,
    Stream,
    bad_request,
    dumps,
    not_found,
    unsupported,
)
from dockweb.dockerapi.router import Routes
from dockweb.runtime import attach as frames
from dockweb.runtime import reference as refs
from dockweb.runtime.containers import ContainerSpec, MountSpec, Status
from dockweb.runtime.errors import (
    ContainerStartError,
    DockwebError,
    ImageNotFound,
    InvalidArgument,
    NotFound,
)
from dockweb.runtime.seccomp import go_json_kind
from dockweb.runtime.units import get_timestamp

routes = Routes()

RAW_STREAM = "application/vnd.docker.raw-stream"
POLL = 0.005  # seconds between two looks at a supervisor's lock or a log that is followed


def serving() -> None:
    """The service forks containers' supervisors through a helper of its own: a start costs
    a fork, not a new interpreter (``dockweb.engine.use_spawner``)."""
    from dockweb import engine

    engine.use_spawner()


# -- input ---------------------------------------------------------------------------------


def _ref(req: Request) -> str:
    return req.params["name"]


def _get(ref: str):
    return services.get_container(ref)


# -- list, inspect ---------------------------------------------------------------------------


def _api_summary(info: dict, size: tuple[int, int] | None) -> dict:
    """types.Container as dockerd sends it: ``container_summary`` (what ``dockweb ps`` lists)
    with the network mode under HostConfig and the networks under NetworkSettings."""
    s = container_summary(info, size)
    s.pop("_created_ns", None)
    s.pop("_health", None)
    s.pop("_networks", None)
    mode = s.pop("NetworkMode", "none")
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    s["HostConfig"] = {"NetworkMode": mode}
    s["NetworkSettings"] = {"Networks": networks}
    return s


@routes.get("/containers/json")
def list_containers(req: Request) -> Json:
    filters = req.qfilters()
    show_all = req.qbool("all")
    limit = req.qint("limit", -1)
    with_size = req.qbool("size")
    # the legacy query parameters, as filters
    for key in ("before", "since"):
        if req.q(key):
            filters.setdefault(key, [req.q(key)])
    mgr = services.get_manager()
    summaries = []
    for c in mgr.list(all=True):
        info = services.inspect_container(c, mgr)
        size = None
        if with_size:
            try:
                size = tuple(mgr.size(info["Id"]))
            except (DockwebError, OSError):
                size = (0, 0)
        summaries.append(container_summary(info, size) | {"_info": info, "_size": size})
    try:
        summaries = filter_summaries(summaries, filters)
    except DockwebError as err:
        text = str(err)
        raise ApiError(404 if text.startswith("no such container") else 400, text) from None
    if not show_all and not (limit and limit > 0) and "before" not in filters and (
        "since" not in filters
    ) and "status" not in filters:
        summaries = [s for s in summaries if s["State"] in ("running", "paused", "restarting")]
    summaries.sort(key=lambda s: (s["_created_ns"], s["Id"]), reverse=True)
    if limit is not None and limit > 0:
        summaries = summaries[:limit]
    return Json([_api_summary(s["_info"], s["_size"]) for s in summaries])


@routes.get("/containers/{name}/json")
def inspect(req: Request) -> Json:
    mgr = services.get_manager()
    info = services.inspect_container(_get(_ref(req)), mgr)
    if req.qbool("size"):
        try:
            info["SizeRw"], info["SizeRootFs"] = mgr.size(info["Id"])
        except (DockwebError, OSError):
            info["SizeRw"], info["SizeRootFs"] = 0, 0
    return Json(info)


# -- create ------------------------------------------------------------------------------------

# Fields that dockweb maps onto its spec; every other field must hold its zero value (or one
# of the defaults docker clients send), else the 400 names it.
_CONFIG_USED = {
    "Hostname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
    "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint", "Labels",
    "StopSignal", "StopTimeout", "ExposedPorts", "HostConfig", "NetworkingConfig",
    "ArgsEscaped", "NetworkDisabled", "Healthcheck",
}
_HOST_USED = {
    "Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy",
    "AutoRemove", "CapAdd", "CapDrop", "ExtraHosts", "GroupAdd", "ReadonlyRootfs", "ShmSize",
    "ConsoleSize", "Memory", "NanoCpus", "PidsLimit", "Ulimits", "Mounts", "Tmpfs",
    "MemorySwappiness", "Isolation", "MemorySwap", "Init", "SecurityOpt", "Privileged",
    "Dns", "DnsSearch", "DnsOptions", "PublishAllPorts",
}
# defaults clients send that are not zero values
_DEFAULTS = {
    "MemorySwappiness": (-1,),
    "Isolation": ("default",),
    "CgroupnsMode": ("private", "host"),
    "IpcMode": ("private", "shareable"),
    "Runtime": ("runc", "crun"),
    "OomKillDisable": (False,),
}


def _zero(value) -> bool:
    return value in (None, "", 0, False) or value == [] or value == {}


def _refuse_unused(doc: dict, used: set[str], where: str) -> None:
    for key, value in doc.items():
        if key in used or _zero(value) or value in _DEFAULTS.get(key, ()):
            continue
        raise unsupported(f"{where}.{key}" if where else key)


def _strslice(value, what: str) -> list[str] | None:
    """strslice.StrSlice: a list, a single string, or null."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise bad_request(f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                      f"Config.{what} of type strslice.StrSlice")


def _network(host: dict, networking: dict | None) -> tuple[str, list[str], str]:
    """HostConfig.NetworkMode (kept as given: "default" when empty, as dockerd) and the
    endpoint's NetworkingConfig (aliases, IPAMConfig.IPv4Address); dockerd's 400 for more
    than one endpoint at create."""
    mode = host.get("NetworkMode") or "default"
    endpoints = ((networking or {}).get("EndpointsConfig")) or {}
    if len(endpoints) > 1:
        raise bad_request(
            "Container cannot be connected to network endpoints: " + ", ".join(endpoints)
        )
    aliases: list[str] = []
    ip = ""
    for name, endpoint in endpoints.items():
        endpoint = endpoint or {}
        for key in ("Links", "DriverOpts", "MacAddress"):
            if not _zero(endpoint.get(key)):
                raise unsupported(f"NetworkingConfig.EndpointsConfig.{name}.{key}")
        ipam = endpoint.get("IPAMConfig") or {}
        if ipam.get("IPv6Address") or ipam.get("LinkLocalIPs"):
            raise unsupported(f"NetworkingConfig.EndpointsConfig.{name}.IPAMConfig (IPv6)")
        aliases = [a for a in endpoint.get("Aliases") or [] if a]
        ip = ipam.get("IPv4Address") or ""
    return mode, aliases, ip


def _port_bindings(host: dict, exposed: dict | None, network: str) -> list[dict]:
    bindings = host.get("PortBindings") or {}
    out = []
    for key, binds in bindings.items():
        port, _, proto = key.partition("/")
        proto = proto or "tcp"
        try:
            number = int(port)
        except ValueError:
            raise bad_request(f"invalid port specification: \"{port}\"") from None
        for b in binds or [{}]:
            host_port = (b or {}).get("HostPort") or "0"
            try:
                hp = int(host_port)
            except ValueError:
                raise unsupported(f"HostConfig.PortBindings ranges ({host_port})") from None
            out.append({"container_port": number, "proto": proto,
                        "host_ip": (b or {}).get("HostIp") or "", "host_port": hp})
    for key in exposed or {}:
        port, _, proto = key.partition("/")
        if f"{port}/{proto or 'tcp'}" not in {f"{p['container_port']}/{p['proto']}" for p in out}:
            if not host.get("PublishAllPorts"):
                raise unsupported(f"Config.ExposedPorts ({key} not published)")
            # -P: an exposed port on a random host port
            out.append({"container_port": int(port), "proto": proto or "tcp",
                        "host_ip": "", "host_port": 0})
    return out if network != "host" else []


def _mounts(host: dict) -> tuple[list[MountSpec], dict[str, str]]:
    """HostConfig.Mounts (``--mount``, docker-py's Mount) into dockweb's mounts and tmpfs."""
    mounts: list[MountSpec] = []
    tmpfs: dict[str, str] = {}
    for m in host.get("Mounts") or []:
        kind = m.get("Type") or "volume"
        target = m.get("Target") or ""
        if not target:
            raise bad_request("invalid mount config: Target must not be empty")
        for key in ("Consistency", "BindOptions", "VolumeOptions"):
            value = m.get(key)
            if key == "VolumeOptions" and value and set(value) <= {"NoCopy", "Labels"} and not any(
                value.values()
            ):
                continue
            if not _zero(value):
                raise unsupported(f"HostConfig.Mounts.{key}")
        if kind == "tmpfs":
            options = []
            opts = m.get("TmpfsOptions") or {}
            if opts.get("SizeBytes"):
                options.append(f"size={int(opts['SizeBytes'])}")
            if opts.get("Mode"):
                options.append(f"mode={int(opts['Mode']):o}")
            if m.get("ReadOnly"):
                options.insert(0, "ro")
            tmpfs[target] = ",".join(options)
        elif kind in ("bind", "volume"):
            source = m.get("Source") or ""
            if kind == "bind" and not source:
                raise bad_request(
                    'invalid mount config for type "bind": field Source must not be empty'
                )
            mounts.append(MountSpec(kind, source, target, bool(m.get("ReadOnly")),
                                    create_source=False))
        else:
            raise unsupported(f"HostConfig.Mounts.Type={kind}")
    return mounts, tmpfs


def spec_from_config(config: dict, name: str) -> ContainerSpec:
    """A ContainerSpec from ``POST /containers/create``'s body, checked as dockerd checks
    it; a field dockweb does not support set to anything but its zero value: a 400."""
    if not isinstance(config, dict):
        raise bad_request("Config cannot be empty in order to create a container")
    host = config.get("HostConfig") or {}
    if not isinstance(host, dict):
        raise bad_request("HostConfig must be an object")
    _refuse_unused(config, _CONFIG_USED, "")
    _refuse_unused(host, _HOST_USED, "HostConfig")
    log_config = host.get("LogConfig") or {}
    if (log_config.get("Type") or "json-file") != "json-file" or log_config.get("Config"):
        raise unsupported(f"HostConfig.LogConfig ({log_config.get('Type') or 'options'})")
    if host.get("Init"):
        raise unsupported("HostConfig.Init")
    if not _zero(host.get("MemorySwap")) and host.get("MemorySwap") != 2 * (
        host.get("Memory") or 0
    ):
        raise unsupported("HostConfig.MemorySwap")
    image = config.get("Image") or ""
    if not image:
        raise bad_request("No command specified" if not config.get("Cmd") else
                          "Config.Image must not be empty")
    network, aliases, ipv4 = _network(host, config.get("NetworkingConfig"))
    if config.get("NetworkDisabled"):
        network = "none"
    mounts = [parse_mount(b) for b in host.get("Binds") or []]
    for target in config.get("Volumes") or {}:
        if not any(m.target == target for m in mounts):
            mounts.append(MountSpec("volume", "", target))
    more, tmpfs = _mounts(host)
    mounts += more
    tmpfs.update(
        parse_tmpfs([f"{k}:{v}" if v else k for k, v in (host.get("Tmpfs") or {}).items()])
    )
    restart = host.get("RestartPolicy") or {}
    policy = parse_restart(
        (restart.get("Name") or "no")
        + (f":{restart['MaximumRetryCount']}" if restart.get("MaximumRetryCount") else "")
    )
    auto_remove = bool(host.get("AutoRemove"))
    if auto_remove and policy["Name"] != "no":
        raise bad_request("can't create 'AutoRemove' container with restart policy")
    entrypoint = _strslice(config.get("Entrypoint"), "Entrypoint")
    if entrypoint == [""]:
        entrypoint = []  # --entrypoint "": the image's is reset
    workdir = config.get("WorkingDir") or ""
    if workdir and not workdir.startswith("/"):
        raise bad_request(
            f"the working directory '{workdir}' is invalid, it needs to be an absolute path"
        )
    ulimits = host.get("Ulimits") or []
    attached = any(config.get(k) for k in ("AttachStdin", "AttachStdout", "AttachStderr"))
    pids = host.get("PidsLimit")
    stop_timeout = config.get("StopTimeout")
    return ContainerSpec(
        image=image,
        name=name,
        cmd=_strslice(config.get("Cmd"), "Cmd"),
        entrypoint=entrypoint,
        env=[e for e in config.get("Env") or [] if e],
        workdir=workdir,
        user=config.get("User") or "",
        hostname=config.get("Hostname") or "",
        network=network,
        network_aliases=aliases,
        ipv4=ipv4,
        dns=list(host.get("Dns") or []),
        dns_search=list(host.get("DnsSearch") or []),
        dns_options=list(host.get("DnsOptions") or []),
        publish_all=bool(host.get("PublishAllPorts")),
        tty=bool(config.get("Tty")),
        interactive=bool(config.get("OpenStdin")),
        auto_remove=auto_remove,
        mounts=mounts,
        labels=dict(config.get("Labels") or {}),
        detach=not attached,
        read_only=bool(host.get("ReadonlyRootfs")),
        cap_add=list(host.get("CapAdd") or []),
        cap_drop=list(host.get("CapDrop") or []),
        tmpfs=tmpfs,
        extra_hosts=list(host.get("ExtraHosts") or []),
        memory=int(host.get("Memory") or 0),
        nano_cpus=int(host.get("NanoCpus") or 0),
        pids_limit=max(int(pids or 0), 0),
        stop_signal=config.get("StopSignal") or "",
        stop_timeout=None if stop_timeout is None else int(stop_timeout),
        ports=_port_bindings(host, config.get("ExposedPorts"), network),
        shm_size=int(host.get("ShmSize") or 0),
        ulimits=parse_ulimits([f"{u['Name']}={u['Soft']}:{u['Hard']}" for u in ulimits]),
        group_add=[str(g) for g in host.get("GroupAdd") or []],
        restart=policy,
        security_opt=_security_opt(host.get("SecurityOpt")),
        privileged=bool(host.get("Privileged")),
        healthcheck=_healthcheck(config.get("Healthcheck")),
    )


_HEALTH_TYPES = {"Test": "[]string", "Interval": "time.Duration", "Timeout": "time.Duration",
                 "StartPeriod": "time.Duration", "Retries": "int"}  # fmt: skip


def _healthcheck(value) -> dict | None:
    """Config.Healthcheck (container.HealthConfig): Test, then durations in nanoseconds
    and Retries, as encoding/json reads them; dockerd's checks come with create's."""
    if value is None:
        return None

    def bad(kind: str, field: str) -> ApiError:
        return bad_request(f"json: cannot unmarshal {kind} into Go struct field "
                           f"HealthConfig.Healthcheck.{field} of type {_HEALTH_TYPES[field]}")

    if not isinstance(value, dict):
        raise bad_request(f"json: cannot unmarshal {go_json_kind(value)} into Go struct field "
                          "Config.Healthcheck of type container.HealthConfig")
    out: dict = {}
    test = value.get("Test")
    if test is not None:
        if not isinstance(test, list):
            raise bad(go_json_kind(test), "Test")
        for t in test:
            if not isinstance(t, str):
                raise bad(go_json_kind(t), "Test")
        if test:
            out["Test"] = list(test)
    for key in ("Interval", "Timeout", "StartPeriod", "Retries"):
        v = value.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not -(2**63) <= v < 2**63:
            raise bad(go_json_kind(v), key)
        if v:
            out[key] = v
    return out


def _security_opt(value) -> list[str]:
    """HostConfig.SecurityOpt as dockerd keeps it: the client's strings (a seccomp profile
    as its JSON text), read by parseSecurityOpt when the container is created."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(f"json: cannot unmarshal {go_json_kind(value)} into Go struct field "
                          "HostConfig.SecurityOpt of type []string")
    for v in value:
        if not isinstance(v, str):
            raise bad_request(f"json: cannot unmarshal {go_json_kind(v)} into Go struct field "
                              "HostConfig.SecurityOpt of type string")
    return list(value)


def _missing_image(image: str) -> ApiError:
    """dockerd's 404 for an image that is not here, which the docker CLI answers by
    pulling it: ``No such image: busybox:latest``."""
    try:
        named = refs.parse_normalized_named(image)
    except DockwebError:
        return not_found(f"No such image: {image}")
    shown = named if (named.tag or named.digest) else named.with_tag("latest")
    return not_found(f"No such image: {shown.familiar_string()}")


@routes.post("/containers/create", audit="container.create", target="name")
def create(req: Request) -> Json:
    name = req.q("name") or ""
    config = req.json(default=None)
    if config is None:
        raise bad_request("Config cannot be empty in order to create a container")
    try:
        spec = spec_from_config(config, name.lstrip("/"))
    except InvalidArgument as err:  # run_options' words for bad -v, --tmpfs ...
        raise bad_request(str(err)) from None
    except DockwebError as err:
        raise bad_request(str(err)) from None
    try:
        cid = services.create_container(spec)
    except ImageNotFound:
        raise _missing_image(spec.image) from None
    except NotFound as err:
        raise not_found(str(err)) from None
    except DockwebError as err:
        if type(err).__name__ in ("InvalidOption", "ClientOption", "InvalidFlag"):
            raise bad_request(str(err)) from None
        raise
    return Json({"Id": cid, "Warnings": []}, status=201)


# -- start and the verbs ----------------------------------------------------------------------


def _no_content() -> Raw:
    return Raw(b"", status=204, content_type=None)


def _not_modified() -> Raw:
    return Raw(b"", status=304, content_type=None)


class Attachers:
    """Clients attached to a ``-i``/``-t`` container that has not started yet: the next
    start hands the first one the supervisor's end of its attach socket before the process
    runs (``ContainerManager.start_attached``), as dockerd attaches before it starts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: dict[str, list[Attacher]] = {}

    def add(self, cid: str) -> Attacher:
        a = Attacher()
        with self.lock:
            self.waiting.setdefault(cid, []).append(a)
        return a

    def drop(self, cid: str, a: Attacher) -> bool:
        """Withdraw ``a``; False when a start took it first."""
        with self.lock:
            queue = self.waiting.get(cid, [])
            if a not in queue:
                return False
            left = [x for x in queue if x is not a]
            if left:
                self.waiting[cid] = left
            else:
                self.waiting.pop(cid, None)
            return True

    def take(self, cid: str) -> Attacher | None:
        with self.lock:
            queue = self.waiting.get(cid) or []
            return queue.pop(0) if queue else None


class Attacher:
    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.ready = threading.Event()


ATTACHERS = Attachers()
# exit codes of starts that failed and took an --rm container with them (for its waiters)
_FAILED_STARTS: dict[str, int] = {}
# the waits under way, by container: each sets its event once its answer is sent
_WAITS: dict[str, list[threading.Event]] = {}
_WAITS_LOCK = threading.Lock()


def _waits_answered(cid: str, timeout: float = 2.0) -> None:
    """Until the waits on ``cid`` have sent their answers (at most ``timeout``): dockerd
    answers them as it removes an --rm container that failed to start, before the start's
    error, and the docker CLI stops listening once it has that error."""
    deadline = time.monotonic() + timeout
    with _WAITS_LOCK:
        events = list(_WAITS.get(cid, []))
    for event in events:
        event.wait(max(0.0, deadline - time.monotonic()))


@routes.post("/containers/{name}/start", audit="container.start", target="name")
def start(req: Request) -> Raw:
    if req.q("checkpoint") or req.q("checkpoint-dir"):
        raise unsupported("checkpoint")
    if req.json(default=None):
        raise bad_request(
            "starting container with non-empty request body was deprecated since API v1.22 "
            "and removed in v1.24"
        )
    mgr = services.get_manager()
    c = _get(_ref(req))
    if c.status in (Status.RUNNING, Status.RESTARTING):
        return _not_modified()
    attacher = ATTACHERS.take(c.id) if (c.spec.tty or c.spec.interactive) else None
    try:
        if attacher is not None:
            try:
                attacher.sock = mgr.start_attached(c.id)
            finally:
                attacher.ready.set()
                services.sync_containers(c.id)
        else:
            services.start_container(c.id)
    except ContainerStartError as err:
        if c.spec.auto_remove:  # as dockerd cleans an --rm container that failed to start
            _FAILED_STARTS[c.id] = err.exit_code
            with contextlib.suppress(DockwebError):
                services.remove_container(c.id, force=True, volumes=True)
            _waits_answered(c.id)
        raise ApiError(400 if err.exit_code in (126, 127) else 500, str(err)) from None
    return _no_content()


@routes.post("/containers/{name}/stop", audit="container.stop", target="name")
def stop(req: Request) -> Raw:
    c = _get(_ref(req))
    if not c.status.is_active:
        return _not_modified()
    services.stop_container(c.id, req.qint("t"))
    return _no_content()


@routes.post("/containers/{name}/restart", audit="container.restart", target="name")
def restart(req: Request) -> Raw:
    c = _get(_ref(req))
    services.restart_container(c.id, req.qint("t"))
    return _no_content()


@routes.post("/containers/{name}/kill", audit="container.kill", target="name")
def kill(req: Request) -> Raw:
    services.kill_container(_ref(req), req.q("signal") or "KILL")
    return _no_content()


@routes.post("/containers/{name}/pause", audit="container.pause", target="name")
def pause(req: Request) -> Raw:
    services.pause_container(_ref(req))
    return _no_content()


@routes.post("/containers/{name}/unpause", audit="container.unpause", target="name")
def unpause(req: Request) -> Raw:
    services.unpause_container(_ref(req))
    return _no_content()


@routes.delete("/containers/{name}", audit="container.remove", target="name")
def remove(req: Request) -> Raw:
    if req.qbool("link"):
        raise unsupported("link (dockweb has no container links)")
    services.remove_container(_ref(req), force=req.qbool("force"), volumes=req.qbool("v"))
    return _no_content()


@routes.post("/containers/{name}/rename", audit="container.rename", target="name")
def rename(req: Request) -> Raw:
    services.rename_container(_ref(req), req.q("name") or "")
    return _no_content()


_UPDATE_USED = {"Memory", "NanoCpus", "PidsLimit", "RestartPolicy", "MemorySwap",
                "MemorySwappiness", "OomKillDisable"}


@routes.post("/containers/{name}/update", audit="container.update", target="name")
def update(req: Request) -> Json:
    body = req.json(default={}) or {}
    if not isinstance(body, dict):
        raise bad_request("invalid update request")
    _refuse_unused(body, _UPDATE_USED, "")
    if body.get("MemorySwappiness") not in (None, -1):
        raise unsupported("MemorySwappiness")
    if body.get("OomKillDisable"):
        raise unsupported("OomKillDisable")
    changes: dict = {}
    if body.get("Memory"):
        changes["memory"] = int(body["Memory"])
    swap = body.get("MemorySwap")
    if swap and swap != 2 * int(body.get("Memory") or 0):
        raise unsupported("MemorySwap")
    if body.get("NanoCpus"):
        changes["nano_cpus"] = int(body["NanoCpus"])
    if body.get("PidsLimit") is not None:
        changes["pids_limit"] = int(body["PidsLimit"])
    policy = body.get("RestartPolicy") or {}
    if policy.get("Name"):
        count = policy.get("MaximumRetryCount") or 0
        changes["restart"] = parse_restart(policy["Name"] + (f":{count}" if count else ""))
    services.update_container(_ref(req), **changes)
    return Json({"Warnings": None})


@routes.post("/containers/prune", audit="container.prune")
def prune(req: Request) -> Json:
    """moby's ContainersPrune: the one prune of ``dockweb container prune`` and the Disk
    page (runtime/diskusage.py, through disk.services), with the ``label``, ``label!`` and
    ``until`` filters; its refusals are dockerd's 400s."""
    from disk import services as disk
    from dockweb.runtime.diskusage import InvalidPruneFilter

    try:
        deleted, space = disk.prune_containers(filters=req.qfilters())
    except InvalidPruneFilter as err:
        raise bad_request(str(err)) from None
    return Json({"ContainersDeleted": deleted or None, "SpaceReclaimed": space})


# -- wait --------------------------------------------------------------------------------------


class RunWatch:
    """The end of a container's current or next run, through its supervisor's lock file
    (``shim.lock``): held while a supervisor lives, left holding the run's final state.
    Opened before the run, it answers even once ``--rm`` has removed the directory."""

    def __init__(self, mgr, cid: str):
        self.fd = os.open(os.path.join(mgr.cdir(cid), "shim.lock"), os.O_RDONLY | os.O_CREAT, 0o600)
        self.before = os.pread(self.fd, 65536, 0)
        self.seen_running = False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _held(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        return False

    def ended(self) -> dict | None:
        """The final state once a run has ended since the watch began; else None."""
        if self._held():
            self.seen_running = True
            return None
        data = os.pread(self.fd, 65536, 0)
        if data.strip() and (self.seen_running or data != self.before):
            try:
                return json.loads(data)
            except ValueError:
                return None
        if self.seen_running:
            return {}  # a supervisor that failed to start the process: no final state
        return None

    def settle(self) -> None:
        """Until no supervisor holds the lock (the one that removes an --rm container
        writes the final state first and lets go after)."""
        if self._held():
            fcntl.flock(self.fd, fcntl.LOCK_SH)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.seen_running = True

    def wait(self) -> dict:
        """Blocks until a run ends (the current one, or the next)."""
        while True:
            self.settle()
            state = self.ended()
            if state is not None:
                return state
            time.sleep(POLL)


def _exists(mgr, cid: str) -> bool:
    return os.path.exists(os.path.join(mgr.cdir(cid), "container.json"))


def wait_for(mgr, c, condition: str) -> int:
    """The exit code as dockerd's wait answers it for ``condition``."""
    code = c.state.exit_code
    if condition == "not-running" and not c.status.is_active:
        return code
    watch = RunWatch(mgr, c.id)
    try:
        if condition == "not-running":
            # ended between the lookup and the watch: the watch saw no run end, it would
            # wait for the next one (with the default bridge, the end takes longer)
            with contextlib.suppress(DockwebError):
                now = mgr.get(c.id)
                if not now.status.is_active:
                    return now.state.exit_code
        if condition != "removed":
            state = watch.wait()
            return int(state.get("exit_code", 0)) if state else _last_code(mgr, c.id, code)
        while True:
            state = watch.ended()
            if state:
                code = int(state.get("exit_code", code))
            if not _exists(mgr, c.id):
                if c.id in _FAILED_STARTS:
                    return _FAILED_STARTS.pop(c.id)
                watch.settle()
                state = watch.ended()
                return int(state.get("exit_code", code)) if state else code
            if state is None:
                with contextlib.suppress(DockwebError):
                    code = mgr.get(c.id).state.exit_code
            time.sleep(POLL)
    finally:
        watch.close()


def _last_code(mgr, cid: str, default: int) -> int:
    if cid in _FAILED_STARTS:
        return _FAILED_STARTS[cid]
    try:
        return mgr.get(cid).state.exit_code
    except DockwebError:
        return default


@routes.post("/containers/{name}/wait")
def wait(req: Request) -> Stream:
    condition = req.q("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise bad_request(f"invalid condition: {condition!r}")
    mgr = services.get_manager()
    c = _get(_ref(req))
    answered = threading.Event()
    with _WAITS_LOCK:
        _WAITS.setdefault(c.id, []).append(answered)

    def done() -> None:
        answered.set()
        with _WAITS_LOCK:
            left = [e for e in _WAITS.get(c.id, []) if e is not answered]
            if left:
                _WAITS[c.id] = left
            else:
                _WAITS.pop(c.id, None)

    def body() -> Iterator[bytes]:
        try:
            yield b""  # the headers go now: the docker CLI waits for them before it starts
            code = wait_for(mgr, c, condition)
            # the exit mirrored before the answer (the supervisor's hook may come later)
            services.sync_containers(c.id)
            yield dumps({"Error": None, "StatusCode": code})
        finally:
            done()  # runs once the answer is sent (or the client went away)

    return Stream(body(), content_type="application/json", on_close=done)


# -- logs --------------------------------------------------------------------------------------


def _stamp(req: Request, key: str) -> float | None:
    value = req.q(key)
    if not value:
        return None
    try:
        return get_timestamp(value)
    except (DockwebError, ValueError) as err:
        raise bad_request(str(err)) from None


def mux(stream: str, data: bytes) -> bytes:
    """One frame of dockerd's multiplexed stream (stdcopy): the attach socket's frames."""
    return frames.frame(frames.STDERR if stream == "stderr" else frames.STDOUT, data)


@routes.get("/containers/{name}/logs")
def logs(req: Request) -> Stream:
    want = {"stdout": req.qbool("stdout"), "stderr": req.qbool("stderr")}
    if not any(want.values()):
        raise bad_request("Bad parameters: you must choose at least one stream")
    c = _get(_ref(req))
    tail_text = req.q("tail") or "all"
    tail = None
    if tail_text != "all":
        try:
            tail = int(tail_text)
        except ValueError:
            tail = None
        if tail is not None and tail < 0:
            tail = None
    since, until = _stamp(req, "since"), _stamp(req, "until")
    entries = services.container_logs(
        c.id, follow=req.qbool("follow"), tail=tail, timestamps=req.qbool("timestamps"),
        since=since if since else None, until=until,
    )
    tty = c.spec.tty

    def body() -> Iterator[bytes]:
        yield b""
        for stream, text, _time in entries:
            if not want.get(stream, False):
                continue
            data = text.encode()
            yield data if tty else mux(stream, data)

    return Stream(body(), content_type=RAW_STREAM, on_close=getattr(entries, "close", None))


# -- attach ------------------------------------------------------------------------------------


def _detach_keys(req: Request) -> bytes:
    """``detachKeys`` (moby/term's ToBytes), Docker's ctrl-p,ctrl-q when not given."""
    text = req.q("detachKeys")
    if not text:
        return frames.DETACH_KEYS
    try:
        return frames.parse_keys(text)
    except ValueError as err:
        raise bad_request(str(err)) from None


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def _client_gone(sock: socket.socket) -> bool:
    """Whether the client hung up (a half-close is not that: it may still read)."""
    try:
        ready, _, err = select.select([], [], [sock], 0)
    except (OSError, ValueError):
        return True
    return bool(err)


@routes.post("/containers/{name}/attach")
def attach(req: Request) -> Hijack:
    mgr = services.get_manager()
    c = _get(_ref(req))
    opts = {
        "stream": req.qbool("stream"),
        "logs": req.qbool("logs"),
        "stdin": req.qbool("stdin"),
        "stdout": req.qbool("stdout"),
        "stderr": req.qbool("stderr"),
        "keys": _detach_keys(req),
    }
    if c.status is Status.PAUSED and opts["stream"]:
        raise ApiError(409, f"Container {c.id} is paused, unpause the container before attach.")
    # registered now, before the answer: a start that follows finds it
    pending = None
    if opts["stream"] and (c.spec.tty or c.spec.interactive) and not c.status.is_active:
        pending = ATTACHERS.add(c.id)
    log_path = os.path.join(mgr.cdir(c.id), "container.log")
    with contextlib.suppress(OSError):
        open(log_path, "ab").close()
    log = open(log_path, "rb")  # noqa: SIM115 - closed by the hijacked session
    watch = None
    if opts["stream"] and not (c.spec.tty or c.spec.interactive):
        log.seek(0, os.SEEK_END)
        watch = RunWatch(mgr, c.id)
    past = b""
    if opts["logs"]:
        with open(log_path, "rb") as f:
            past = f.read()

    def run(sock: socket.socket, first: bytes) -> None:
        try:
            session = AttachSession(mgr, c, sock, opts)
            session.replay(past)
            if not opts["stream"]:
                return
            if watch is not None:
                session.follow_log(log, watch)
            else:
                session.proxy(first, pending)
        finally:
            if pending is not None:
                ATTACHERS.drop(c.id, pending)
            if watch is not None:
                watch.close()
            log.close()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    return Hijack(run, content_type=RAW_STREAM)


class AttachSession:
    """One hijacked attach: the container's output to the client (multiplexed without a
    tty, raw with one), the client's input to the container's stdin."""

    def __init__(self, mgr, c, sock: socket.socket, opts: dict):
        self.mgr = mgr
        self.c = c
        self.sock = sock
        self.opts = opts
        self.tty = c.spec.tty
        # inspect's Config.StdinOnce: run or create -i, attached (not -d)
        self.stdin_once = c.spec.interactive and not c.spec.detach

    def out(self, stream: str, data: bytes) -> bool:
        if not self.opts.get(stream):
            return True
        return _send(self.sock, data if self.tty else mux(stream, data))

    def replay(self, past: bytes) -> None:
        for line in past.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self.out(entry["stream"], entry["log"].encode())

    def follow_log(self, log, watch: RunWatch) -> None:
        """A container without an attach socket: its new log lines until the run ends."""
        pending = b""
        while True:
            chunk = log.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if not self.out(entry["stream"], entry["log"].encode()):
                        return
                continue
            if watch.ended() is not None:
                rest = log.read()
                if rest:
                    pending += rest
                    continue
                return
            if _client_gone(self.sock):
                return
            time.sleep(POLL)

    def _connect(self, pending: Attacher | None) -> socket.socket | None:
        """The supervisor's attach socket: handed over by the start (``pending``), or
        connected to once the container runs."""
        path = self.mgr.attach_path(self.c.id)
        while True:
            if pending is not None and pending.ready.wait(POLL):
                if pending.sock is not None:
                    return pending.sock
                pending = None  # the start failed
            try:
                st = self.mgr.read_state(self.c.id)
            except (DockwebError, OSError):
                if pending is not None:
                    continue  # gone already (--rm): the start hands our socket over still
                return None
            # started by another door (the CLI, the pages): connect, unless an API start
            # took this client meanwhile (then it hands the socket over)
            if st.status.is_active and os.path.exists(path) and (
                pending is None or ATTACHERS.drop(self.c.id, pending)
            ):
                with contextlib.suppress(OSError):
                    return frames.connect(path)
            if _client_gone(self.sock):
                return None
            if pending is None:
                time.sleep(POLL)

    def proxy(self, first: bytes, pending: Attacher | None) -> None:
        rt = self._connect(pending)
        if rt is None:
            return
        escape = frames.EscapeKeys(self.opts["keys"]) if self.opts["keys"] else None
        stdin = self.opts["stdin"]
        client_open = True
        output = frames.FrameBuffer()
        with rt:
            if first and stdin:
                if self._input(rt, first, escape):
                    return
            while True:
                watched = [rt] + ([self.sock] if client_open else [])
                ready, _, _ = select.select(watched, [], [])
                if rt in ready:
                    try:
                        chunk = rt.recv(65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        return
                    for kind, payload in output.feed(chunk):
                        stream = "stderr" if kind == frames.STDERR else "stdout"
                        if not self.out(stream, payload):
                            return
                if client_open and self.sock in ready:
                    try:
                        data = self.sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        client_open = False  # half-closed: its input has ended
                        if not stdin:
                            continue
                        held = escape.flush() if escape is not None else b""
                        if held:
                            _send(rt, frames.frame(frames.STDIN, held))
                        # dockerd's attach: the container's stdin is closed with a
                        # StdinOnce container's without a tty, and the output follows to
                        # the end; else the attach ends there and the container runs on
                        if self.tty or not self.stdin_once:
                            return
                        _send(rt, frames.frame(frames.CLOSE_STDIN))
                        continue
                    if stdin and self._input(rt, data, escape):
                        return  # detached: the container runs on

    def _input(self, rt: socket.socket, data: bytes, escape) -> bool:
        """The client's bytes to the container's stdin; True when they held the detach
        keys."""
        detached = False
        if escape is not None:
            data, detached = escape.feed(data)
        if data:
            _send(rt, frames.frame(frames.STDIN, data))
        return detached


@routes.post("/containers/{name}/resize")
def resize(req: Request) -> Raw:
    c = _get(_ref(req))
    height, width = req.qint("h", 0), req.qint("w", 0)
    if not c.status.is_active:
        raise ApiError(409, f"Container {c.id} is not running")
    if c.spec.tty:
        mgr = services.get_manager()
        try:
            with frames.connect(mgr.attach_path(c.id)) as s:
                s.sendall(frames.resize_frame(width, height))
        except OSError as err:
            raise ApiError(500, f"cannot resize {c.id}: {err}") from None
    return Raw(b"", status=200, content_type="text/plain; charset=utf-8")
