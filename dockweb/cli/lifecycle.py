"""The commands that change a container's state: start, stop, restart, kill, pause, unpause,
rm, wait, update, rename. Several containers at once, as docker: each error printed, the
status 1 if any failed."""

from __future__ import annotations

from containers import services
from dockweb.cli.common import client_not_found, daemon_error, is_not_found, print_error
from dockweb.cli.run import start_attached, start_interactive
from dockweb.cli.run_common import report
from dockweb.docker.run_options import parse_cpus, parse_memory, parse_restart
from dockweb.runtime.errors import DockwebError


def _each(names: list[str], action) -> int:
    """docker's loop over containers: ``action`` on each name, its answer printed as it
    comes (the name, when it answers nothing), the daemon's refusals together at the end;
    status 1 if any (stop, kill, pause, wait, update...)."""
    errors = []
    for name in names:
        try:
            answer = action(name)
        except DockwebError as err:
            errors.append(daemon_error(err))
            continue
        print(name if answer is None else answer, flush=True)
    if errors:
        print_error("\n".join(errors))
        return 1
    return 0


def cmd_start(args) -> int:
    if args.attach:
        if len(args.containers) > 1:
            print_error("Error: you cannot start and attach multiple containers at once")
            return 1
        try:
            c = services.get_container(args.containers[0])
            if c.spec.tty or (args.interactive and c.spec.interactive):
                return start_interactive(
                    c.id, interactive=args.interactive, sig_proxy=args.sig_proxy
                )
            return start_attached(c.id, sig_proxy=args.sig_proxy)
        except DockwebError as err:
            print_error(daemon_error(err))
            print_error(f"Error: failed to start containers: {args.containers[0]}")
            return 1
    failed = []
    for name in args.containers:
        try:
            services.start_container(name)
        except DockwebError as err:
            print_error(daemon_error(err))
            failed.append(name)
            continue
        print(name, flush=True)
    if failed:
        print_error(f"Error: failed to start containers: {', '.join(failed)}")
        return 1
    return 0


def _simple(action_name: str):
    def cmd(args) -> int:
        if action_name == "stop":
            def action(n): services.stop_container(n, args.time)
        elif action_name == "restart":
            def action(n): services.restart_container(n, args.time)
        elif action_name == "kill":
            def action(n): services.kill_container(n, args.signal)
        elif action_name == "pause":
            action = services.pause_container
        else:
            action = services.unpause_container
        return _each(args.containers, action)

    return cmd


def cmd_rm(args) -> int:
    status = 0
    for name in args.containers:
        try:
            services.remove_container(name, force=args.force, volumes=args.volumes)
        except DockwebError as err:
            if is_not_found(err):
                print_error(client_not_found("container", name))
                if not args.force:
                    status = 1
            else:
                print_error(daemon_error(err))
                status = 1
            continue
        print(name, flush=True)
    return status


def cmd_wait(args) -> int:
    """docker wait: each exit code as its container stops; the failures together at the end."""
    return _each(args.containers, services.wait_container)


def cmd_update(args) -> int:
    """docker update: -m, --cpus, --pids-limit and --restart, for each container named."""
    changes: dict = {}
    try:
        if args.memory is not None:
            changes["memory"] = parse_memory(args.memory)
        if args.cpus is not None:
            changes["nano_cpus"] = parse_cpus(args.cpus)
        if args.pids_limit is not None:
            changes["pids_limit"] = args.pids_limit
        if args.restart is not None:
            changes["restart"] = parse_restart(args.restart)
    except DockwebError as err:
        report("update", err, with_help=True)
        return 125
    if not changes:
        print_error("You must provide one or more flags when using this command.")
        return 1
    return _each(args.containers, lambda name: services.update_container(name, **changes))


def cmd_rename(args) -> int:
    old, new = args.container.strip(), args.new_name.strip()
    if not old or not new:
        print_error("Error: Neither old nor new names may be empty")
        return 1
    try:
        services.rename_container(old, new)
    except DockwebError as err:
        print_error(daemon_error(err))
        print_error(f"Error: failed to rename container named {old}")
        return 1
    return 0


cmd_stop = _simple("stop")
cmd_restart = _simple("restart")
cmd_kill = _simple("kill")
cmd_pause = _simple("pause")
cmd_unpause = _simple("unpause")
