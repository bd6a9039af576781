"""A runtime Container into ``docker inspect``'s ContainerJSON, and that into a Container
row's fields; a runtime volume into docker's Volume object.

Without Django: containers.services uses these for every verb; the CLI's fast ``run`` path
(dockweb/cli/fastrun.py) and the supervisor's exit hook (containers/exit_hook.py) use them
through containers/fastmirror.py, so that all three mirror a container into the same row.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from dockweb.docker.times import go_time
from dockweb.runtime.containers import health
from dockweb.runtime.errors import DockwebError
from dockweb.runtime.imageconfig import in_field_order
from dockweb.runtime.units import parse_go_time

# For type checkers only, without importing typing (4 ms of the CLI's fast run path)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockweb.runtime.containers import ContainerManager


def attr(obj: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` that ``obj`` has, as a key of a dict or an attribute."""
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
    spec = attr(c, "spec")
    state = attr(c, "state")
    status = attr(state, "status", default="created")
    status = getattr(status, "value", status)
    status = str(status).lower()
    running = status in ("running", "paused", "restarting")
    path = attr(c, "path", default="") or ""
    args = list(attr(c, "args", default=[]) or [])
    image_config = _image_config(mgr, attr(c, "image_id", default=""))
    records = attr(c, "mounts", default=None) or []
    mounts = [_mount_point(m) for m in records]
    anonymous = {
        attr(m, "destination", "target", default="")
        for m in records
        if attr(m, "anonymous", default=False)
    }
    # Config.Volumes: the anonymous volumes, from -v /dst or the image's VOLUME
    volumes = {d: {} for d in sorted(anonymous | set(image_config.get("Volumes") or {}))}
    name = attr(c, "name", default="") or ""
    from dockweb.runtime.oci import merge_env

    env = merge_env(list(image_config.get("Env") or []), list(attr(spec, "env", default=[]) or []))
    cid = attr(c, "id")
    cdir = os.path.join(root, "containers", cid) if cid else ""
    network = attr(spec, "network", default="none") or "none"
    # HostConfig.NetworkMode: as given ("default" when nothing was, as dockerd)
    network_mode = attr(spec, "network_mode", default="") or network
    # docker run -d attaches nothing (and so has no stdin to close once)
    attached = not attr(spec, "detach", default=False)
    interactive = bool(attr(spec, "interactive", default=False))
    return {
        "Id": cid,
        "Created": go_time(attr(c, "created")),
        "Path": path,
        "Args": args,
        "State": {
            "Status": status,
            "Running": running,
            "Paused": status == "paused",
            "Restarting": status == "restarting",
            "OOMKilled": False,
            "Dead": status == "dead",
            "Pid": int(attr(state, "pid", default=0) or 0) if running else 0,
            "ExitCode": int(attr(state, "exit_code", default=0) or 0),
            "Error": attr(state, "error", default="") or "",
            "StartedAt": go_time(attr(state, "started_at", "started")),
            "FinishedAt": go_time(attr(state, "finished_at", "finished")),
            **_health(attr(state, "health", default=None)),
        },
        "Image": attr(c, "image_id", default="") or "",
        "ResolvConfPath": os.path.join(cdir, "resolv.conf") if cdir else "",
        "HostnamePath": os.path.join(cdir, "hostname") if cdir else "",
        "HostsPath": os.path.join(cdir, "hosts") if cdir else "",
        "LogPath": os.path.join(cdir, "container.log") if cdir else "",
        "Name": "/" + name.lstrip("/"),
        "RestartCount": int(attr(state, "restart_count", default=0) or 0),
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": _apparmor_profile(spec),
        "ExecIDs": None,
        "HostConfig": _host_config(
            spec, c, [m for m in mounts if m["Destination"] not in anonymous], network_mode
        ),
        "GraphDriver": _graph_driver(mgr, attr(c, "image_id", default=""), cdir),
        "Mounts": mounts,
        # container.Config in Go's field order (ExposedPorts after AttachStderr, as dockerd)
        "Config": in_field_order(
            {
                "Hostname": attr(c, "hostname", default="") or (cid or "")[:12],
                "Domainname": "",
                "User": attr(spec, "user", default="") or image_config.get("User", ""),
                "AttachStdin": interactive and attached,
                "AttachStdout": attached,
                "AttachStderr": attached,
                "Tty": bool(attr(spec, "tty", default=False)),
                "OpenStdin": interactive,
                "StdinOnce": interactive and attached,
                "Env": env,
                "Cmd": attr(spec, "cmd", default=None) or image_config.get("Cmd"),
                "Image": attr(spec, "image", default="") or "",
                "Volumes": volumes or None,
                "WorkingDir": (
                    attr(spec, "workdir", default="") or image_config.get("WorkingDir", "")
                ),
                "Entrypoint": _entrypoint(spec, image_config),
                "OnBuild": None,
                "Labels": dict(attr(spec, "labels", default=None) or {}),
                "Healthcheck": health.merge(
                    attr(spec, "healthcheck", default=None), image_config.get("Healthcheck")
                ),
                **_stop_config(spec, image_config),
                **_exposed(spec, image_config),
            }
        ),
        "NetworkSettings": _network_settings(
            c,
            mgr,
            root,
            network,
            int(attr(state, "pid", default=0) or 0) if running else 0,
            attr(state, "ports", default=None) or [] if running else [],
            exposed=_exposed(spec, image_config).get("ExposedPorts") or {},
            started=not go_time(attr(state, "started_at", "started")).startswith("0001"),
        ),
    }


