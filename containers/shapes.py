"""Docker's shapes for containers, without Django: run options into a ContainerSpec, a
runtime Container into ``docker inspect``'s ContainerJSON, and that into a Container row's
fields.

``containers.services`` uses these for every verb; the CLI's fast ``run`` path
(dockweb/cli/fastrun.py) and the supervisor's exit hook (containers/exit_hook.py) use them
without setting Django up, so that all three mirror a container into the same row.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from dockweb.runtime.errors import DockwebError

# For type checkers only, without importing typing (4 ms of the CLI's fast run path)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockweb.runtime.containers import ContainerManager, ContainerSpec, MountSpec

GO_ZERO = "0001-01-01T00:00:00Z"


class InvalidOption(DockwebError):
    """A run/create option docker refuses before asking the daemon (bad -v, -e …)."""


class ClientOption(InvalidOption):
    """An option the docker client itself refuses while parsing (``docker: <error>.``,
    without the daemon's words)."""


class InvalidFlag(InvalidOption):
    """A flag value the docker client cannot parse: ``invalid argument "x" for "-m,
    --memory" flag: invalid size: 'x'`` (printed bare, with the help hint, status 125)."""

    def __init__(self, value: str, flag: str, reason: str) -> None:
        super().__init__(f'invalid argument "{value}" for "{flag}" flag: {reason}')


# -- options into a spec -----------------------------------------------------------------


_RAM_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
              "p": 1 << 50}


def parse_memory(value: str, flag: str = "-m, --memory") -> int:
    """A size as go-units RAMInBytes: ``512m``, ``1.5g``, ``1024`` (binary units, any
    case); InvalidFlag names ``flag``."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtTpPbB]?)[bB]?", value.strip())
    if not m:
        raise InvalidFlag(value, flag, f"invalid size: '{value}'")
    return int(float(m.group(1)) * _RAM_UNITS[m.group(2).lower()])


def parse_cpus(value: str) -> int:
    """--cpus: a decimal number of CPUs, as nano CPUs (docker's NanoCPUs)."""
    from decimal import Decimal, InvalidOperation

    try:
        nano = Decimal(value) * 10**9
    except InvalidOperation:
        raise InvalidFlag(
            value, "--cpus", f"failed to parse {value} as a rational number"
        ) from None
    if nano != nano.to_integral_value():
        raise InvalidFlag(value, "--cpus", "value is too precise")
    return int(nano)


def parse_tmpfs(values: list[str]) -> dict[str, str]:
    """--tmpfs /dst[:options]."""
    out = {}
    for v in values:
        dest, _, options = v.partition(":")
        if not dest.startswith("/"):
            raise InvalidOption(
                f"invalid mount config for type \"tmpfs\": invalid mount path: '{dest}' "
                "mount path must be absolute"
            )
        out[dest] = options
    return out


def parse_mount_flag(value: str) -> tuple[MountSpec | None, tuple[str, str] | None]:
    """--mount type=volume|bind|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…]
    [,tmpfs-mode=…], as docker/cli's MountOpt: a MountSpec, or a tmpfs (target, options).
    """
    import csv

    from dockweb.runtime.containers import MountSpec

    def bad(reason: str) -> InvalidFlag:
        return InvalidFlag(value, "--mount", reason)

    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration):
        raise bad("invalid mount specification") from None
    kind, source, target = "volume", "", ""
    readonly = False
    tmpfs: list[str] = []
    for field_ in fields:
        key, eq, val = field_.partition("=")
        key = key.lower()
        if not eq and key in ("readonly", "ro"):
            readonly = True
            continue
        if not eq:
            raise bad(f"invalid field '{field_}' must be a key=value pair")
        if key == "type":
            kind = val.lower()
        elif key in ("source", "src"):
            source = os.path.abspath(val) if val == "." or val.startswith("./") else val
        elif key in ("target", "dst", "destination"):
            target = val
        elif key in ("readonly", "ro"):
            if val.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise bad(f"invalid value for {key}: {val}")
            readonly = val.lower() in ("1", "t", "true")
        elif key == "tmpfs-size":
            try:
                tmpfs.append(f"size={parse_memory(val)}")
            except InvalidFlag:  # the whole --mount value is the flag's argument
                raise bad(f"invalid size: '{val}'") from None
        elif key == "tmpfs-mode":
            try:
                tmpfs.append(f"mode={int(val, 8):o}")
            except ValueError:
                raise bad(f"invalid value for {key}: {val}") from None
        elif key in ("bind-propagation", "consistency", "volume-nocopy", "volume-label",
                     "volume-driver", "volume-opt"):
            raise bad(f"dockweb does not support {key}")
        else:
            raise bad(f"unexpected key '{key}' in '{field_}'")
    if not kind:
        raise bad("type is required")  # type= given empty
    if not target:
        raise bad("target is required")
    if kind == "tmpfs":
        if source:
            raise ClientOption(
                'invalid mount config for type "tmpfs": source must not be specified'
            )
        return None, (target, ",".join((["ro"] if readonly else []) + tmpfs))
    if kind not in ("bind", "volume"):
        raise ClientOption(f'invalid mount config for type "{kind}": mount type unknown')
    if kind == "bind" and not source:
        raise ClientOption('invalid mount config for type "bind": field Source must not be empty')
    return MountSpec(kind, source, target, readonly, create_source=False), None


