"""The commands that look at containers: ps, logs, inspect, diff, top, stats, port."""

from __future__ import annotations

import sys
import time

from containers import services
from dockweb.cli.common import (
    client_not_found,
    daemon_error,
    print_error,
    print_inspect,
    print_out,
)
from dockweb.cli.lookup import find_container
from dockweb.docker.filters import parse_filters
from dockweb.docker.formatter import format_rows
from dockweb.docker.gofmt import FormatError
from dockweb.docker.ps import container_summary, filter_summaries, ps_rows
from dockweb.docker.stats import stats_row
from dockweb.docker.tabwriter import TabWriter
from dockweb.docker.template import Template
from dockweb.docker.template_funcs import lookup_method
from dockweb.runtime.errors import DockwebError, NotFound
from dockweb.runtime.units import TimestampError, get_timestamp
from images import services as image_services

# The Go types docker/cli renders each listing with, named by "can't evaluate field" errors.
PS_TYPE = "*formatter.ContainerContext"


STATS_TYPE = "*container.statsContext"


PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}


PS_TABLE = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}"
    "\t{{.Names}}"
)


STATS_HEADERS = {
    "ID": "CONTAINER ID",
    "Container": "CONTAINER",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}


STATS_TABLE = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
    "\t{{.BlockIO}}\t{{.PIDs}}"
)


def check_ps_format(fmt: str) -> None:
    """docker/cli's ``ps`` runs a ``--format`` once on an empty container before it lists
    any (to learn whether it needs sizes), so a bad template fails even with no containers,
    with its own wording: "failed to parse template" or "failed to execute template"."""
    try:
        tmpl = Template(fmt)
    except FormatError as e:
        raise FormatError(f"failed to parse template: {e}") from None
    empty: dict = dict.fromkeys(PS_HEADERS, "")
    empty["Label"] = lookup_method({})
    try:
        tmpl.execute(empty, type_name=PS_TYPE)
    except FormatError as e:
        raise FormatError(f"failed to execute template: {e}") from None


def ps_format(fmt: str | None, *, quiet: bool, size: bool) -> str:
    """docker/cli NewContainerFormat: the table, with SIZE for -s; IDs only for -q."""
    if quiet:
        return "{{.ID}}"
    if fmt and fmt != "table":
        return fmt
    return PS_TABLE + ("\t{{.Size}}" if size else "")


def top_table(titles: list[str], processes: list[list[str]]) -> str:
    """docker top: tabwriter.NewWriter(out, 20, 1, 3, ' ', 0)."""
    w = TabWriter(20, 1, 3, " ", 0)
    w.write("\t".join(titles) + "\n")
    for p in processes:
        w.write("\t".join(p) + "\n")
    return w.flush()


def cmd_ps(args) -> int:
    filters = parse_filters(args.filter or [])
    if args.format:
        check_ps_format(args.format)
    fmt = ps_format(args.format, quiet=args.quiet, size=args.size)
    want_size = args.size or "{{.Size}}" in fmt or ".Size" in fmt
    mgr = services.get_manager()
    summaries = []
    for c in mgr.list(all=True):
        info = services.inspect_container(c)
        if not args.all and not filters and not info["State"]["Running"]:
            continue
        size = None
        if want_size and not args.quiet:
            try:
                size = tuple(mgr.size(info["Id"]))
            except (DockwebError, OSError):
                size = (0, 0)
        summaries.append(container_summary(info, size))
    summaries = filter_summaries(summaries, filters)
    if not args.all and filters and "status" not in filters:
        summaries = [s for s in summaries if s["State"] in ("running", "paused", "restarting")]
    summaries.sort(key=lambda s: (s["_created_ns"], s["Id"]), reverse=True)
    if args.last is not None and args.last >= 0:
        summaries = summaries[: args.last]
    elif args.latest:
        summaries = summaries[:1]
    rows = ps_rows(summaries, trunc=not args.no_trunc)
    print_out(format_rows(rows, fmt, PS_HEADERS, type_name=PS_TYPE))
    return 0