def _health(health: dict | None) -> dict:
    """State.Health (only for a container with a health check): status, failing streak
    and the last results, their times as dockerd writes them."""
    if health is None:
        return {}
    log = [
        {
            "Start": go_time(r.get("Start")),
            "End": go_time(r.get("End")),
            "ExitCode": int(r.get("ExitCode", 0)),
            "Output": r.get("Output", ""),
        }
        for r in health.get("Log") or []
    ]
    status = health.get("Status") or "unhealthy"
    streak = health.get("FailingStreak", 0)
    return {"Health": {"Status": status, "FailingStreak": streak, "Log": log}}


def _host_config(spec: Any, c: Any, mounts: list[dict], network: str) -> dict:
    """HostConfig: what the container was given, and Docker's defaults for what dockweb does
    not offer (no limits, no restart policy, no ports), so templates that read them work."""
    from dockweb.runtime.oci import MASKED_PATHS, READONLY_PATHS

    memory = int(attr(spec, "memory", default=0) or 0)
    tmpfs = attr(spec, "tmpfs", default=None) or {}
    privileged = bool(attr(spec, "privileged", default=False))
    return {
        "Binds": [_bind_string(m) for m in mounts] or None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": network,
        "PortBindings": _port_bindings(attr(spec, "ports", default=None) or []),
        "RestartPolicy": dict(
            attr(spec, "restart", default=None) or {"Name": "no", "MaximumRetryCount": 0}
        ),
        "AutoRemove": bool(attr(spec, "auto_remove", default=False)),
        "VolumeDriver": "",
        "VolumesFrom": None,
        "ConsoleSize": [0, 0],
        "CapAdd": _caps(attr(spec, "cap_add", default=None)),
        "CapDrop": _caps(attr(spec, "cap_drop", default=None)),
        "CgroupnsMode": "host",
        "Dns": list(attr(spec, "dns", default=None) or []),
        "DnsOptions": list(attr(spec, "dns_options", default=None) or []),
        "DnsSearch": list(attr(spec, "dns_search", default=None) or []),
        "ExtraHosts": list(attr(spec, "extra_hosts", default=None) or []) or None,
        "GroupAdd": list(attr(spec, "group_add", default=None) or []) or None,
        "IpcMode": "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": bool(attr(spec, "privileged", default=False)),
        "PublishAllPorts": bool(attr(spec, "publish_all", default=False)),
        "ReadonlyRootfs": bool(attr(spec, "read_only", default=False)),
        "SecurityOpt": _security_opt(spec),
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": int(attr(spec, "shm_size", default=0) or 0) or 67108864,
        "Runtime": attr(c, "runtime", default="crun") or "crun",
        "Isolation": "",
        "CpuShares": 0,
        "Memory": memory,
        "NanoCpus": int(attr(spec, "nano_cpus", default=0) or 0),
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
        "PidsLimit": int(attr(spec, "pids_limit", default=0) or 0) or None,
        "Ulimits": list(attr(spec, "ulimits", default=None) or []),
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": None if privileged else list(MASKED_PATHS),
        "ReadonlyPaths": None if privileged else list(READONLY_PATHS),
        **({"Tmpfs": dict(tmpfs)} if tmpfs else {}),
    }


def _security_opt(spec: Any) -> list[str] | None:
    """HostConfig.SecurityOpt as dockerd keeps it: the options given (a seccomp profile as
    its JSON text) and, for a privileged container without a ``label`` option,
    ``label=disable`` (dockerd's generateSecurityOpt)."""
    opts = list(attr(spec, "security_opt", default=None) or [])
    if attr(spec, "privileged", default=False) and not any(
        o.split("=")[0] == "label" for o in opts
    ):
        opts.append("label=disable")
    return opts or None


