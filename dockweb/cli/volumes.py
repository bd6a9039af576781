"""The volume commands: volume ls, create, inspect, rm (``volume prune`` is system.py's)."""

from __future__ import annotations

from containers import services
from dockweb.cli.common import (
    client_not_found,
    daemon_error,
    is_not_found,
    print_error,
    print_inspect,
    print_out,
)
from dockweb.docker.filters import parse_filters
from dockweb.docker.formatter import format_rows
from dockweb.docker.volumes import volume_rows
from dockweb.runtime.errors import DockwebError

VOLUME_TYPE = "*formatter.volumeContext"


VOLUME_HEADERS = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Links": "LINKS",
    "Size": "SIZE",
}


VOLUME_TABLE = "table {{.Driver}}\t{{.Name}}"


def cmd_volume_ls(args) -> int:
    filters = parse_filters(args.filter or [])
    for key in filters:
        if key not in ("dangling", "name", "driver", "label"):
            raise DockwebError(f"Invalid filter '{key}'")
    volumes = services.list_volumes()
    if filters:
        used = _volumes_in_use()
        out = []
        for v in volumes:
            if "name" in filters and not any(p in v["Name"] for p in filters["name"]):
                continue
            if "driver" in filters and v["Driver"] not in filters["driver"]:
                continue
            if "dangling" in filters:
                want = filters["dangling"][-1] in ("true", "1")
                if (v["Name"] not in used) != want:
                    continue
            if "label" in filters:
                labels = v.get("Labels") or {}
                if not all(
                    k in labels and (not eq or labels[k] == val)
                    for k, eq, val in (i.partition("=") for i in filters["label"])
                ):
                    continue
            out.append(v)
        volumes = out
    volumes.sort(key=lambda v: v["Name"])
    fmt = "{{.Name}}" if args.quiet else (args.format or VOLUME_TABLE)
    print_out(format_rows(volume_rows(volumes), fmt, VOLUME_HEADERS, type_name=VOLUME_TYPE))
    return 0


def _volumes_in_use() -> set[str]:
    used = set()
    for c in services.get_manager().list(all=True):
        for m in services.inspect_container(c)["Mounts"]:
            if m.get("Type") == "volume":
                used.add(m.get("Name"))
    return used


def cmd_volume_create(args) -> int:
    if args.name and args.name_flag and args.name != args.name_flag:
        print_error(
            "Conflicting options: either specify --name or provide positional arg, not both"
        )
        return 1
    name = args.name or args.name_flag or ""
    if args.opt:  # the local driver's type/device/o (mounts of other file systems): not here
        keys = ", ".join(sorted({o.partition("=")[0] for o in args.opt}))
        print_error(f"Error response from daemon: create {name or '<anonymous>'}: the local driver "
             f"of dockweb takes no options (given: {keys}); a volume is a directory")
        return 1
    labels = {}
    for item in args.label or []:
        k, _, v = item.partition("=")
        labels[k] = v
    print(services.create_volume(name, labels))
    return 0


def cmd_volume_inspect(args) -> int:
    results, errors = [], []
    for name in args.names:
        try:
            results.append(services.get_volume(name))
        except DockwebError as err:
            errors.append(
                client_not_found("volume", name) if is_not_found(err) else daemon_error(err)
            )
    return print_inspect(results, errors, args.format)


def cmd_volume_rm(args) -> int:
    status = 0
    for name in args.names:
        try:
            services.remove_volume(name, force=args.force)
        except DockwebError as err:
            if is_not_found(err):
                if args.force:
                    print(name)
                    continue
                print_error(client_not_found("volume", name))
            else:
                print_error(daemon_error(err))
            status = 1
            continue
        print(name)
    return status
