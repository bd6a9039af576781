"""``system df``, ``system prune``, ``image prune`` and ``container prune``, as docker 20.10.

Tables, prompts and result lines are docker/cli's (cli/command/system/df.go and prune.go,
cli/command/formatter/disk_usage.go, image/prune.go, container/prune.go).
"""

from __future__ import annotations

import sys

from disk import services
from dockweb.cli.common import UsageError, print_out
from dockweb.cli.images import IMAGE_HEADERS
from dockweb.cli.observe import PS_HEADERS
from dockweb.cli.volumes import VOLUME_HEADERS
from dockweb.docker.formatter import format_rows
from dockweb.docker.images import df_image_rows
from dockweb.docker.ps import ps_rows
from dockweb.docker.volumes import volume_rows
from dockweb.runtime.diskusage import summary
from dockweb.runtime.units import human_size

DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_RAW = (
    "type: {{.Type}}\ntotal: {{.TotalCount}}\nactive: {{.Active}}\nsize: {{.Size}}\n"
    "reclaimable: {{.Reclaimable}}\n"
)
# the Go type docker/cli names in "can't evaluate field" errors of `system df --format`
DF_TYPE = "*formatter.diskUsageImagesContext"

DF_HEADERS = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}
DF_IMAGES = (
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}"
    "\t{{.UniqueSize}}\t{{.Containers}}"
)
DF_CONTAINERS = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}"
    "\t{{.Status}}\t{{.Names}}"
)
DF_VOLUMES = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
DF_BUILD_CACHE = (
    "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}"
    "\t{{.UsageCount}}\t{{.Shared}}"
)
BUILD_CACHE_HEADERS = {
    "ID": "CACHE ID",
    "CacheType": "CACHE TYPE",
    "Size": "SIZE",
    "CreatedSince": "CREATED",
    "LastUsedSince": "LAST USED",
    "UsageCount": "USAGE",
    "Shared": "SHARED",
}

IMAGE_WARNING = "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
IMAGE_ALL_WARNING = (
    "WARNING! This will remove all images without at least one container associated to "
    "them.\nAre you sure you want to continue?"
)
CONTAINER_WARNING = (
    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"
)
VOLUME_WARNING = (
    "WARNING! This will remove all local volumes not used by at least one container.\n"
    "Are you sure you want to continue?"
)