def parse_restart(value: str) -> dict:
    """--restart no|always|unless-stopped|on-failure[:N], as docker/cli's
    ParseRestartPolicy and dockerd's checks."""
    name, sep, count = value.partition(":")
    if not name:
        name = "no"
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise InvalidOption(f"invalid restart policy '{name}'")
    retries = 0
    if sep:
        if name != "on-failure":
            raise InvalidOption(f"maximum retry count cannot be used with restart policy '{name}'")
        try:
            retries = int(count)
        except ValueError:
            raise ClientOption(f'strconv.Atoi: parsing "{count}": invalid syntax') from None
        if retries < 0:
            raise InvalidOption("maximum retry count cannot be negative")
    return {"Name": name, "MaximumRetryCount": retries}


def parse_ulimits(values: list[str]) -> list[dict]:
    """--ulimit name=soft[:hard], as go-units ParseUlimit (hard defaults to soft)."""
    from dockweb.runtime.oci import ULIMITS

    out = []
    for v in values:
        name, eq, limits = v.partition("=")
        if not eq:
            raise InvalidFlag(v, "--ulimit", f"invalid ulimit argument: {v}")
        if name not in ULIMITS:
            raise InvalidFlag(v, "--ulimit", f"invalid ulimit type: {name}")
        soft, _, hard = limits.partition(":")
        try:
            s_, h_ = int(soft), int(hard or soft)
        except ValueError:
            raise InvalidFlag(
                v, "--ulimit", f'invalid ulimit soft value "{limits}": not a number'
            ) from None
        if s_ > h_:
            raise InvalidFlag(
                v, "--ulimit", f"ulimit soft limit must be less than or equal to hard limit: "
                f"{s_} > {h_}"
            )
        out.append({"Name": name, "Hard": h_, "Soft": s_})
    return out


def parse_ports(values: list[str]) -> list[dict]:
    """-p values, as docker's nat.ParsePortSpecs (dockweb.runtime.ports)."""
    if not values:
        return []  # no import: `run`'s fast path
    from dockweb.runtime.ports import PortError, parse_publish

    out = []
    for v in values:
        try:
            out += [vars(b) for b in parse_publish(v)]
        except PortError as e:
            raise ClientOption(str(e)) from None
    return out


def parse_hosts(values: list[str]) -> list[str]:
    """--add-host name:ip (docker's ValidateExtraHost)."""
    if not values:
        return []
    import ipaddress

    out = []
    for v in values:
        name, sep, ip = v.partition(":")
        if not sep or not name:
            raise InvalidFlag(v, "--add-host", f'bad format for add-host: "{v}"')
        try:
            ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            raise InvalidFlag(v, "--add-host", f'invalid IP address in add-host: "{ip}"') from None
        out.append(v)
    return out


