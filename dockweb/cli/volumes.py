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
    volumes = services.list_volumes(parse_filters(args.filter or []))
    fmt = "{{.Name}}" if args.quiet else (args.format or VOLUME_TABLE)
    print_out(format_rows(volume_rows(volumes), fmt, VOLUME_HEADERS, type_name=VOLUME_TYPE))
    return 0


def cmd_volume_create(args) -> int:
    if args.name and args.name_flag and args.name != args.name_flag:
        print_error(
            "Conflicting options: either specify --name or provide positional arg, not both"
        )
        return 1
    name = args.name or args.name_flag or ""
    labels = {}
    for item in args.label or []:
        k, _, v = item.partition("=")
        labels[k] = v
    options = dict(o.partition("=")[::2] for o in args.opt or [])
    try:
        print(services.create_volume(name, labels, options=options))
    except DockwebError as err:
        print_error(daemon_error(err))
        return 1
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
