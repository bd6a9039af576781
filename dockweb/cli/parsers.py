"""The command line's grammar: every subcommand, its flags, arguments and one-line help, as
docker 20.10 has them. Each parser's ``func`` names the command's function as
``"module:function"`` of dockweb.cli, which main.py imports once the command is chosen
(so that the fast ``run`` path imports no command module but fastrun.py's).
"""

from __future__ import annotations

import argparse


def _add_create_flags(p) -> None:
    p.add_argument("-i", "--interactive", action="store_true",
                   help="Keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("--rm", action="store_true",
                   help="Automatically remove the container when it exits")
    p.add_argument("--name", help="Assign a name to the container")
    p.add_argument("-e", "--env", action="append", help="Set environment variables")
    p.add_argument("--env-file", action="append", help="Read in a file of environment variables")
    p.add_argument("-v", "--volume", action="append", help="Bind mount a volume")
    p.add_argument("-w", "--workdir", help="Working directory inside the container")
    p.add_argument("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    p.add_argument("-h", "--hostname", help="Container host name")
    p.add_argument("--network", "--net", default="default",
                   help="Connect a container to a network")
    p.add_argument("--network-alias", "--net-alias", action="append",
                   help="Add network-scoped alias for the container")
    p.add_argument("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    p.add_argument("--dns", action="append", help="Set custom DNS servers")
    p.add_argument("--dns-search", action="append", help="Set custom DNS search domains")
    p.add_argument("--dns-option", action="append", help="Set DNS options")
    p.add_argument("-P", "--publish-all", action="store_true",
                   help="Publish all exposed ports to random ports")
    p.add_argument("-l", "--label", action="append", help="Set meta data on a container")
    p.add_argument("--read-only", action="store_true",
                   help="Mount the container's root filesystem as read only")
    p.add_argument("--cap-add", action="append", help="Add Linux capabilities")
    p.add_argument("--cap-drop", action="append", help="Drop Linux capabilities")
    p.add_argument("--tmpfs", action="append", help="Mount a tmpfs directory")
    p.add_argument("--add-host", action="append",
                   help="Add a custom host-to-IP mapping (host:ip)")
    p.add_argument("-m", "--memory", help="Memory limit")
    p.add_argument("--cpus", help="Number of CPUs")
    p.add_argument("--pids-limit", type=int, default=0,
                   help="Tune container pids limit (set -1 for unlimited)")
    p.add_argument("--stop-signal", default="", help="Signal to stop a container")
    p.add_argument("--stop-timeout", type=int, default=None,
                   help="Timeout (in seconds) to stop a container")
    p.add_argument("-p", "--publish", action="append",
                   help="Publish a container's port(s) to the host")
    p.add_argument("--mount", action="append",
                   help="Attach a filesystem mount to the container")
    p.add_argument("--shm-size", help="Size of /dev/shm")
    p.add_argument("--ulimit", action="append", help="Ulimit options")
    p.add_argument("--group-add", action="append", help="Add additional groups to join")
    p.add_argument("--security-opt", action="append", help="Security Options")
    p.add_argument("--privileged", action="store_true",
                   help="Give extended privileges to this container")
    p.add_argument("--cidfile", help="Write the container ID to the file")
    p.add_argument("--restart", default="",
                   help="Restart policy to apply when a container exits (default \"no\")")
    p.add_argument("--health-cmd", default="", help="Command to run to check health")
    p.add_argument("--health-interval", default="",
                   help="Time between running the check (ms|s|m|h) (default 0s)")
    p.add_argument("--health-timeout", default="",
                   help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
    p.add_argument("--health-start-period", default="",
                   help="Start period for the container to initialize before starting "
                   "health-retries countdown (ms|s|m|h) (default 0s)")
    p.add_argument("--health-retries", default="",
                   help="Consecutive failures needed to report unhealthy")
    p.add_argument("--no-healthcheck", action="store_true",
                   help="Disable any container-specified HEALTHCHECK")
    p.add_argument("--help", action="help", help="Print usage")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="[COMMAND] [ARG...]")


def _parser(sub, name: str, help: str, aliases=(), **kw):
    return sub.add_parser(name, aliases=list(aliases), help=help, **kw)


def add_run_command(sub) -> None:
    """``run`` alone: main.py's parser for a ``dockweb run`` command line has only this."""
    p = _parser(sub, "run", "Run a command in a new container", add_help=False)
    p.add_argument("-d", "--detach", action="store_true",
                   help="Run container in background and print container ID")
    _add_sig_proxy_flag(p)
    _add_create_flags(p)
    p.set_defaults(func="run:cmd_run")


def _add_sig_proxy_flag(p) -> None:
    # --sig-proxy=false: parsing.go_bool_flags turns it into --no-sig-proxy
    p.add_argument("--sig-proxy", action=argparse.BooleanOptionalAction, default=True,
                   help="Proxy received signals to the process (default true)")


def _add_container_verbs(sub, *, under_container: bool) -> None:
    add_run_command(sub)

    p = _parser(sub, "create", "Create a new container", add_help=False)
    _add_create_flags(p)
    p.set_defaults(func="run:cmd_create")

    p = _parser(sub, "start", "Start one or more stopped containers")
    p.add_argument("-a", "--attach", action="store_true",
                   help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    _add_sig_proxy_flag(p)
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func="lifecycle:cmd_start")

    for verb, help_text in (
        ("stop", "Stop one or more running containers"),
        ("restart", "Restart one or more containers"),
    ):
        p = _parser(sub, verb, help_text)
        p.add_argument("-t", "--time", type=int, default=None,
                       help="Seconds to wait for stop before killing it (default 10)")
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p.set_defaults(func=f"lifecycle:cmd_{verb}")

    p = _parser(sub, "kill", "Kill one or more running containers")
    p.add_argument("-s", "--signal", default="KILL",
                   help='Signal to send to the container (default "KILL")')
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func="lifecycle:cmd_kill")

    for verb, help_text in (
        ("pause", "Pause all processes within one or more containers"),
        ("unpause", "Unpause all processes within one or more containers"),
    ):
        p = _parser(sub, verb, help_text)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p.set_defaults(func=f"lifecycle:cmd_{verb}")

    p = _parser(sub, "rm", "Remove one or more containers",
                aliases=("remove",) if under_container else ())
    p.add_argument("-f", "--force", action="store_true",
                   help="Force the removal of a running container (uses SIGKILL)")
    p.add_argument("-v", "--volumes", action="store_true",
                   help="Remove anonymous volumes associated with the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func="lifecycle:cmd_rm")

    p = _parser(sub, "ls" if under_container else "ps", "List containers",
                aliases=("ps", "list") if under_container else ())
    p.add_argument("-a", "--all", action="store_true",
                   help="Show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("--format", help="Pretty-print containers using a Go template")
    p.add_argument(
        "-f", "--filter", action="append", help="Filter output based on conditions provided"
    )
    p.add_argument("-n", "--last", type=int, default=None,
                   help="Show n last created containers (includes all states)")
    p.add_argument("-l", "--latest", action="store_true",
                   help="Show the latest created container (includes all states)")
    p.set_defaults(func="observe:cmd_ps")

    p = _parser(sub, "logs", "Fetch the logs of a container")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("-n", "--tail", default="all",
                   help='Number of lines to show from the end of the logs (default "all")')
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--details", action="store_true", help="Show extra details provided to logs")
    p.add_argument("--since", help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or "
                   "relative (e.g. 42m for 42 minutes)")
    p.add_argument("--until", help="Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) "
                   "or relative (e.g. 42m for 42 minutes)")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func="observe:cmd_logs")

    p = _parser(sub, "inspect", "Display detailed information on one or more containers"
                if under_container else "Return low-level information on Docker objects")
    p.add_argument("-f", "--format", help="Format the output using the given Go template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    if not under_container:
        p.add_argument("--type", help="Return JSON for specified type")
    p.add_argument("names", nargs="+", metavar="CONTAINER" if under_container else "NAME|ID")
    if under_container:
        p.set_defaults(func="observe:cmd_inspect")
    else:
        p.set_defaults(func="observe:cmd_inspect_any")

    p = _parser(sub, "diff", "Inspect changes to files or directories on a container's filesystem")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func="observe:cmd_diff")

    p = _parser(sub, "exec", "Run a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", help="Set environment variables")
    p.add_argument("-u", "--user", help="Username or UID")
    p.add_argument("-w", "--workdir", help="Working directory inside the container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    p.set_defaults(func="run:cmd_exec")

    p = _parser(sub, "top", "Display the running processes of a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]")
    p.set_defaults(func="observe:cmd_top")

    p = _parser(sub, "stats", "Display a live stream of container(s) resource usage statistics")
    p.add_argument("-a", "--all", action="store_true", help="Show all containers")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("--format", help="Pretty-print images using a Go template")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.set_defaults(func="observe:cmd_stats")

    p = _parser(sub, "attach",
                "Attach local standard input, output, and error streams to a running container")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    _add_sig_proxy_flag(p)
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func="run:cmd_attach")

    p = _parser(sub, "cp", "Copy files/folders between a container and the local filesystem")
    p.add_argument("-a", "--archive", action="store_true",
                   help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true",
                   help="Always follow symbol link in SRC_PATH")
    p.add_argument("src", metavar="SRC_PATH")
    p.add_argument("dst", metavar="DEST_PATH")
    p.set_defaults(func="files:cmd_cp")

    p = _parser(sub, "wait", "Block until one or more containers stop, then print their exit codes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func="lifecycle:cmd_wait")

    p = _parser(sub, "update", "Update configuration of one or more containers")
    p.add_argument("-m", "--memory", help="Memory limit")
    p.add_argument("--cpus", help="Number of CPUs")
    p.add_argument("--pids-limit", type=int,
                   help="Tune container pids limit (set -1 for unlimited)")
    p.add_argument("--restart", help="Restart policy to apply when a container exits")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func="lifecycle:cmd_update")

    p = _parser(sub, "rename", "Rename a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")
    p.set_defaults(func="lifecycle:cmd_rename")

    p = _parser(sub, "port", "List port mappings or a specific mapping for the container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    p.set_defaults(func="observe:cmd_port")

    p = _parser(sub, "export", "Export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func="files:cmd_export")


def _add_volume_commands(sub, parser_class) -> None:
    volume = sub.add_parser("volume", help="Manage volumes")
    vsub = volume.add_subparsers(dest="volume_command", metavar="COMMAND",
                                 parser_class=parser_class)
    vsub.required = True
    p = vsub.add_parser("ls", aliases=["list"], help="List volumes")
    p.add_argument("-f", "--filter", action="append", help="Provide filter values")
    p.add_argument("--format", help="Pretty-print volumes using a Go template")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    p.set_defaults(func="volumes:cmd_volume_ls")

    p = vsub.add_parser("create", help="Create a volume")
    p.add_argument("name", nargs="?", metavar="VOLUME")
    p.add_argument("--name", dest="name_flag", help="Specify volume name")
    p.add_argument(
        "-d", "--driver", default="local", help='Specify volume driver name (default "local")'
    )
    p.add_argument("--label", action="append", help="Set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", help="Set driver specific options")
    p.set_defaults(func="volumes:cmd_volume_create")

    p = vsub.add_parser("inspect", help="Display detailed information on one or more volumes")
    p.add_argument("-f", "--format", help="Format the output using the given Go template")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(func="volumes:cmd_volume_inspect")

    p = vsub.add_parser("rm", aliases=["remove"], help="Remove one or more volumes")
    p.add_argument("-f", "--force", action="store_true",
                   help="Force the removal of one or more volumes")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(func="volumes:cmd_volume_rm")

    p = vsub.add_parser("prune", help="Remove all unused local volumes")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", help="Provide filter values")
    p.set_defaults(func="system:cmd_volume_prune")


def _add_network_commands(sub, parser_class) -> None:
    """``network create|ls|inspect|rm|connect|disconnect|prune`` with docker 20.10's flags
    (dockweb/cli/networks.py)."""
    network = sub.add_parser("network", help="Manage networks")
    nsub = network.add_subparsers(dest="network_command", metavar="COMMAND",
                                  parser_class=parser_class)
    nsub.required = True
    p = nsub.add_parser("create", help="Create a network")
    p.add_argument("name", metavar="NETWORK")
    p.add_argument("-d", "--driver", default="bridge",
                   help='Driver to manage the Network (default "bridge")')
    p.add_argument("--subnet", action="append", default=[],
                   help="Subnet in CIDR format that represents a network segment")
    p.add_argument("--gateway", action="append", default=[],
                   help="IPv4 or IPv6 Gateway for the master subnet")
    p.add_argument("--ip-range", action="append", default=[],
                   help="Allocate container ip from a sub-range")
    p.add_argument("--aux-address", action="append", default=[],
                   help="Auxiliary IPv4 or IPv6 addresses used by Network driver")
    p.add_argument("--internal", action="store_true",
                   help="Restrict external access to the network")
    p.add_argument("--attachable", action="store_true",
                   help="Enable manual container attachment")
    p.add_argument("--label", action="append", default=[],
                   help="Set metadata on a network")
    p.add_argument("-o", "--opt", action="append", default=[],
                   help="Set driver specific options")
    p.add_argument("--ipam-driver", default="default", help="IP Address Management Driver")
    p.add_argument("--ipam-opt", action="append", default=[],
                   help="Set IPAM driver specific options")
    p.add_argument("--ipv6", action="store_true", help="Enable IPv6 networking")
    p.add_argument("--scope", default="", help="Control the network's scope")
    p.add_argument("--config-from", default="",
                   help="The network from which to copy the configuration")
    p.add_argument("--config-only", action="store_true",
                   help="Create a configuration only network")
    p.add_argument("--ingress", action="store_true",
                   help="Create swarm routing-mesh network")
    p.set_defaults(func="networks:cmd_network_create")

    p = nsub.add_parser("ls", aliases=["list"], help="List networks")
    p.add_argument("-f", "--filter", action="append",
                   help="Provide filter values (e.g. 'driver=bridge')")
    p.add_argument("--format", help="Pretty-print networks using a Go template")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")
    p.set_defaults(func="networks:cmd_network_ls")

    p = nsub.add_parser("inspect", help="Display detailed information on one or more networks")
    p.add_argument("-f", "--format", help="Format the output using the given Go template")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="Verbose output for diagnostics")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    p.set_defaults(func="networks:cmd_network_inspect")

    p = nsub.add_parser("rm", aliases=["remove"], help="Remove one or more networks")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    p.set_defaults(func="networks:cmd_network_rm")

    p = nsub.add_parser("connect", help="Connect a container to a network")
    p.add_argument("--alias", action="append", default=[],
                   help="Add network-scoped alias for the container")
    p.add_argument("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    p.add_argument("--ip6", default="", help="IPv6 address (e.g., 2001:db8::33)")
    p.add_argument("--link", action="append", default=[],
                   help="Add link to another container")
    p.add_argument("--link-local-ip", action="append", default=[],
                   help="Add a link-local address for the container")
    p.add_argument("--driver-opt", action="append", default=[],
                   help="driver options for the network")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func="networks:cmd_network_connect")

    p = nsub.add_parser("disconnect", help="Disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true",
                   help="Force the container to disconnect from a network")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func="networks:cmd_network_disconnect")

    p = nsub.add_parser("prune", help="Remove all unused networks")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append",
                   help="Provide filter values (e.g. 'until=<timestamp>')")
    p.set_defaults(func="networks:cmd_network_prune")


def add_container_commands(sub) -> None:
    """Add the container and volume commands to dockweb's top-level subparsers."""
    parser_class = sub._parser_class
    _add_container_verbs(sub, under_container=False)
    container = sub.add_parser("container", help="Manage containers")
    csub = container.add_subparsers(dest="container_command", metavar="COMMAND",
                                    parser_class=parser_class)
    csub.required = True
    _add_container_verbs(csub, under_container=True)
    _add_volume_commands(sub, parser_class)
    _add_network_commands(sub, parser_class)


def add_pull(sub, name: str) -> None:
    p = sub.add_parser(name, help="Pull an image from a registry")
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("--disable-content-trust", action="store_true", default=True,
                   help="Skip image verification (default true)")
    p.set_defaults(func="images:cmd_pull")


def add_ls(sub, name: str, aliases=()) -> None:
    p = sub.add_parser(name, aliases=list(aliases), help="List images")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-a", "--all", action="store_true",
                   help="Show all images (default hides intermediate images)")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument(
        "-f", "--filter", action="append", help="Filter output based on conditions provided"
    )
    p.add_argument("--format", help="Pretty-print images using a Go template")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.set_defaults(func="images:cmd_images")