def parse_mount(value: str) -> MountSpec:
    """``-v``: ``name:/dst[:ro]``, ``/host:/dst[:ro|rw]`` or ``/dst`` (anonymous)."""
    from dockweb.runtime.containers import MountSpec

    parts = value.split(":")
    mode = ""
    if len(parts) == 3:
        source, target, mode = parts
    elif len(parts) == 2:
        source, target = parts
    elif len(parts) == 1:
        source, target = "", parts[0]
    else:
        raise InvalidOption(f"invalid volume specification: '{value}'")
    if mode not in ("", "ro", "rw"):
        raise InvalidOption(f"invalid mode: {mode}")
    if not target.startswith("/"):
        raise InvalidOption(
            f"invalid volume specification: '{value}': invalid mount config for type "
            f'"{"bind" if source.startswith("/") else "volume"}": invalid mount path: '
            f"'{target}' mount path must be absolute"
        )
    if target == "/":
        raise InvalidOption(
            f"invalid volume specification: '{value}': invalid mount config for type "
            "\"volume\": invalid specification: destination can't be '/'"
        )
    kind = "bind" if source.startswith("/") else "volume"
    return MountSpec(type=kind, source=source, target=target, readonly=mode == "ro")


def parse_env(values: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """``-e``: ``KEY=VALUE`` kept; a bare ``KEY`` takes the caller's value, or is dropped."""
    environ = os.environ if environ is None else environ
    out = []
    for v in values:
        if not v or v.startswith("="):
            raise InvalidOption(f"invalid environment variable: {v}")
        if "=" in v:
            out.append(v)
        elif v in environ:
            out.append(f"{v}={environ[v]}")
    return out


def parse_labels(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        key, _, value = v.partition("=")
        out[key] = value
    return out


def build_spec(
    image: str,
    cmd: list[str] | None = None,
    *,
    name: str = "",
    env: list[str] = (),
    volumes: list[str] = (),
    workdir: str = "",
    user: str = "",
    entrypoint: str | None = None,
    hostname: str = "",
    network: str = "none",
    tty: bool = False,
    interactive: bool = False,
    auto_remove: bool = False,
    labels: list[str] = (),
    detach: bool = False,
    read_only: bool = False,
    cap_add: list[str] = (),
    cap_drop: list[str] = (),
    tmpfs: list[str] = (),
    add_host: list[str] = (),
    memory: str = "",
    cpus: str = "",
    pids_limit: int = 0,
    stop_signal: str = "",
    stop_timeout: int | None = None,
    publish: list[str] = (),
    mount: list[str] = (),
    shm_size: str = "",
    ulimit: list[str] = (),
    group_add: list[str] = (),
    restart: str = "",
) -> ContainerSpec:
    """A ContainerSpec from docker run's options, checked as the docker client checks them."""
    from dockweb.runtime.containers import ContainerSpec

    if network not in ("none", "host", "default", "bridge"):
        raise InvalidOption(f"network {network} not found")
    if network in ("default", "bridge"):
        # no bridge networking: a container gets its own network namespace with loopback
        network = "none"
    if workdir and not workdir.startswith("/"):
        raise InvalidOption(
            f"the working directory '{workdir}' is invalid, it needs to be an absolute path"
        )
    policy = parse_restart(restart)  # "" is "no"
    if auto_remove and policy["Name"] != "no":
        raise ClientOption("Conflicting options: --restart and --rm")
    mounts = [parse_mount(v) for v in volumes]
    tmpfs_mounts = parse_tmpfs(list(tmpfs))
    for value in mount:
        spec, tmp = parse_mount_flag(value)
        if spec is not None:
            mounts.append(spec)
        else:
            tmpfs_mounts[tmp[0]] = tmp[1]
    return ContainerSpec(
        image=image,
        name=name,
        cmd=list(cmd) if cmd else None,
        entrypoint=None if entrypoint is None else ([entrypoint] if entrypoint else []),
        env=parse_env(list(env)),
        workdir=workdir,
        user=user,
        hostname=hostname,
        network=network,
        tty=tty,
        interactive=interactive,
        auto_remove=auto_remove,
        mounts=mounts,
        labels=parse_labels(list(labels)),
        detach=detach,
        read_only=read_only,
        cap_add=list(cap_add),
        cap_drop=list(cap_drop),
        tmpfs=tmpfs_mounts,
        extra_hosts=parse_hosts(list(add_host)),
        memory=parse_memory(memory) if memory else 0,
        nano_cpus=parse_cpus(cpus) if cpus else 0,
        pids_limit=max(int(pids_limit or 0), 0),
        stop_signal=stop_signal,
        stop_timeout=stop_timeout,
        ports=parse_ports(list(publish)) if network != "host" else [],
        shm_size=parse_memory(shm_size, "--shm-size") if shm_size else 0,
        ulimits=parse_ulimits(list(ulimit)),
        group_add=list(group_add),
        restart=policy,
    )


def inspect_volume(v: Any) -> dict:
    """docker's Volume object for a runtime volume."""
    if isinstance(v, dict):
        return v
    labels = getattr(v, "labels", None)
    return {
        "CreatedAt": _go_time(_attr(v, "created_at", "created", default="")),
        "Driver": getattr(v, "driver", "local") or "local",
        "Labels": labels if labels else ({} if not getattr(v, "anonymous", False) else None),
        "Mountpoint": getattr(v, "mountpoint", ""),
        "Name": v.name,
        "Options": getattr(v, "options", None)
        or ({} if not getattr(v, "anonymous", False) else None),
        "Scope": "local",
    }


# -- inspect: runtime container -> docker's ContainerJSON --------------------------------


def _go_time(value: Any) -> str:
    """RFC 3339 with nanoseconds, as Go marshals time.Time; "" or None is the zero time."""
    if not value:
        return GO_ZERO
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def _attr(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


def _image_config(mgr: ContainerManager | None, image_id: str) -> dict:
    if mgr is None or not image_id:
        return {}
    try:
        return mgr.store.get_image(image_id).config.get("config") or {}
    except DockwebError:
        return {}  # the image was removed with --force: docker shows the container's own


def container_json(c: Any, mgr: ContainerManager | None, root: str) -> dict:
    """docker inspect's ContainerJSON for a runtime Container of the store at ``root``."""
    spec = _attr(c, "spec")
    state = _attr(c, "state")
    status = _attr(state, "status", default="created")
    status = getattr(status, "value", status)
    status = str(status).lower()
    running = status in ("running", "paused", "restarting")
    path = _attr(c, "path", default="") or ""
    args = list(_attr(c, "args", default=[]) or [])
    image_config = _image_config(mgr, _attr(c, "image_id", default=""))
    records = _attr(c, "mounts", default=None) or []
    mounts = [_mount_point(m) for m in records]
    anonymous = {
        _attr(m, "destination", "target", default="")
        for m in records
        if _attr(m, "anonymous", default=False)
    }
    # Config.Volumes: the anonymous volumes, from -v /dst or the image's VOLUME
    volumes = {d: {} for d in sorted(anonymous | set(image_config.get("Volumes") or {}))}
    name = _attr(c, "name", default="") or ""
    from dockweb.runtime.oci import merge_env

    env = merge_env(list(image_config.get("Env") or []), list(_attr(spec, "env", default=[]) or []))
    cid = _attr(c, "id")
    cdir = os.path.join(root, "containers", cid) if cid else ""
    network = _attr(spec, "network", default="none") or "none"
    # docker run -d attaches nothing (and so has no stdin to close once)
    attached = not _attr(spec, "detach", default=False)
    interactive = bool(_attr(spec, "interactive", default=False))
    return {
        "Id": cid,
        "Created": _go_time(_attr(c, "created")),
        "Path": path,
        "Args": args,
        "State": {
            "Status": status,
            "Running": running,
            "Paused": status == "paused",
            "Restarting": status == "restarting",
            "OOMKilled": False,
            "Dead": status == "dead",
            "Pid": int(_attr(state, "pid", default=0) or 0) if running else 0,
            "ExitCode": int(_attr(state, "exit_code", default=0) or 0),
            "Error": _attr(state, "error", default="") or "",
            "StartedAt": _go_time(_attr(state, "started_at", "started")),
            "FinishedAt": _go_time(_attr(state, "finished_at", "finished")),
        },
        "Image": _attr(c, "image_id", default="") or "",
        "ResolvConfPath": os.path.join(cdir, "resolv.conf") if cdir else "",
        "HostnamePath": os.path.join(cdir, "hostname") if cdir else "",
        "HostsPath": os.path.join(cdir, "hosts") if cdir else "",
        "LogPath": os.path.join(cdir, "container.log") if cdir else "",
        "Name": "/" + name.lstrip("/"),
        "RestartCount": int(_attr(state, "restart_count", default=0) or 0),
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": _host_config(
            spec, c, [m for m in mounts if m["Destination"] not in anonymous], network
        ),
        "GraphDriver": _graph_driver(mgr, _attr(c, "image_id", default=""), cdir),
        "Mounts": mounts,
        "Config": {
            "Hostname": _attr(c, "hostname", default="") or (cid or "")[:12],
            "Domainname": "",
            "User": _attr(spec, "user", default="") or image_config.get("User", ""),
            "AttachStdin": interactive and attached,
            "AttachStdout": attached,
            "AttachStderr": attached,
            "Tty": bool(_attr(spec, "tty", default=False)),
            "OpenStdin": interactive,
            "StdinOnce": interactive and attached,
            "Env": env,
            "Cmd": _attr(spec, "cmd", default=None) or image_config.get("Cmd"),
            "Image": _attr(spec, "image", default="") or "",
            "Volumes": volumes or None,
            "WorkingDir": _attr(spec, "workdir", default="") or image_config.get("WorkingDir", ""),
            "Entrypoint": _entrypoint(spec, image_config),
            "OnBuild": None,
            "Labels": dict(_attr(spec, "labels", default=None) or {}),
            **_stop_config(spec, image_config),
            **_exposed(spec, image_config),
        },
        "NetworkSettings": _network_settings(
            network,
            int(_attr(state, "pid", default=0) or 0) if running else 0,
            _attr(state, "ports", default=None) or [] if running else [],
        ),
    }


def _host_config(spec: Any, c: Any, mounts: list[dict], network: str) -> dict:
    """HostConfig: what the container was given, and Docker's defaults for what dockweb does
    not offer (no limits, no restart policy, no ports), so templates that read them work."""
    from dockweb.runtime.oci import MASKED_PATHS, READONLY_PATHS

    memory = int(_attr(spec, "memory", default=0) or 0)
    tmpfs = _attr(spec, "tmpfs", default=None) or {}
    return {
        "Binds": [_bind_string(m) for m in mounts] or None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": network,
        "PortBindings": _port_bindings(_attr(spec, "ports", default=None) or []),
        "RestartPolicy": dict(
            _attr(spec, "restart", default=None) or {"Name": "no", "MaximumRetryCount": 0}
        ),
        "AutoRemove": bool(_attr(spec, "auto_remove", default=False)),
        "VolumeDriver": "",
        "VolumesFrom": None,
        "ConsoleSize": [0, 0],
        "CapAdd": _caps(_attr(spec, "cap_add", default=None)),
        "CapDrop": _caps(_attr(spec, "cap_drop", default=None)),
        "CgroupnsMode": "host",
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": list(_attr(spec, "extra_hosts", default=None) or []) or None,
        "GroupAdd": list(_attr(spec, "group_add", default=None) or []) or None,
        "IpcMode": "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": False,
        "PublishAllPorts": False,
        "ReadonlyRootfs": bool(_attr(spec, "read_only", default=False)),
        "SecurityOpt": None,
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": int(_attr(spec, "shm_size", default=0) or 0) or 67108864,
        "Runtime": _attr(c, "runtime", default="crun") or "crun",
        "Isolation": "",
        "CpuShares": 0,
        "Memory": memory,
        "NanoCpus": int(_attr(spec, "nano_cpus", default=0) or 0),
        "CgroupParent": "",
        "BlkioWeight": 0,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [],
        "CpuPeriod": 0,
        "CpuQuota": 0,
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": "",
        "CpusetMems": "",
        "Devices": [],
        "DeviceCgroupRules": None,
        "DeviceRequests": None,
        "KernelMemory": 0,
        "KernelMemoryTCP": 0,
        "MemoryReservation": 0,
        "MemorySwap": memory * 2,
        "MemorySwappiness": None,
        "OomKillDisable": False,
        "PidsLimit": int(_attr(spec, "pids_limit", default=0) or 0) or None,
        "Ulimits": list(_attr(spec, "ulimits", default=None) or []),
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": list(MASKED_PATHS),
        "ReadonlyPaths": list(READONLY_PATHS),
        **({"Tmpfs": dict(tmpfs)} if tmpfs else {}),
    }


def _exposed(spec: Any, image_config: dict) -> dict:
    """Config.ExposedPorts: the image's and the published ones (absent when none)."""
    exposed = dict(image_config.get("ExposedPorts") or {})
    for p in _attr(spec, "ports", default=None) or []:
        exposed.setdefault(f"{p['container_port']}/{p['proto']}", {})
    return {"ExposedPorts": exposed} if exposed else {}


def _port_bindings(ports: list[dict]) -> dict:
    """HostConfig.PortBindings: what -p asked, by container port."""
    out: dict[str, list[dict]] = {}
    for p in ports:
        out.setdefault(f"{p['container_port']}/{p['proto']}", []).append(
            {"HostIp": p["host_ip"], "HostPort": str(p["host_port"] or "")}
        )
    return out


def published_ports(ports: list[dict]) -> dict:
    """NetworkSettings.Ports: the host ports bound while it runs."""
    out: dict[str, list[dict]] = {}
    for p in ports:
        out.setdefault(f"{p['container_port']}/{p['proto']}", []).append(
            {"HostIp": p["host_ip"], "HostPort": str(p["host_port"])}
        )
    return out


def _stop_config(spec: Any, image_config: dict) -> dict:
    """Config.StopSignal (given or the image's) and StopTimeout (when given), as dockerd."""
    out = {}
    signal = _attr(spec, "stop_signal", default="") or image_config.get("StopSignal")
    if signal:
        out["StopSignal"] = signal
    timeout = _attr(spec, "stop_timeout", default=None)
    if timeout is not None:
        out["StopTimeout"] = timeout
    return out


def _caps(names: list[str] | None) -> list[str] | None:
    """CapAdd/CapDrop as dockerd keeps them: normalized (CAP_X, ALL)."""
    from dockweb.runtime.oci import normalize_capability

    out = []
    for name in names or []:
        try:
            out.append(normalize_capability(name))
        except ValueError:
            out.append(name)
    return out or None


def _graph_driver(mgr: ContainerManager | None, image_id: str, cdir: str) -> dict:
    """GraphDriver as docker's overlay2 shows it: the lower directories top first (the init
    layer, then the image's layers), the writable layer, its work dir and the merged root."""
    lower = [os.path.join(cdir, "init")]
    if mgr is not None and image_id:
        try:
            layers = mgr.store.get_image(image_id).layers
        except DockwebError:
            layers = []
        lower += [mgr.store.layer_diff(ch) for ch in reversed(layers)]
    return {
        "Data": {
            "LowerDir": ":".join(lower),
            "MergedDir": os.path.join(cdir, "rootfs"),
            "UpperDir": os.path.join(cdir, "upper"),
            "WorkDir": os.path.join(cdir, "work"),
        },
        "Name": "overlay",
    }


def _network_settings(network: str, pid: int, ports: list[dict] = ()) -> dict:
    """NetworkSettings for the two networks dockweb has: no addresses, no ports."""
    endpoint = {
        "IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "", "EndpointID": "",
        "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None,
    }
    return {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": f"/proc/{pid}/ns/net" if pid else "",
        "Ports": published_ports(list(ports)),
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": {network: endpoint},
    }


def _entrypoint(spec: Any, image_config: dict) -> list[str] | None:
    ep = _attr(spec, "entrypoint", default=None)
    if ep is None:
        return image_config.get("Entrypoint")
    return list(ep) or None


def _mount_point(m: Any) -> dict:
    if isinstance(m, dict) and "Destination" in m:
        return m
    kind = _attr(m, "type", default="volume")
    readonly = not _attr(m, "rw", default=True) or bool(_attr(m, "readonly", default=False))
    out = {"Type": kind}
    if kind == "volume":
        out["Name"] = _attr(m, "name", "source", default="")
    out.update(
        {
            "Source": _attr(m, "source", "mountpoint", default=""),
            "Destination": _attr(m, "target", "destination", default=""),
        }
    )
    if kind == "volume":
        out["Driver"] = "local"
        # dockerd's modes: "z" for a named volume given as a bind (-v name:/dst), "" for an
        # anonymous one (-v /dst, or the image's VOLUME)
        anonymous = bool(_attr(m, "anonymous", default=False))
        out["Mode"] = "ro" if readonly else ("" if anonymous else "z")
    else:
        out["Mode"] = "ro" if readonly else ""
    out["RW"] = not readonly
    out["Propagation"] = "" if kind == "volume" else "rprivate"
    return out


def _bind_string(m: dict) -> str:
    source = m.get("Name") if m["Type"] == "volume" else m["Source"]
    s = f"{source}:{m['Destination']}" if source else m["Destination"]
    return s + (":ro" if not m.get("RW", True) else "")


def _parse_go_time(value: str) -> datetime | None:
    from dockweb.runtime.store import parse_time

    if not value or value.startswith("0001-01-01"):
        return None
    return parse_time(value)


def row_fields(info: dict, size: tuple[int, int] | None) -> dict:
    state = info["State"]
    fields = {
        "name": info["Name"].lstrip("/"),
        "image": info["Config"]["Image"],
        "image_id": info["Image"],
        "path": info["Path"],
        "args": info["Args"],
        "status": state["Status"],
        "exit_code": state["ExitCode"],
        "error": state.get("Error", ""),
        "pid": state["Pid"],
        "created": _parse_go_time(info["Created"]) or datetime.now(UTC),
        "started_at": _parse_go_time(state["StartedAt"]),
        "finished_at": _parse_go_time(state["FinishedAt"]),
        "auto_remove": info["HostConfig"]["AutoRemove"],
        "tty": info["Config"]["Tty"],
        "network": info["HostConfig"]["NetworkMode"],
        "labels": info["Config"]["Labels"] or {},
        "mounts": info["Mounts"],
        "inspect": info,
    }
    if size is not None:
        fields["size_rw"], fields["size_root_fs"] = size
    return fields


# -- ports as docker ps shows them ----------------------------------------------------------


def summary_ports(info: dict) -> list[dict]:
    """types.Container's Ports: the published ones, then the exposed ones not published;
    none once it has stopped (dockerd lists what its network endpoint holds)."""
    out: list[dict] = []
    if not info["State"].get("Running"):
        return out
    published = (info.get("NetworkSettings") or {}).get("Ports") or {}
    for key, binds in published.items():
        port, _, proto = key.partition("/")
        for b in binds or []:
            out.append({"IP": b["HostIp"], "PrivatePort": int(port),
                        "PublicPort": int(b["HostPort"]), "Type": proto})
    for key in (info.get("Config") or {}).get("ExposedPorts") or {}:
        if key not in published:
            port, _, proto = key.partition("/")
            out.append({"PrivatePort": int(port), "Type": proto})
    return out


def display_ports(ports: list[dict]) -> str:
    """docker/cli DisplayablePorts: ``0.0.0.0:8080->80/tcp``, consecutive ports as ranges
    (``0.0.0.0:8000-8001->80-81/tcp``), exposed-only ports as ``80/tcp``, sorted."""
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for p in ports:
        key = (p.get("IP", ""), p["Type"], "PublicPort" in p)
        groups.setdefault(key, []).append((p.get("PublicPort", 0), p["PrivatePort"]))
    out = []
    for (ip, proto, public), pairs in groups.items():
        pairs.sort(key=lambda x: (x[1], x[0]))
        runs: list[list[tuple[int, int]]] = []
        for pair in pairs:
            last = runs[-1][-1] if runs else None
            if last and pair[1] == last[1] + 1 and (not public or pair[0] == last[0] + 1):
                runs[-1].append(pair)
            else:
                runs.append([pair])
        for run in runs:
            private = str(run[0][1]) if len(run) == 1 else f"{run[0][1]}-{run[-1][1]}"
            if public:
                host = str(run[0][0]) if len(run) == 1 else f"{run[0][0]}-{run[-1][0]}"
                out.append((run[0][1], f"{ip}:{host}->{private}/{proto}"))
            else:
                out.append((run[0][1], f"{private}/{proto}"))
    return ", ".join(text for _, text in sorted(out))