def _apparmor_profile(spec: Any) -> str:
    """AppArmorProfile as dockerd's saveAppArmorConfig sets it: "" without AppArmor on the
    host; the one asked for; unconfined for a privileged container; else docker-default."""
    from dockweb.runtime import apparmor

    if not apparmor.supported():
        return ""
    requested = ""
    for opt in attr(spec, "security_opt", default=None) or []:
        key, _, value = opt.partition("=" if "=" in opt else ":")
        if key == "apparmor":
            requested = value
    if requested:
        return requested
    return apparmor.UNCONFINED if attr(spec, "privileged", default=False) else (
        apparmor.DEFAULT_PROFILE
    )


def _exposed(spec: Any, image_config: dict) -> dict:
    """Config.ExposedPorts: the image's and the published ones (absent when none)."""
    exposed = dict(image_config.get("ExposedPorts") or {})
    for p in attr(spec, "ports", default=None) or []:
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
    signal = attr(spec, "stop_signal", default="") or image_config.get("StopSignal")
    if signal:
        out["StopSignal"] = signal
    timeout = attr(spec, "stop_timeout", default=None)
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


def _network_settings(
    c: Any,
    mgr: ContainerManager | None,
    root: str,
    network: str,
    pid: int,
    ports: list[dict] = (),
    *,
    exposed: dict | None = None,
    started: bool = False,
) -> dict:
    """NetworkSettings (dockweb.docker.networks): the container's networks and their
    addresses while it runs; Ports: the published ones and, while it runs, the exposed ones
    not published (null), as dockerd."""
    from dockweb.docker.networks import network_settings

    published = published_ports(list(ports))
    if pid:
        for key in exposed or {}:
            published.setdefault(key, None)
    nm = getattr(mgr, "networks", None)
    if nm is None and root and pid:
        from dockweb.runtime.networks import NetworkManager

        nm = NetworkManager(root)
    sandbox = ""
    if pid:
        netns = getattr(mgr, "netns", None)
        bridged = network not in ("none", "host") and not network.startswith("container:")
        sandbox = (
            netns.path(attr(c, "id")) if bridged and netns is not None else f"/proc/{pid}/ns/net"
        )
    return network_settings(
        c, nm, mode=network, pid=pid, ports=published, started=started, sandbox_key=sandbox
    )


def _entrypoint(spec: Any, image_config: dict) -> list[str] | None:
    ep = attr(spec, "entrypoint", default=None)
    if ep is None:
        return image_config.get("Entrypoint")
    return list(ep) or None


def _mount_point(m: Any) -> dict:
    if isinstance(m, dict) and "Destination" in m:
        return m
    kind = attr(m, "type", default="volume")
    readonly = not attr(m, "rw", default=True) or bool(attr(m, "readonly", default=False))
    out = {"Type": kind}
    if kind == "volume":
        out["Name"] = attr(m, "name", "source", default="")
    out.update(
        {
            "Source": attr(m, "source", "mountpoint", default=""),
            "Destination": attr(m, "target", "destination", default=""),
        }
    )
    if kind == "volume":
        out["Driver"] = "local"
        # dockerd's modes: "z" for a named volume given as a bind (-v name:/dst), "" for an
        # anonymous one (-v /dst, or the image's VOLUME)
        anonymous = bool(attr(m, "anonymous", default=False))
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
        "created": parse_go_time(info["Created"]) or datetime.now(UTC),
        "started_at": parse_go_time(state["StartedAt"]),
        "finished_at": parse_go_time(state["FinishedAt"]),
        "auto_remove": info["HostConfig"]["AutoRemove"],
        "tty": info["Config"]["Tty"],
        # the network it is on ("bridge" for NetworkMode "default"), else its mode
        "network": next(
            iter((info.get("NetworkSettings") or {}).get("Networks") or {}),
            info["HostConfig"]["NetworkMode"],
        ),
        "labels": info["Config"]["Labels"] or {},
        "mounts": info["Mounts"],
        "inspect": info,
    }
    if size is not None:
        fields["size_rw"], fields["size_root_fs"] = size
    return fields


def inspect_volume(v: Any) -> dict:
    """docker's Volume object for a runtime volume."""
    if isinstance(v, dict):
        return v
    labels = getattr(v, "labels", None)
    return {
        "CreatedAt": go_time(attr(v, "created_at", "created", default="")),
        "Driver": getattr(v, "driver", "local") or "local",
        "Labels": labels if labels else ({} if not getattr(v, "anonymous", False) else None),
        "Mountpoint": getattr(v, "mountpoint", ""),
        "Name": v.name,
        "Options": getattr(v, "options", None)
        or ({} if not getattr(v, "anonymous", False) else None),
        "Scope": "local",
    }