def confirm(message: str) -> bool:
    """docker/cli's PromptForConfirmation: only "y" or "Y" (a whole line) is a yes."""
    sys.stdout.write(message + " [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().rstrip("\r\n").lower() == "y"


def parse_filters(pairs: list[str] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pair in pairs or []:
        key, eq, value = pair.partition("=")
        if not eq:
            raise UsageError(
                f'invalid argument "{pair}" for "--filter" flag: '
                "bad format of filter (expected name=value)"
            )
        out.setdefault(key.strip().lower(), []).append(value)
    return out


# -- system df ---------------------------------------------------------------------------


def df_rows(du: dict) -> list[dict]:
    rows = []
    for s in summary(du):
        reclaimable = human_size(s["reclaimable"])
        if s["percent"] is not None:
            reclaimable += f" ({s['percent']}%)"
        rows.append(
            {
                "Type": s["type"],
                "TotalCount": str(s["total"]),
                "Active": str(s["active"]),
                "Size": human_size(s["size"]),
                "Reclaimable": reclaimable,
            }
        )
    return rows


def df_volume_rows(volumes: list[dict]) -> list[dict]:
    rows = volume_rows(volumes)
    for row, v in zip(rows, volumes, strict=True):
        usage = v.get("UsageData") or {"Size": -1, "RefCount": -1}
        row["Links"] = "N/A" if usage["RefCount"] == -1 else str(usage["RefCount"])
        row["Size"] = "N/A" if usage["Size"] == -1 else human_size(usage["Size"])
    return rows


def cmd_df(args) -> int:
    du = services.disk_usage()
    fmt = args.format or "table"
    if not args.verbose:
        if fmt == "table":
            fmt = DF_TABLE
        elif fmt == "raw":
            fmt = DF_RAW
        print_out(format_rows(df_rows(du), fmt, DF_HEADERS, type_name=DF_TYPE))
        return 0
    containers = [dict(c, SizeRootFs=0) for c in du["Containers"]]  # no virtual size
    out = sys.stdout
    out.write("Images space usage:\n\n")
    out.write(format_rows(df_image_rows(du["Images"]), DF_IMAGES, IMAGE_HEADERS))
    out.write("\nContainers space usage:\n\n")
    out.write(format_rows(ps_rows(containers), DF_CONTAINERS, PS_HEADERS))
    out.write("\nLocal Volumes space usage:\n\n")
    out.write(
        format_rows(
            df_volume_rows(du["Volumes"]),
            DF_VOLUMES,
            {**VOLUME_HEADERS, "Links": "LINKS", "Size": "SIZE"},
        )
    )
    out.write(f"\nBuild cache usage: {human_size(du['BuilderSize'])}\n\n")
    out.write(format_rows([], DF_BUILD_CACHE, BUILD_CACHE_HEADERS))
    return 0


# -- prune -------------------------------------------------------------------------------


def _print_result(lines: list[str]) -> None:
    sys.stdout.write("".join(line + "\n" for line in lines))


def cmd_image_prune(args) -> int:
    filters = parse_filters(args.filter)
    if not args.force and not confirm(IMAGE_ALL_WARNING if args.all else IMAGE_WARNING):
        _print_result(services.output_lines(None, None, None, 0))
        return 0
    records, space = services.prune_images(all=args.all, filters=filters)
    _print_result(services.output_lines(None, None, records, space))
    return 0


def cmd_container_prune(args) -> int:
    filters = parse_filters(args.filter)
    if not args.force and not confirm(CONTAINER_WARNING):
        _print_result(services.output_lines(None, None, None, 0))
        return 0
    ids, space = services.prune_containers(filters=filters)
    _print_result(services.output_lines(ids, None, None, space))
    return 0


def cmd_volume_prune(args) -> int:
    filters = parse_filters(args.filter)
    if not args.force and not confirm(VOLUME_WARNING):
        _print_result(services.output_lines(None, None, None, 0))
        return 0
    names, space = services.prune_volumes(filters=filters)
    _print_result(services.output_lines(None, names, None, space))
    return 0


def system_prune_warning(*, all: bool, volumes: bool, filters: dict[str, list[str]]) -> str:
    """docker/cli's confirmationMessage (API >= 1.31: build cache too)."""
    warnings = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        warnings.append("all volumes not used by at least one container")
    warnings.append(
        "all images without at least one container associated to them"
        if all
        else "all dangling images"
    )
    warnings.append("all build cache" if all else "all dangling build cache")
    text = "WARNING! This will remove:" + "".join(f"\n  - {w}" for w in warnings) + "\n"
    pairs = sorted(f"{k}={v}" for k, vs in filters.items() for v in vs)
    if pairs:
        text += "\n  Items to be pruned will be filtered with:"
        text += "".join(f"\n  - {p}" for p in pairs) + "\n"
    return text + "\nAre you sure you want to continue?"


def cmd_system_prune(args) -> int:
    filters = parse_filters(args.filter)
    if args.volumes and "until" in filters:
        print('ERROR: The "until" filter is not supported with "--volumes"', file=sys.stderr)
        return 1
    warning = system_prune_warning(all=args.all, volumes=args.volumes, filters=filters)
    if not args.force and not confirm(warning):
        return 0
    ids, space = services.prune_containers(filters=filters)
    networks = _prune_networks(filters)
    names: list[str] = []
    if args.volumes:
        names, v_space = services.prune_volumes(filters=filters)
        space += v_space
    records, i_space = services.prune_images(all=args.all, filters=filters)
    lines = services.output_lines(ids, names, records, space + i_space)
    if networks:  # after the containers, as docker/cli's system prune prints them
        at = len(ids) + 2 if ids else 0
        lines[at:at] = ["Deleted Networks:", *networks, ""]
    _print_result(lines)
    return 0


def _prune_networks(filters: dict[str, list[str]]) -> list[str]:
    """``system prune``'s network part: the unused user-defined networks (label, label!,
    until as ``network prune``); their names."""
    from dockweb.docker.networks import prune_keep
    from dockweb.engine import get_manager

    keep = prune_keep({k: v for k, v in filters.items() if k in ("label", "label!", "until")})
    try:
        return [n.name for n in get_manager().networks.prune(keep)]
    finally:
        from networks.mirror import sync_networks

        sync_networks(get_manager())


# -- parser ------------------------------------------------------------------------------