def add_rm(sub, name: str, aliases=()) -> None:
    p = sub.add_parser(name, aliases=list(aliases), help="Remove one or more images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    p.set_defaults(func="images:cmd_rmi")


def add_tag(sub, name: str) -> None:
    p = sub.add_parser(name, help="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    p.set_defaults(func="images:cmd_tag")


def add_inspect(sub, name: str) -> None:
    p = sub.add_parser(name, help="Display detailed information on one or more images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--format", help="Format the output using the given Go template")
    p.set_defaults(func="images:cmd_inspect")


def add_history(sub, name: str) -> None:
    p = sub.add_parser(name, help="Show the history of an image")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--format", help="Pretty-print images using a Go template")
    p.add_argument("-H", "--human", action=argparse.BooleanOptionalAction, default=True,
                   help="Print sizes and dates in human readable format (default true)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.set_defaults(func="images:cmd_history")


def _add_save(sub, name: str) -> None:
    p = sub.add_parser(
        name, help="Save one or more images to a tar archive (streamed to STDOUT by default)"
    )
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.set_defaults(func="transfer:cmd_save")


def _add_load(sub, name: str) -> None:
    p = sub.add_parser(name, help="Load an image from a tar archive or STDIN")
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    p.set_defaults(func="transfer:cmd_load")


def _add_push(sub, name: str) -> None:
    p = sub.add_parser(name, help="Push an image or a repository to a registry")
    p.add_argument("name", metavar="NAME[:TAG]")
    p.add_argument(
        "-a", "--all-tags", action="store_true", help="Push all tagged images in the repository"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument(
        "--disable-content-trust",
        action="store_true",
        default=True,
        help="Skip image signing (default true)",
    )
    p.set_defaults(func="transfer:cmd_push")


def add_transfer_commands(sub) -> None:
    """Top-level ``save``, ``load``, ``push``."""
    _add_save(sub, "save")
    _add_load(sub, "load")
    _add_push(sub, "push")


def add_image_transfer_commands(isub) -> None:
    """``image save``, ``image load``, ``image push``."""
    add_transfer_commands(isub)


def _add_build(sub, name: str) -> None:
    p = sub.add_parser(name, help="Build an image from a Dockerfile")
    p.add_argument("context", metavar="PATH")
    p.add_argument("-t", "--tag", action="append", help="Name and optionally a tag (name:tag)")
    p.add_argument("-f", "--file", help="Name of the Dockerfile (Default is 'PATH/Dockerfile')")
    p.add_argument("--build-arg", action="append", help="Set build-time variables")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building")
    p.add_argument("-q", "--quiet", action="store_true", help="Print the image ID on success")
    p.add_argument(
        "--rm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Remove intermediate containers after a successful build",
    )
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediate containers")
    p.add_argument("--target", default="", help="Set the target build stage to build.")
    p.add_argument("--iidfile", default="", help="Write the image ID to the file")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer version")
    p.add_argument("--label", action="append", help="Set metadata for an image")
    p.add_argument(
        "--network",
        default="default",
        help="Set the networking mode for the RUN instructions during build",
    )
    p.add_argument("--add-host", action="append",
                   help="Add a custom host-to-IP mapping (host:ip)")
    p.add_argument("--cache-from", action="append", help="Images to consider as cache sources")
    # docker build's other flags: parsed so that each is refused by name (cli/build.py),
    # never mistaken for a usage error or ignored
    for flags in UNSUPPORTED_BUILD_FLAGS:
        p.add_argument(*flags, dest="unsupported_" + flags[0].lstrip("-").replace("-", "_"),
                       action="append", help=argparse.SUPPRESS)
    for flag in ("--squash", "--compress", "--stream"):  # docker's boolean ones, refused
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func="build:cmd_build")


# docker 20.10 build flags dockweb's classic builder does not have (valued flags)
UNSUPPORTED_BUILD_FLAGS = (
    ("--cgroup-parent",), ("--cpu-period",), ("--cpu-quota",),
    ("--cpu-shares", "-c"), ("--cpuset-cpus",), ("--cpuset-mems",), ("--isolation",),
    ("--memory", "-m"), ("--memory-swap",), ("--platform",), ("--progress",), ("--secret",),
    ("--ssh",), ("--output", "-o"), ("--security-opt",), ("--shm-size",), ("--ulimit",),
)  # fmt: skip


def _add_commit(sub, name: str) -> None:
    p = sub.add_parser(name, help="Create a new image from a container's changes")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-a", "--author", help='Author (e.g., "John Hannibal Smith")')
    p.add_argument("-m", "--message", help="Commit message")
    p.add_argument("-c", "--change", action="append", help="Apply Dockerfile instruction")
    p.add_argument(
        "-p",
        "--pause",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Pause container during commit",
    )
    p.set_defaults(func="build:cmd_commit")


def add_build_commands(sub) -> None:
    """``build`` and ``commit`` at the top level, as docker has them."""
    _add_build(sub, "build")
    _add_commit(sub, "commit")


def _prune_parser(sub, help: str, func, *, all_help: str = "") -> argparse.ArgumentParser:
    p = sub.add_parser("prune", help=help)
    if all_help:
        p.add_argument("-a", "--all", action="store_true", help=all_help)
    p.add_argument(
        "--filter", action="append", help="Provide filter values (e.g. 'until=<timestamp>')"
    )
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.set_defaults(func=func)
    return p


def _subcommands(parser: argparse.ArgumentParser):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def add_system_commands(sub) -> None:
    """``system df|prune`` and ``prune`` under ``image``, ``container`` and ``volume``.

    Call after the image, container and volume commands exist; ``volume prune`` is
    replaced by this module's (docker's prompt and output when answered no)."""
    parser_class = sub._parser_class
    system = sub.add_parser("system", help="Manage Docker")
    ssub = system.add_subparsers(
        dest="system_command", metavar="COMMAND", parser_class=parser_class
    )
    ssub.required = True

    add_about_commands(sub, ssub)
    p = ssub.add_parser("df", help="Show docker disk usage")
    p.add_argument("--format", help="Pretty-print images using a Go template")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="Show detailed information on space usage"
    )
    p.set_defaults(func="system:cmd_df")
    p = _prune_parser(
        ssub,
        "Remove unused data",
        "system:cmd_system_prune",
        all_help="Remove all unused images not just dangling ones",
    )
    p.add_argument("--volumes", action="store_true", help="Prune volumes")
    p = ssub.add_parser(
        "service", help="Serve the Docker Engine API (1.41) for docker, docker-py and compose"
    )
    p.add_argument(
        "-t", "--time", type=float, default=0, metavar="SECONDS",
        help="Stop after this many seconds without a request (0: never)",
    )
    p.add_argument(
        "uri", nargs="?", default=None,
        help="unix:///path or tcp://HOST:PORT (default: settings.DOCKWEB_API_SOCKET)",
    )
    p.set_defaults(func="service:cmd_service")

    _prune_parser(
        _subcommands(sub.choices["image"]),
        "Remove unused images",
        "system:cmd_image_prune",
        all_help="Remove all unused images, not just dangling ones",
    )
    _prune_parser(
        _subcommands(sub.choices["container"]),
        "Remove all stopped containers",
        "system:cmd_container_prune",
    )
    vsub = _subcommands(sub.choices["volume"])
    vsub.choices.pop("prune", None)
    _prune_parser(vsub, "Remove all unused local volumes", "system:cmd_volume_prune")


def add_about_commands(sub, system_sub) -> None:
    for parent in (sub, system_sub):
        p = parent.add_parser("info", help="Display system-wide information")
        p.add_argument("-f", "--format", help="Format the output using the given Go template")
        p.set_defaults(func="about:cmd_info")
    p = sub.add_parser("version", help="Show the Docker version information")
    p.add_argument("-f", "--format", help="Format the output using the given Go template")
    p.set_defaults(func="about:cmd_version")
