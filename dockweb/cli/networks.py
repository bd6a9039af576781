"""The network commands: network create, ls, inspect, rm, connect, disconnect, prune, as
docker 20.10's (cli/command/network/*.go): its flags, its output (IDs, names, tables), the
client's own errors ("no matching subnet for gateway X", "Error: No such network: X") and
the daemon's ("Error response from daemon: ...", the runtime's words, which are dockerd's).
"""

from __future__ import annotations

import ipaddress

from dockweb.cli.common import UsageError, client_not_found, daemon_error, print_error, print_out
from dockweb.docker.filters import InvalidFilter, parse_filters
from dockweb.docker.formatter import format_rows
from dockweb.docker.networks import (
    NETWORK_HEADERS,
    NETWORK_TABLE,
    NETWORK_TYPE,
    PRUNE_WARNING,
    filter_networks,
    inspect_network,
    network_resources,
    network_rows,
    predefined_create_error,
    prune_keep,
)
from dockweb.engine import get_manager
from dockweb.runtime.errors import DockwebError
from dockweb.runtime.networks import NetworkNotFound


def _kv(items: list[str]) -> dict[str, str]:
    """docker/cli's ConvertKVStringsToMap / MapOpts: ``k=v``, a bare ``k`` is ``k=""``."""
    out = {}
    for item in items or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def _subnet_matches(subnet: str, data: str) -> bool:
    """docker/cli's subnetMatches."""
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise UsageError(f"invalid subnet: invalid CIDR address: {subnet}") from None
    try:
        ip = ipaddress.ip_interface(data).ip if "/" in data else ipaddress.ip_address(data)
    except ValueError:
        return False
    return ip in net


def consolidate_ipam(subnets: list[str], ranges: list[str], gateways: list[str]) -> dict:
    """docker/cli's consolidateIpam for dockweb's one subnet: the client's checks and
    words; ``{subnet, ip_range, gateway}``."""
    chosen: dict[str, dict] = {}
    for s in subnets:
        for k in chosen:
            if _subnet_matches(k, s) or _subnet_matches(s, k):
                raise UsageError("multiple overlapping subnet configuration is not supported")
        chosen[s] = {"subnet": s, "ip_range": "", "gateway": ""}
    for key, values, what in (("ip_range", ranges, "range"), ("gateway", gateways, "gateway")):
        for value in values:
            match = False
            for s, cfg in chosen.items():
                if not _subnet_matches(s, value):
                    continue
                if cfg[key]:
                    many = "ranges" if what == "range" else "gateways"
                    prep = "on" if what == "range" else "for"
                    raise UsageError(
                        f"cannot configure multiple {many} ({value}, {cfg[key]}) {prep} the "
                        f"same subnet ({s})"
                    )
                cfg[key] = value
                match = True
            if not match:
                raise UsageError(f"no matching subnet for {what} {value}")
    if len(chosen) > 1:
        raise DockwebError("dockweb's networks have one IPv4 subnet each (one --subnet)")
    return next(iter(chosen.values()), {"subnet": "", "ip_range": "", "gateway": ""})


def _sync(cid: str = "") -> None:
    from containers import services

    services.sync_after_network_change(get_manager(), cid)


def cmd_network_create(args) -> int:
    try:
        ipam = consolidate_ipam(args.subnet, args.ip_range, args.gateway)
    except UsageError as err:
        print_error(str(err))
        return 1
    unsupported = [
        flag
        for flag, given in (
            ("--ipv6", args.ipv6),
            ("--aux-address", args.aux_address),
            ("--ipam-opt", args.ipam_opt),
            ("--ipam-driver", args.ipam_driver != "default"),
            ("--scope", args.scope and args.scope != "local"),
            ("--config-from", args.config_from),
            ("--config-only", args.config_only),
            ("--ingress", args.ingress),
        )
        if given
    ]
    if unsupported:
        print_error(daemon_error(f"dockweb's networks do not support {unsupported[0]}"))
        return 1
    if predefined_create_error(args.name):
        # the docker client trims the daemon's message
        print_error(daemon_error(predefined_create_error(args.name).strip()))
        return 1
    try:
        net = get_manager().networks.create(
            args.name,
            driver=args.driver,
            subnet=ipam["subnet"],
            gateway=ipam["gateway"],
            ip_range=ipam["ip_range"],
            internal=args.internal,
            attachable=args.attachable,
            labels=_kv(args.label),
            options=_kv(args.opt),
        )
    finally:
        _sync()
    print(net.id)
    return 0


def cmd_network_ls(args) -> int:
    try:
        filters = parse_filters(args.filter or [])
        nets = filter_networks(network_resources(get_manager().networks), filters)
    except InvalidFilter as err:
        print_error(daemon_error(err))
        return 1
    fmt = "{{.ID}}" if args.quiet else (args.format or NETWORK_TABLE)
    rows = network_rows(nets, trunc=not args.no_trunc)
    print_out(format_rows(rows, fmt, NETWORK_HEADERS, type_name=NETWORK_TYPE))
    return 0


def cmd_network_inspect(args) -> int:
    from dockweb.cli.common import print_inspect

    nm = get_manager().networks
    results, errors = [], []
    for name in args.names:
        try:
            results.append(inspect_network(nm, name))
        except NetworkNotFound:
            errors.append(client_not_found("network", name))
        except DockwebError as err:
            errors.append(daemon_error(err))
    return print_inspect(results, errors, args.format)


def cmd_network_rm(args) -> int:
    nm = get_manager().networks
    status = 0
    for name in args.names:
        try:
            nm.remove(name)
        except NetworkNotFound:
            print_error(client_not_found("network", name))
            status = 1
            continue
        except DockwebError as err:
            print_error(daemon_error(err))
            status = 1
            continue
        print(name)
    _sync()
    return status


def cmd_network_connect(args) -> int:
    for flag, given in (
        ("--ip6", args.ip6),
        ("--link", args.link),
        ("--link-local-ip", args.link_local_ip),
        ("--driver-opt", args.driver_opt),
    ):
        if given:
            print_error(daemon_error(f"dockweb's networks do not support {flag}"))
            return 1
    c = get_manager().connect(args.container, args.network, aliases=args.alias, ip=args.ip)
    _sync(c.id)
    return 0


def cmd_network_disconnect(args) -> int:
    c = get_manager().disconnect(args.container, args.network, force=args.force)
    _sync(c.id if c is not None else "")
    return 0


def cmd_network_prune(args) -> int:
    from dockweb.cli.system import confirm

    try:
        keep = prune_keep(parse_filters(args.filter or []))
    except InvalidFilter as err:
        print_error(daemon_error(err))
        return 1
    if not args.force and not confirm(PRUNE_WARNING):
        return 0
    try:
        removed = get_manager().networks.prune(keep)
    finally:
        _sync()
    if removed:
        # docker/cli prints its output with Println: the list's last newline, then one more
        print("Deleted Networks:\n" + "".join(n.name + "\n" for n in removed))
    return 0
