"""``docker ps``: types.Container (what the client gets) from a ContainerJSON, the ports it
shows, its filters, and docker/cli's ContainerContext rows (the values ``--format`` sees)."""

from __future__ import annotations

import json
import re
import time

from dockweb.docker.filters import match_labels
from dockweb.docker.tabwriter import truncate_display
from dockweb.docker.template_funcs import lookup_method
from dockweb.docker.times import created_at, unix_ns
from dockweb.runtime import reference as refs
from dockweb.runtime.containers.health import STATES as HEALTH_STATES
from dockweb.runtime.containers.health import status_of as health_status
from dockweb.runtime.containers.state import health_label, status_text
from dockweb.runtime.errors import DockwebError
from dockweb.runtime.units import go_unix, human_duration, human_size, parse_go_time


def container_summary(info: dict, size: tuple[int, int] | None = None) -> dict:
    """docker's types.Container (what `docker ps` gets) from a ContainerJSON."""
    state = info["State"]
    args = [f"'{a}'" if " " in a else a for a in info.get("Args") or []]
    command = f"{info['Path']} {' '.join(args)}" if args else info["Path"]
    out = {
        "Id": info["Id"],
        "Names": [info["Name"] if info["Name"].startswith("/") else "/" + info["Name"]],
        "Image": info["Config"].get("Image") or info["Image"],
        "ImageID": info["Image"],
        "Command": command,
        "Created": go_unix(info["Created"]),
        "_created_ns": unix_ns(info["Created"]),  # ours: ps's order and before/since
        "State": state["Status"],
        "Status": status_text(
            state["Status"],
            started_at=parse_go_time(state["StartedAt"]),
            finished_at=parse_go_time(state["FinishedAt"]),
            exit_code=state["ExitCode"],
            health=health_label(state.get("Health")),
        ),
        "_health": health_status(state.get("Health")),  # ours: ps -f health=
        "Labels": info["Config"].get("Labels") or {},
        "Mounts": info.get("Mounts") or [],
        "NetworkMode": info["HostConfig"].get("NetworkMode", "none"),
        "Ports": summary_ports(info),
        # ours: the networks' names and IDs (ps's NETWORKS column, the network filter)
        "_networks": {
            name: (e or {}).get("NetworkID", "")
            for name, e in ((info.get("NetworkSettings") or {}).get("Networks") or {}).items()
        },
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out


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
        if not published.get(key):
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


def image_column(image: str, image_id: str, trunc: bool) -> str:
    """docker/cli ContainerContext.Image()."""
    if not image:
        return "<no image>"
    if trunc:
        short = image_id.split(":", 1)[-1][:12]
        if short and short == image.split(":", 1)[-1][:12]:
            return short
        try:
            ref = refs.parse_normalized_named(image)
        except DockwebError:
            return image
        if ref.tag:
            return ref.familiar_string() if not ref.digest else (
                refs.parse_normalized_named(f"{ref.name}:{ref.tag}").familiar_string()
            )
        return ref.familiar_name
    return image


def size_text(size_rw: int, size_root_fs: int) -> str:
    """docker/cli's ContainerContext.Size(): "1.2kB (virtual 4.26MB)", the writable layer
    alone when the root filesystem's size is unknown (0)."""
    srw = human_size(size_rw, 3)
    if size_root_fs > 0:
        return f"{srw} (virtual {human_size(size_root_fs, 3)})"
    return srw


def ps_rows(summaries: list[dict], *, trunc: bool = True, now: float | None = None) -> list[dict]:
    """docker/cli's ContainerContext for each container: the values --format sees."""
    now = time.time() if now is None else now
    rows = []
    for s in summaries:
        names = [n.lstrip("/") for n in s["Names"]]
        if trunc:
            names = [next((n for n in names if "/" not in n), names[0])] if names else []
        command = truncate_display(s["Command"], 20) if trunc else s["Command"]
        labels = s.get("Labels") or {}
        size = size_text(s["SizeRw"], s["SizeRootFs"]) if "SizeRw" in s else ""
        mounts = [m.get("Name") or m.get("Source", "") for m in s.get("Mounts") or []]
        row = {
            "ID": s["Id"][:12] if trunc else s["Id"],
            "Image": image_column(s["Image"], s["ImageID"], trunc),
            "Command": json.dumps(command, ensure_ascii=False),
            "CreatedAt": created_at(s["Created"]),
            "RunningFor": human_duration(now - s["Created"]) + " ago",
            "Ports": display_ports(s.get("Ports") or []),
            "State": s["State"],
            "Status": s["Status"],
            "Size": size,
            "Names": ",".join(names),
            "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "Mounts": ",".join(
                truncate_display(m, 15) if trunc and len(m) == 64 else m for m in mounts
            ),
            "Networks": ",".join(s.get("_networks") or {}),
            "LocalVolumes": str(
                sum(1 for m in s.get("Mounts") or [] if m.get("Driver") == "local")
            ),
        }
        row["Label"] = lookup_method(labels)
        rows.append(row)
    return rows