def cmd_logs(args) -> int:
    tail = None
    if args.tail not in (None, "all"):
        try:
            tail = int(args.tail)
        except ValueError:
            tail = None  # docker shows everything for a tail it cannot parse
        if tail is not None and tail < 0:
            tail = None

    if find_container(args.container) is None:
        return 1
    bounds = {}
    for key in ("since", "until"):
        value = getattr(args, key)
        if value:
            try:
                bounds[key] = get_timestamp(value)
            except TimestampError as err:
                print_error(f'invalid value for "{key}": {err}')
                return 1
    try:
        for stream, line, _stamp in services.container_logs(
            args.container, follow=args.follow, tail=tail, timestamps=args.timestamps,
            **bounds,
        ):
            if args.details:  # the log's extra attributes (none here), then a space
                stamp, sep, rest = line.partition(" ") if args.timestamps else ("", "", line)
                line = f"{stamp}{sep} {rest}"
            out = sys.stderr if stream == "stderr" else sys.stdout
            out.write(line)
            if args.follow:
                out.flush()
    except DockwebError as err:
        print_error(daemon_error(err))
        return 1
    return 0


class NoSuchObject(NotFound):
    """``inspect``: nothing of the kinds asked for has that name (docker/cli's words)."""


def _inspect_one(name: str, *, size: bool, kinds: tuple[str, ...]) -> dict:
    if "container" in kinds:
        try:
            c = services.get_container(name)
        except DockwebError as err:
            if not isinstance(err, NotFound) or kinds == ("container",):
                raise
        else:
            info = services.inspect_container(c)
            if size:
                sizes = services.get_manager().size(info["Id"])
                info["SizeRw"], info["SizeRootFs"] = sizes
            return info
    if "image" in kinds:
        try:
            return image_services.inspect_image(name)
        except DockwebError:
            pass
    if "volume" in kinds:
        try:
            return services.get_volume(name)
        except DockwebError:
            pass
    raise NoSuchObject(f"No such object: {name}")


def cmd_inspect(args, kinds=("container",)) -> int:
    results, errors = [], []
    for name in args.names:
        try:
            results.append(_inspect_one(name, size=args.size, kinds=kinds))
        except DockwebError as err:
            if kinds == ("container",) and isinstance(err, NotFound):
                errors.append(client_not_found("container", name))
            elif isinstance(err, NoSuchObject):
                errors.append(f"Error: {err}")
            else:
                errors.append(daemon_error(err))
    return print_inspect(results, errors, args.format)


def cmd_inspect_any(args) -> int:
    """The top-level ``inspect``: a container, an image or a volume (or the --type one)."""
    return cmd_inspect(args, kinds=(args.type,) if args.type else ("container", "image", "volume"))


def cmd_diff(args) -> int:
    for kind, path in services.container_diff(args.container):
        print(f"{kind} {path}")
    return 0


def cmd_top(args) -> int:
    titles, procs = services.container_top(args.container, " ".join(args.ps_args))
    sys.stdout.write(top_table(titles, procs))
    return 0


def cmd_stats(args) -> int:
    mgr = services.get_manager()
    if args.containers:
        infos = [services.inspect_container(mgr.get(n)) for n in args.containers]
    else:
        infos = [
            services.inspect_container(c) for c in mgr.list(all=args.all)
        ]
    fmt = args.format or STATS_TABLE
    while True:
        rows = []
        for info in infos:
            try:
                stats = mgr.stats(info["Id"]) if info["State"]["Running"] else {}
            except DockwebError:
                stats = {}
            rows.append(stats_row(info, stats, trunc=not args.no_trunc))
        print_out(format_rows(rows, fmt, STATS_HEADERS, type_name=STATS_TYPE))
        if args.no_stream:
            return 0
        time.sleep(1)
        sys.stdout.write("\x1b[2J\x1b[H")


def cmd_port(args) -> int:
    """docker port: ``80/tcp -> 0.0.0.0:8080`` for each published port, or the host
    addresses of one (``80``, ``80/tcp``); docker's error for one not published."""
    info = services.inspect_container(args.container)
    published = info["NetworkSettings"]["Ports"] or {}
    if args.port is None:
        for key in sorted(published, key=lambda k: (int(k.partition("/")[0]), k)):
            for b in published[key]:
                print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
        return 0
    port, _, proto = args.port.partition("/")
    if not port.isdigit() or int(port) > 65535:
        print_error(
            f'Error: invalid port ({port}): strconv.ParseUint: parsing "{port}": invalid syntax'
        )
        return 1
    key = f"{port}/{proto or 'tcp'}"
    if not published.get(key):
        print_error(f"Error: No public port '{key}' published for {args.container}")
        return 1
    for b in published[key]:
        print(f"{b['HostIp']}:{b['HostPort']}")
    return 0