def filter_summaries(summaries: list[dict], filters: dict[str, list[str]]) -> list[dict]:
    """``ps -f`` as dockerd's list filters: status, name, id, label, exited, ancestor,
    before and since (a container's full ID or name), volume (name, source or destination),
    network, health (starting, healthy, unhealthy, or none: no health check), is-task,
    publish and expose. dockweb has no swarm tasks and no published ports: is-task=false
    keeps every container, is-task=true and any publish or expose keep none."""
    accepted = {
        "status", "name", "id", "label", "exited", "ancestor", "before", "since", "volume",
        "network", "health", "is-task", "publish", "expose",
    }
    for key in filters:
        if key not in accepted:
            raise DockwebError(f"Invalid filter '{key}'")
    states = {"created", "running", "paused", "restarting", "removing", "exited", "dead"}
    for v in filters.get("status", []):
        if v not in states:
            raise DockwebError(f"Unrecognised filter value for status: {v}")
    for v in filters.get("health", []):
        if v not in HEALTH_STATES:
            raise DockwebError(f"Unrecognised filter value for health: {v}")
    for v in filters.get("is-task", []):
        if v not in ("true", "false"):
            raise DockwebError(f"Invalid filter 'is-task=[{v}]'")
    for key in ("publish", "expose"):
        for v in filters.get(key, []):
            for port in v.partition("/")[0].split("-"):
                if not port.isdigit() or int(port) > 65535:
                    raise DockwebError(
                        f"error while looking up for {key} {v}: strconv.ParseUint: "
                        f'parsing "{port}": invalid syntax'
                    )
    if filters.get("publish") or filters.get("expose"):
        return []  # no container publishes or exposes a port
    if "false" not in filters.get("is-task", ["false"]):
        return []
    order = {}  # (created, id): the order ps lists in, newest first
    for key in ("before", "since"):
        if key in filters:
            ref = filters[key][-1]
            found = [
                x for x in summaries
                if x["Id"] == ref or ref.lstrip("/") in (n.lstrip("/") for n in x["Names"])
            ]
            if not found:
                raise DockwebError(f"no such container {ref}")
            order[key] = (found[0].get("_created_ns", 0), found[0]["Id"])
    out = []
    for s in summaries:
        here = (s.get("_created_ns", 0), s["Id"])
        if "before" in order and here >= order["before"]:
            continue
        if "since" in order and here <= order["since"]:
            continue
        if "volume" in filters and not any(
            v in (m.get("Name") or m.get("Source"), m.get("Destination"))
            for v in filters["volume"]
            for m in s.get("Mounts") or []
        ):
            continue
        if "network" in filters and not any(
            f == name or (nid and nid.startswith(f)) for f in filters["network"] for name, nid in
            (s.get("_networks") or {}).items()
        ):
            continue
        if "health" in filters and s.get("_health", "none") not in filters["health"]:
            continue
        if "status" in filters and s["State"] not in filters["status"]:
            continue
        if "name" in filters and not any(
            re.search(p, n.lstrip("/")) or re.search(p, n)
            for p in filters["name"]
            for n in s["Names"]
        ):
            continue
        if "id" in filters and not any(s["Id"].startswith(p) for p in filters["id"]):
            continue
        if "label" in filters and not match_labels(filters["label"], s.get("Labels")):
            continue
        if "exited" in filters:
            code = None
            if s["State"] == "exited":
                code = s["Status"].split("(", 1)[-1].split(")", 1)[0]
            if code is None or code not in filters["exited"]:
                continue
        if "ancestor" in filters and not any(
            a in (s["Image"], s["ImageID"]) or s["ImageID"].split(":", 1)[-1].startswith(a)
            or image_column(s["Image"], s["ImageID"], True) == a
            for a in filters["ancestor"]
        ):
            continue
        out.append(s)
    return out
