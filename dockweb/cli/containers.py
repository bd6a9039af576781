"""The `dockweb` container and volume commands: docker 20.10's syntax, columns and messages.

``add_commands(sub)`` adds ``run create start stop restart kill pause unpause rm ps logs
inspect diff exec top stats export``, ``volume ...`` and ``container <sub>`` to the parser of
dockweb/cli/main.py. The commands call containers/services.py, which calls the runtime and
mirrors every change into the dashboard's database.

Messages follow docker: the daemon's errors are "Error response from daemon: ...", and
where the docker client turns a 404 into its own words it says "Error: No such container:
x". ``run`` exits 125 when the container could not be made or started (126/127 when its
command cannot be invoked or found), else with the container's exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

from dockweb.docker.filters import parse_filters
from dockweb.docker.ps import container_summary, filter_summaries, ps_rows
from dockweb.docker.stats import stats_row
from dockweb.docker.volumes import volume_rows
from dockweb.runtime.errors import DockwebError, os_reason

# The Go types docker/cli renders each listing with, named by "can't evaluate field" errors.
PS_TYPE = "*formatter.ContainerContext"
VOLUME_TYPE = "*formatter.volumeContext"
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

PRUNE_WARNING = (
    "WARNING! This will remove all local volumes not used by at least one container.\n"
    "Are you sure you want to continue? [y/N] "
)


def _daemon(err: Exception) -> str:
    return f"Error response from daemon: {err}"


def _is_not_found(err: Exception) -> bool:
    name = type(err).__name__
    return name in ("ContainerNotFound", "VolumeNotFound", "NotFound") or str(err).startswith(
        ("No such container", "No such volume")
    )


def _client_not_found(kind: str, name: str) -> str:
    """The docker client's own words for a 404 (wrapResponseError)."""
    return f"Error: No such {kind}: {name}"


def _container(name: str):
    """The container ``name``, or None once the docker client's 404 for it is printed
    ("Error: No such container: x"); other errors propagate, printed as the daemon's."""
    from containers import services

    try:
        return services.get_container(name)
    except DockwebError as err:
        if _is_not_found(err):
            _err(_client_not_found("container", name))
            return None
        raise


def _err(msg: str) -> None:
    sys.stderr.write(msg if msg.endswith("\n") else msg + "\n")


def _out(text: str) -> None:
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


# -- formatting (no runtime needed) ------------------------------------------------------


def check_ps_format(fmt: str) -> None:
    """docker/cli's ``ps`` runs a ``--format`` once on an empty container before it lists
    any (to learn whether it needs sizes), so a bad template fails even with no containers,
    with its own wording: "failed to parse template" or "failed to execute template"."""
    from dockweb.docker.format import FormatError, Template, lookup_method

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
    from dockweb.docker.format import TabWriter

    w = TabWriter(20, 1, 3, " ", 0)
    w.write("\t".join(titles) + "\n")
    for p in processes:
        w.write("\t".join(p) + "\n")
    return w.flush()


def parse_signal(value: str) -> str:
    """``kill -s``: KILL, SIGKILL, 9 … (the runtime takes the name)."""
    import signal as sig

    v = value.upper()
    if v.isdigit():
        try:
            return sig.Signals(int(v)).name[3:]
        except ValueError:
            raise DockwebError(f"Invalid signal: {value}") from None
    name = v[3:] if v.startswith("SIG") else v
    if not hasattr(sig, "SIG" + name):
        raise DockwebError(f"Invalid signal: {value}")
    return name


# -- commands ----------------------------------------------------------------------------


def _spec_from_args(args):
    # not containers.services: the fast run path has no Django
    from dockweb.docker import run_options as shapes

    if args.publish and args.network == "host":
        _err("WARNING: Published ports are discarded when using host network mode")

    return shapes.build_spec(
        args.image,
        args.cmd,
        name=args.name or "",
        env=_env_values(args),
        volumes=args.volume or [],
        workdir=args.workdir or "",
        user=args.user or "",
        entrypoint=args.entrypoint,
        hostname=args.hostname or "",
        network=args.network,
        tty=args.tty,
        interactive=args.interactive,
        auto_remove=bool(args.rm),
        labels=args.label or [],
        detach=bool(getattr(args, "detach", False)),
        read_only=args.read_only,
        cap_add=args.cap_add or [],
        cap_drop=args.cap_drop or [],
        tmpfs=args.tmpfs or [],
        add_host=args.add_host or [],
        memory=args.memory or "",
        cpus=args.cpus or "",
        pids_limit=args.pids_limit,
        stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout,
        publish=args.publish or [],
        mount=args.mount or [],
        shm_size=args.shm_size or "",
        ulimit=args.ulimit or [],
        group_add=args.group_add or [],
        restart=args.restart,
    )


def _env_values(args) -> list[str]:
    values = []
    for path in args.env_file or []:
        try:
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        values.append(line)
        except OSError as e:
            raise DockwebError(f"open {path}: {os_reason(e)}") from None
    return values + (args.env or [])


def _run_exit_code(err: Exception) -> int:
    """docker/cli runStartContainerErr: 127 not found, 126 cannot invoke, else 125."""
    code = getattr(err, "exit_code", None)
    if isinstance(code, int) and code in (125, 126, 127):
        return code
    text = str(err)
    if ("executable file not found" in text or "no such file or directory" in text):
        return 127
    if "permission denied" in text:
        return 126
    return 125


def _report(cmd: str, err: Exception, *, with_help: bool) -> None:
    """docker/cli reportError: ``docker: <error>.`` and, for bad input, the help hint."""
    from dockweb.docker.run_options import InvalidFlag

    if isinstance(err, InvalidFlag):  # pflag's own error: bare, as its FlagErrorFunc
        _err(f"{err}\nSee 'dockweb {cmd} --help'.")
        return
    text = _daemon(err) if isinstance(err, DockwebError) and not _client_side(err) else str(err)
    text = text.rstrip(".") + "."
    if with_help:
        text += f"\nSee 'dockweb {cmd} --help'."
    _err(f"dockweb: {text}")


def _client_side(err: Exception) -> bool:
    from dockweb.docker.run_options import ClientOption, InvalidOption

    if isinstance(err, ClientOption):
        return True
    return isinstance(err, InvalidOption) and str(err).startswith("invalid environment")


class CidFile:
    """--cidfile, as docker/cli's cidFile: refused if the file exists, created before the
    container, the ID written once it exists, removed if it never got one."""

    def __init__(self, path: str | None) -> None:
        from dockweb.docker.run_options import ClientOption

        self.path, self.written, self.file = path, False, None
        if not path:
            return
        if os.path.lexists(path):
            raise ClientOption(
                "Container ID file found, make sure the other container isn't running or "
                f"delete {path}"
            )
        try:
            self.file = open(path, "x")
        except OSError as e:
            raise ClientOption(
                f"failed to create the container ID file: open {path}: {os_reason(e)}"
            ) from None

    def write(self, cid: str) -> None:
        if self.file is not None:
            self.file.write(cid)
            self.file.flush()
            self.written = True

    def close(self) -> None:
        if self.file is None:
            return
        self.file.close()
        if not self.written:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def _create_pulling(spec, args, cmd: str) -> str:
    """Create the container, pulling the image first when it is not here (docker create);
    --cidfile gets its ID."""
    cid_file = CidFile(getattr(args, "cidfile", None))
    try:
        cid = _create_pulling_image(spec, args, cmd)
        cid_file.write(cid)
        return cid
    finally:
        cid_file.close()


def _create_pulling_image(spec, args, cmd: str) -> str:
    from containers import services
    from dockweb.runtime.errors import ImageNotFound

    try:
        return services.create_container(spec)
    except ImageNotFound:
        pass
    from dockweb.cli.main import _PullRenderer
    from dockweb.runtime import reference as refs
    from images import services as image_services

    try:
        named = refs.parse_normalized_named(spec.image)
    except DockwebError:
        raise ImageNotFound(f"No such image: {spec.image}") from None
    shown = named if (named.tag or named.digest) else named.with_tag("latest")
    _err(f"Unable to find image '{shown.familiar_string()}' locally")
    renderer = _PullRenderer(sys.stderr, quiet=False)
    result = image_services.pull_image(shown.string() if hasattr(shown, "string") else
                                       shown.familiar_string(), on_progress=renderer)
    renderer.finish()
    del result
    return services.create_container(spec)


def cmd_create(args) -> int:
    try:
        spec = _spec_from_args(args)
    except DockwebError as err:  # the client's own checks of its flags
        _report("create", err, with_help=True)
        return 125
    try:
        cid = _create_pulling(spec, args, "create")
    except DockwebError as err:  # docker create prints the daemon's answer as it is
        _err(str(err) if _client_side(err) else _daemon(err))
        return 1
    print(cid)
    return 0


def cmd_run(args) -> int:
    from containers import services

    try:
        spec = _spec_from_args(args)
    except DockwebError as err:
        _report("run", err, with_help=True)
        return 125
    # docker/cli's CheckTty, before creating; only when stdin is attached (not with -d)
    if args.tty and args.interactive and not args.detach and not sys.stdin.isatty():
        _err("the input device is not a TTY")
        return 1
    try:
        cid = _create_pulling(spec, args, "run")
    except DockwebError as err:
        _report("run", err, with_help=True)
        return _run_exit_code(err)
    try:
        if not args.detach and (args.interactive or args.tty):
            return _start_interactive(cid, interactive=args.interactive, sig_proxy=args.sig_proxy)
        if not args.detach:
            return _start_attached(cid, sig_proxy=args.sig_proxy)
        services.start_container(cid)
    except DockwebError as err:
        _report("run", err, with_help=False)
        if spec.auto_remove:  # docker run --rm removes a container that failed to start
            try:
                services.remove_container(cid, force=True, volumes=True)
            except DockwebError:
                pass
        return _run_exit_code(err)
    print(cid)
    return 0


class SignalProxy:
    """docker's --sig-proxy (moby cli's ForwardAllSignals): the signals this process
    receives (``launch.PROXIED``) are passed on to the container, and do not end this
    process. The handler only notes them; ``forward``, called from the waiting loop, sends
    them (``kill(signum)``); ``wake_fd`` is written to so that a loop blocked on it wakes.
    A context manager: the handlers are installed on entry and restored on exit. Off
    (``on`` false): a context manager that does nothing."""

    def __init__(self, kill, *, on: bool = True, wake_fd: int | None = None):
        self.kill = kill
        self.on = on
        self.wake_fd = wake_fd
        self.pending: list[int] = []
        self.saved: dict[int, object] = {}

    def __enter__(self) -> SignalProxy:
        import signal

        from dockweb.cli.launch import PROXIED

        if self.on:
            for signum in PROXIED:
                self.saved[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for signum, handler in self.saved.items():
            signal.signal(signum, handler)
        self.saved.clear()

    def _note(self, signum, frame) -> None:
        self.pending.append(signum)
        if self.wake_fd is not None:
            try:
                os.write(self.wake_fd, b"s")
            except OSError:  # full: a wake-up is pending anyway
                pass

    def forward(self) -> None:
        """Send the signals received so far to the container, in order. A container that
        is not running (any more) ignores them, as Docker's kill errors are ignored."""
        while self.pending:
            signum = self.pending.pop(0)
            try:
                self.kill(signum)
            except DockwebError:
                pass


def _start_attached(cid: str, *, sig_proxy: bool = True, start: bool = True) -> int:
    """Start with the container's output copied to ours; its exit code. With
    ``sig_proxy``, signals we receive go to the container (``SignalProxy``).

    The log and the supervisor's lock file are opened before the start: with --rm the
    supervisor removes the container's directory as soon as it exits, and the open files
    still give the last lines and the final state it writes into the lock file.
    """
    import fcntl

    from containers import services

    mgr = services.get_manager()
    cdir = mgr.cdir(cid)
    log_path = os.path.join(cdir, "container.log")
    open(log_path, "ab").close()
    lock_fd = os.open(os.path.join(cdir, "shim.lock"), os.O_RDONLY | os.O_CREAT, 0o600)
    proxy = SignalProxy(lambda signum: mgr.kill(cid, signum), on=sig_proxy)
    try:
        with open(log_path, "rb") as log, proxy:
            log.seek(0, os.SEEK_END)  # start -a again (or attach): only what comes now
            if start:
                services.start_container(cid)
            pending = b""
            while True:
                proxy.forward()
                chunk = log.read()
                if chunk:
                    pending = _copy_log_lines(pending + chunk)
                    continue
                try:
                    fcntl.flock(lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    time.sleep(0.02)
                    continue
                pending = _copy_log_lines(pending + log.read())
                break
        data = os.pread(lock_fd, 65536, 0)
    finally:
        os.close(lock_fd)
    if data.strip():
        return int(json.loads(data)["exit_code"])
    return services.wait_container(cid)


def _start_interactive(
    cid: str, *, interactive: bool, sig_proxy: bool = True, start: bool = True
) -> int:
    """Start a ``-i``/``-t`` container and attach to its supervisor (``run -it``, ``start
    -ai``): our stdin to the container's (with ``interactive``), its output to ours, our
    terminal raw and its size passed on (with a tty). Ctrl-P Ctrl-Q detaches and leaves the
    container running. Without a tty, and with ``sig_proxy``, signals we receive go to the
    container (with a tty Docker proxies none: Ctrl-C is a key). Returns its exit code (0
    when detached)."""
    import contextlib
    import fcntl
    import signal
    import termios
    import tty

    from containers import services
    from dockweb.runtime import attach

    mgr = services.get_manager()
    c = mgr.get(cid)
    in_fd = sys.stdin.fileno() if interactive else None
    out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    raw = c.spec.tty and in_fd is not None and os.isatty(in_fd)
    # opened before the start: with --rm the directory goes as soon as it exits
    lock_fd = os.open(os.path.join(mgr.cdir(cid), "shim.lock"), os.O_RDONLY | os.O_CREAT, 0o600)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    saved = termios.tcgetattr(in_fd) if raw else None
    old_handler = signal.signal(signal.SIGWINCH, lambda *_: os.write(wake_w, b"w"))
    proxy = SignalProxy(
        lambda signum: mgr.kill(cid, signum), on=sig_proxy and not c.spec.tty, wake_fd=wake_w
    )
    try:
        proxy.__enter__()
        if start:
            try:
                sock = mgr.start_attached(cid)  # attached before the process runs, as Docker
            finally:
                services.sync_containers()
        else:  # docker attach: a new client of the running container's attach socket
            sock = attach.connect(mgr.attach_path(cid))
        term_fd = next((fd for fd in (in_fd, out_fd) if fd is not None and os.isatty(fd)), None)

        def resize() -> None:
            if c.spec.tty and term_fd is not None:
                size = os.get_terminal_size(term_fd)
                # refused once the container ended: what it wrote is still to be read
                with contextlib.suppress(OSError):
                    sock.sendall(attach.resize_frame(size.columns, size.lines))

        def on_wakeup() -> None:
            resize()
            proxy.forward()

        resize()
        if saved is not None:
            tty.setraw(in_fd, termios.TCSANOW)  # as docker's MakeRaw: type-ahead kept
        sys.stdout.flush()
        with sock:
            ended = attach.proxy(
                sock, in_fd, out_fd, err_fd,
                detach_keys=raw, on_wakeup=on_wakeup, wakeup_fd=wake_r,
            )
        if saved is not None:
            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
            saved = None
        if not ended:
            return 0
        fcntl.flock(lock_fd, fcntl.LOCK_SH)  # the supervisor is done: the final state is there
        data = os.pread(lock_fd, 65536, 0)
    finally:
        if saved is not None:
            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
        proxy.__exit__()
        signal.signal(signal.SIGWINCH, old_handler)
        for fd in (wake_r, wake_w, lock_fd):
            os.close(fd)
    if data.strip():
        return int(json.loads(data)["exit_code"])
    return services.wait_container(cid)


def _copy_log_lines(data: bytes) -> bytes:
    """Write the complete json-file lines of ``data`` to stdout/stderr; return the rest."""
    *lines, rest = data.split(b"\n")
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        out = sys.stderr if entry.get("stream") == "stderr" else sys.stdout
        out.write(entry.get("log", ""))
        out.flush()
    return rest


def _each(names: list[str], action) -> int:
    """docker's loop over containers: ``action`` on each name, its answer printed as it
    comes (the name, when it answers nothing), the daemon's refusals together at the end;
    status 1 if any (stop, kill, pause, wait, update...)."""
    errors = []
    for name in names:
        try:
            answer = action(name)
        except DockwebError as err:
            errors.append(_daemon(err))
            continue
        print(name if answer is None else answer, flush=True)
    if errors:
        _err("\n".join(errors))
        return 1
    return 0


def cmd_start(args) -> int:
    from containers import services

    if args.attach:
        if len(args.containers) > 1:
            _err("Error: you cannot start and attach multiple containers at once")
            return 1
        try:
            c = services.get_container(args.containers[0])
            if c.spec.tty or (args.interactive and c.spec.interactive):
                return _start_interactive(
                    c.id, interactive=args.interactive, sig_proxy=args.sig_proxy
                )
            return _start_attached(c.id, sig_proxy=args.sig_proxy)
        except DockwebError as err:
            _err(_daemon(err))
            _err(f"Error: failed to start containers: {args.containers[0]}")
            return 1
    failed = []
    for name in args.containers:
        try:
            services.start_container(name)
        except DockwebError as err:
            _err(_daemon(err))
            failed.append(name)
            continue
        print(name, flush=True)
    if failed:
        _err(f"Error: failed to start containers: {', '.join(failed)}")
        return 1
    return 0


def _simple(action_name: str):
    def cmd(args) -> int:
        from containers import services

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
    from containers import services

    status = 0
    for name in args.containers:
        try:
            services.remove_container(name, force=args.force, volumes=args.volumes)
        except DockwebError as err:
            if _is_not_found(err):
                _err(_client_not_found("container", name))
                if not args.force:
                    status = 1
            else:
                _err(_daemon(err))
                status = 1
            continue
        print(name, flush=True)
    return status


def _filters(pairs: list[str]) -> dict[str, list[str]]:
    return parse_filters(pairs)


def cmd_ps(args) -> int:
    from containers import services
    from dockweb.docker.format import format_rows

    filters = _filters(args.filter or [])
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
    _out(format_rows(rows, fmt, PS_HEADERS, type_name=PS_TYPE))
    return 0


def cmd_logs(args) -> int:
    from containers import services

    tail = None
    if args.tail not in (None, "all"):
        try:
            tail = int(args.tail)
        except ValueError:
            tail = None  # docker shows everything for a tail it cannot parse
        if tail is not None and tail < 0:
            tail = None
    from dockweb.runtime.units import TimestampError, get_timestamp

    if _container(args.container) is None:
        return 1
    bounds = {}
    for key in ("since", "until"):
        value = getattr(args, key)
        if value:
            try:
                bounds[key] = get_timestamp(value)
            except TimestampError as err:
                _err(f'invalid value for "{key}": {err}')
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
        _err(_daemon(err))
        return 1
    return 0


def _inspect_one(name: str, *, size: bool, kinds: tuple[str, ...]) -> dict:
    from containers import services

    if "container" in kinds:
        try:
            c = services.get_container(name)
        except DockwebError as err:
            if not _is_not_found(err) or kinds == ("container",):
                raise
        else:
            info = services.inspect_container(c)
            if size:
                sizes = services.get_manager().size(info["Id"])
                info["SizeRw"], info["SizeRootFs"] = sizes
            return info
    if "image" in kinds:
        from images import services as image_services

        try:
            return image_services.inspect_image(name)
        except DockwebError:
            pass
    if "volume" in kinds:
        try:
            return services.get_volume(name)
        except DockwebError:
            pass
    raise DockwebError(f"No such object: {name}")


def cmd_inspect(args, kinds=("container",)) -> int:
    from dockweb.docker.format import render

    results, errors = [], []
    for name in args.names:
        try:
            results.append(_inspect_one(name, size=args.size, kinds=kinds))
        except DockwebError as err:
            if kinds == ("container",) and _is_not_found(err):
                errors.append(_client_not_found("container", name))
            elif str(err).startswith("No such object"):
                errors.append(f"Error: {err}")
            else:
                errors.append(_daemon(err))
    if args.format:
        for r in results:
            _out(render(args.format, r))
    else:
        print(json.dumps(results, indent=4, ensure_ascii=False))
    if errors:
        _err("\n".join(errors))
        return 1
    return 0


def cmd_diff(args) -> int:
    from containers import services

    for kind, path in services.container_diff(args.container):
        print(f"{kind} {path}")
    return 0


def cmd_top(args) -> int:
    from containers import services

    titles, procs = services.container_top(args.container, " ".join(args.ps_args))
    sys.stdout.write(top_table(titles, procs))
    return 0


def cmd_stats(args) -> int:
    from containers import services
    from dockweb.docker.format import format_rows

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
        _out(format_rows(rows, fmt, STATS_HEADERS, type_name=STATS_TYPE))
        if args.no_stream:
            return 0
        time.sleep(1)
        sys.stdout.write("\x1b[2J\x1b[H")


def cmd_exec(args) -> int:
    from containers import services
    from dockweb.runtime.errors import ContainerStartError

    if _container(args.container) is None:
        return 1
    if not args.cmd:
        _err(
            '"dockweb exec" requires at least 2 arguments.\nSee \'dockweb exec --help\'.\n\n'
            "Usage:  dockweb exec [OPTIONS] CONTAINER COMMAND [ARG...]\n\n"
            "Run a command in a running container"
        )
        return 1
    env = []
    from containers.services import parse_env

    env = parse_env(args.env or [])
    if args.tty and args.interactive and not sys.stdin.isatty():
        _err("the input device is not a TTY")
        return 1
    try:
        if args.detach:  # a start failure is the API's answer here, not the stream's
            try:
                services.exec_detached(
                    args.container, args.cmd, user=args.user or "", env=env,
                    workdir=args.workdir or "",
                )
            except DockwebError as err:
                _err(_daemon(err))
                return 1
            return 0
        if args.tty:
            handle = services.start_exec(
                args.container, args.cmd, tty=True, interactive=args.interactive,
                user=args.user or "", env=env, workdir=args.workdir or "",
            )
            return proxy_terminal(handle, interactive=args.interactive)
        code = services.exec_in_container(
            args.container, args.cmd, tty=False, interactive=args.interactive,
            user=args.user or "", env=env, workdir=args.workdir or "",
        )
    except ContainerStartError as err:
        # the exec was created but did not start: dockerd reports that in the exec's own
        # stream, so docker prints it on stdout, bare, and exits 126
        print(err, flush=True)
        return 126
    except DockwebError as err:
        _err(_daemon(err))
        return 1
    return int(code or 0)


def proxy_terminal(handle, *, interactive: bool) -> int:
    """Proxy our terminal to an exec's pty until the command ends, as the docker client
    does for ``-t``: the local terminal in raw mode while it runs (with ``-i``), its size
    given to the pty at once and on every SIGWINCH. Returns the command's exit code."""
    import signal
    import termios
    import tty

    in_fd = sys.stdin.fileno() if interactive else None
    out_fd = sys.stdout.fileno()
    term_fd = next((fd for fd in (in_fd, out_fd) if fd is not None and os.isatty(fd)), None)

    def resize() -> None:
        if term_fd is not None:
            size = os.get_terminal_size(term_fd)
            handle.resize(size.columns, size.lines)

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    saved = termios.tcgetattr(in_fd) if in_fd is not None and os.isatty(in_fd) else None
    old_handler = signal.signal(signal.SIGWINCH, lambda *_: os.write(wake_w, b"w"))
    try:
        resize()
        if saved is not None:
            tty.setraw(in_fd, termios.TCSANOW)  # as docker's MakeRaw: type-ahead kept
        sys.stdout.flush()
        return handle.proxy(in_fd, out_fd, on_wakeup=resize, wakeup_fd=wake_r)
    finally:
        if saved is not None:
            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old_handler)
        os.close(wake_r)
        os.close(wake_w)


def cmd_export(args) -> int:
    from containers import services
    from dockweb.cli.output import OutputError, archive_output

    try:
        with archive_output(args.output, "failed to export container") as out:
            services.export_container(args.container, out)
    except OutputError as err:
        _err(str(err))
        return 1
    return 0


def cmd_attach(args) -> int:
    """docker attach: the running container's output from now on (and our stdin to it when
    it has one), signals passed on, its exit code. Ctrl-P Ctrl-Q detaches from a tty."""
    from dockweb.runtime.containers import Status

    c = _container(args.container)
    if c is None:
        return 1
    if not c.status.is_active:
        _err("You cannot attach to a stopped container, start it first")
        return 1
    if c.status is Status.PAUSED:
        _err("You cannot attach to a paused container, unpause it first")
        return 1
    interactive = c.spec.interactive and not args.no_stdin
    if c.spec.tty and interactive and not sys.stdin.isatty():
        _err("the input device is not a TTY")
        return 1
    if c.spec.tty or c.spec.interactive:
        return _start_interactive(
            c.id, interactive=interactive, sig_proxy=args.sig_proxy, start=False
        )
    return _start_attached(c.id, sig_proxy=args.sig_proxy, start=False)


def _split_cp_arg(arg: str) -> tuple[str, str]:
    """docker/cli splitCpArg: ``CONTAINER:PATH`` or a local path (absolute, or a first part
    starting with "." such as ``./a:b``)."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def cmd_cp(args) -> int:
    from containers import services
    from dockweb.cli.output import OutputError, archive_output
    from dockweb.runtime import copy

    src_container, src = _split_cp_arg(args.src)
    dst_container, dst = _split_cp_arg(args.dst)
    if not src_container and not dst_container:
        _err("must specify at least one container source")
        return 1
    if src_container and dst_container:
        _err("copying between containers is not supported")
        return 1
    mgr = services.get_manager()
    try:
        if src_container:
            c, scope = mgr.scope(src_container)
            if dst == "-":
                with archive_output(None, "") as out:
                    copy.archive(scope, src or "/", out, container=src_container,
                                 follow=args.follow_link)
            else:
                copy.copy_out(scope, src or "/", dst, container=src_container,
                              follow=args.follow_link)
        else:
            c, scope = mgr.scope(dst_container)
            if src == "-":
                copy.extract(scope, sys.stdin.buffer, dst or "/", container=dst_container,
                             label=args.dst)
            else:
                copy.copy_in(scope, src, dst or "/", container=dst_container,
                             follow=args.follow_link)
    except copy.CopyError as err:
        _err(_daemon(err) if err.daemon else str(err))
        return 1
    except OutputError as err:
        _err(str(err))
        return 1
    return 0


def cmd_wait(args) -> int:
    """docker wait: each exit code as its container stops; the failures together at the end."""
    from containers import services

    return _each(args.containers, services.wait_container)


def cmd_update(args) -> int:
    """docker update: -m, --cpus, --pids-limit and --restart, for each container named."""
    from containers import services
    from dockweb.docker.run_options import parse_cpus, parse_memory, parse_restart

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
        _report("update", err, with_help=True)
        return 125
    if not changes:
        _err("You must provide one or more flags when using this command.")
        return 1
    return _each(args.containers, lambda name: services.update_container(name, **changes))


def cmd_rename(args) -> int:
    from containers import services

    old, new = args.container.strip(), args.new_name.strip()
    if not old or not new:
        _err("Error: Neither old nor new names may be empty")
        return 1
    try:
        services.rename_container(old, new)
    except DockwebError as err:
        _err(_daemon(err))
        _err(f"Error: failed to rename container named {old}")
        return 1
    return 0


def cmd_port(args) -> int:
    """docker port: ``80/tcp -> 0.0.0.0:8080`` for each published port, or the host
    addresses of one (``80``, ``80/tcp``); docker's error for one not published."""
    from containers import services

    info = services.inspect_container(args.container)
    published = info["NetworkSettings"]["Ports"] or {}
    if args.port is None:
        for key in sorted(published, key=lambda k: (int(k.partition("/")[0]), k)):
            for b in published[key]:
                print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
        return 0
    port, _, proto = args.port.partition("/")
    if not port.isdigit() or int(port) > 65535:
        _err(f'Error: invalid port ({port}): strconv.ParseUint: parsing "{port}": invalid syntax')
        return 1
    key = f"{port}/{proto or 'tcp'}"
    if not published.get(key):
        _err(f"Error: No public port '{key}' published for {args.container}")
        return 1
    for b in published[key]:
        print(f"{b['HostIp']}:{b['HostPort']}")
    return 0


# -- volume ------------------------------------------------------------------------------


def cmd_volume_ls(args) -> int:
    from containers import services
    from dockweb.docker.format import format_rows

    filters = _filters(args.filter or [])
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
    _out(format_rows(volume_rows(volumes), fmt, VOLUME_HEADERS, type_name=VOLUME_TYPE))
    return 0


def _volumes_in_use() -> set[str]:
    from containers import services

    used = set()
    for c in services.get_manager().list(all=True):
        for m in services.inspect_container(c)["Mounts"]:
            if m.get("Type") == "volume":
                used.add(m.get("Name"))
    return used


def cmd_volume_create(args) -> int:
    from containers import services

    if args.name and args.name_flag and args.name != args.name_flag:
        _err("Conflicting options: either specify --name or provide positional arg, not both")
        return 1
    name = args.name or args.name_flag or ""
    if args.opt:  # the local driver's type/device/o (mounts of other file systems): not here
        keys = ", ".join(sorted({o.partition("=")[0] for o in args.opt}))
        _err(f"Error response from daemon: create {name or '<anonymous>'}: the local driver "
             f"of dockweb takes no options (given: {keys}); a volume is a directory")
        return 1
    labels = {}
    for item in args.label or []:
        k, _, v = item.partition("=")
        labels[k] = v
    print(services.create_volume(name, labels))
    return 0


def cmd_volume_inspect(args) -> int:
    from containers import services
    from dockweb.docker.format import render

    results, errors = [], []
    for name in args.names:
        try:
            results.append(services.get_volume(name))
        except DockwebError as err:
            errors.append(_client_not_found("volume", name) if _is_not_found(err) else _daemon(err))
    if args.format:
        for r in results:
            _out(render(args.format, r))
    else:
        print(json.dumps(results, indent=4, ensure_ascii=False))
    if errors:
        _err("\n".join(errors))
        return 1
    return 0


def cmd_volume_rm(args) -> int:
    from containers import services

    status = 0
    for name in args.names:
        try:
            services.remove_volume(name, force=args.force)
        except DockwebError as err:
            if _is_not_found(err):
                if args.force:
                    print(name)
                    continue
                _err(_client_not_found("volume", name))
            else:
                _err(_daemon(err))
            status = 1
            continue
        print(name)
    return status


def cmd_volume_prune(args) -> int:
    from containers import services
    from dockweb.runtime.units import human_size

    if not args.force:
        sys.stdout.write(PRUNE_WARNING)
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    names, space = services.prune_volumes()
    if names:
        print("Deleted Volumes:\n" + "".join(n + "\n" for n in names))
    print("Total reclaimed space:", human_size(space))
    return 0


# -- parser ------------------------------------------------------------------------------


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
    p.add_argument("--network", "--net", default="none",
                   help="Connect a container to a network (none or host)")
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
    p.add_argument("--cidfile", help="Write the container ID to the file")
    p.add_argument("--restart", default="",
                   help="Restart policy to apply when a container exits (default \"no\")")
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
    p.set_defaults(func=cmd_run)


def _add_sig_proxy_flag(p) -> None:
    # --sig-proxy=false: main.py's _go_bool_flags turns it into --no-sig-proxy
    p.add_argument("--sig-proxy", action=argparse.BooleanOptionalAction, default=True,
                   help="Proxy received signals to the process (default true)")


def _add_container_commands(sub, *, under_container: bool) -> None:
    add_run_command(sub)

    p = _parser(sub, "create", "Create a new container", add_help=False)
    _add_create_flags(p)
    p.set_defaults(func=cmd_create)

    p = _parser(sub, "start", "Start one or more stopped containers")
    p.add_argument("-a", "--attach", action="store_true",
                   help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    _add_sig_proxy_flag(p)
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_start)

    for verb, help_text in (
        ("stop", "Stop one or more running containers"),
        ("restart", "Restart one or more containers"),
    ):
        p = _parser(sub, verb, help_text)
        p.add_argument("-t", "--time", type=int, default=None,
                       help="Seconds to wait for stop before killing it (default 10)")
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p.set_defaults(func=_simple(verb))

    p = _parser(sub, "kill", "Kill one or more running containers")
    p.add_argument("-s", "--signal", default="KILL",
                   help='Signal to send to the container (default "KILL")')
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=_simple("kill"))

    for verb, help_text in (
        ("pause", "Pause all processes within one or more containers"),
        ("unpause", "Unpause all processes within one or more containers"),
    ):
        p = _parser(sub, verb, help_text)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p.set_defaults(func=_simple(verb))

    p = _parser(sub, "rm", "Remove one or more containers",
                aliases=("remove",) if under_container else ())
    p.add_argument("-f", "--force", action="store_true",
                   help="Force the removal of a running container (uses SIGKILL)")
    p.add_argument("-v", "--volumes", action="store_true",
                   help="Remove anonymous volumes associated with the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_rm)

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
    p.set_defaults(func=cmd_ps)

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
    p.set_defaults(func=cmd_logs)

    p = _parser(sub, "inspect", "Display detailed information on one or more containers"
                if under_container else "Return low-level information on Docker objects")
    p.add_argument("-f", "--format", help="Format the output using the given Go template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    if not under_container:
        p.add_argument("--type", help="Return JSON for specified type")
    p.add_argument("names", nargs="+", metavar="CONTAINER" if under_container else "NAME|ID")
    if under_container:
        p.set_defaults(func=cmd_inspect)
    else:
        p.set_defaults(func=lambda a: cmd_inspect(
            a, kinds=(a.type,) if a.type else ("container", "image", "volume")
        ))

    p = _parser(sub, "diff", "Inspect changes to files or directories on a container's filesystem")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_diff)

    p = _parser(sub, "exec", "Run a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", help="Set environment variables")
    p.add_argument("-u", "--user", help="Username or UID")
    p.add_argument("-w", "--workdir", help="Working directory inside the container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    p.set_defaults(func=cmd_exec)

    p = _parser(sub, "top", "Display the running processes of a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]")
    p.set_defaults(func=cmd_top)

    p = _parser(sub, "stats", "Display a live stream of container(s) resource usage statistics")
    p.add_argument("-a", "--all", action="store_true", help="Show all containers")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("--format", help="Pretty-print images using a Go template")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.set_defaults(func=cmd_stats)

    p = _parser(sub, "attach",
                "Attach local standard input, output, and error streams to a running container")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    _add_sig_proxy_flag(p)
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_attach)

    p = _parser(sub, "cp", "Copy files/folders between a container and the local filesystem")
    p.add_argument("-a", "--archive", action="store_true",
                   help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true",
                   help="Always follow symbol link in SRC_PATH")
    p.add_argument("src", metavar="SRC_PATH")
    p.add_argument("dst", metavar="DEST_PATH")
    p.set_defaults(func=cmd_cp)

    p = _parser(sub, "wait", "Block until one or more containers stop, then print their exit codes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_wait)

    p = _parser(sub, "update", "Update configuration of one or more containers")
    p.add_argument("-m", "--memory", help="Memory limit")
    p.add_argument("--cpus", help="Number of CPUs")
    p.add_argument("--pids-limit", type=int,
                   help="Tune container pids limit (set -1 for unlimited)")
    p.add_argument("--restart", help="Restart policy to apply when a container exits")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_update)

    p = _parser(sub, "rename", "Rename a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")
    p.set_defaults(func=cmd_rename)

    p = _parser(sub, "port", "List port mappings or a specific mapping for the container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    p.set_defaults(func=cmd_port)

    p = _parser(sub, "export", "Export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_export)


def _add_volume_commands(sub, parser_class) -> None:
    volume = sub.add_parser("volume", help="Manage volumes")
    vsub = volume.add_subparsers(dest="volume_command", metavar="COMMAND",
                                 parser_class=parser_class)
    vsub.required = True
    p = vsub.add_parser("ls", aliases=["list"], help="List volumes")
    p.add_argument("-f", "--filter", action="append", help="Provide filter values")
    p.add_argument("--format", help="Pretty-print volumes using a Go template")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    p.set_defaults(func=cmd_volume_ls)

    p = vsub.add_parser("create", help="Create a volume")
    p.add_argument("name", nargs="?", metavar="VOLUME")
    p.add_argument("--name", dest="name_flag", help="Specify volume name")
    p.add_argument(
        "-d", "--driver", default="local", help='Specify volume driver name (default "local")'
    )
    p.add_argument("--label", action="append", help="Set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", help="Set driver specific options")
    p.set_defaults(func=cmd_volume_create)

    p = vsub.add_parser("inspect", help="Display detailed information on one or more volumes")
    p.add_argument("-f", "--format", help="Format the output using the given Go template")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(func=cmd_volume_inspect)

    p = vsub.add_parser("rm", aliases=["remove"], help="Remove one or more volumes")
    p.add_argument("-f", "--force", action="store_true",
                   help="Force the removal of one or more volumes")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(func=cmd_volume_rm)

    p = vsub.add_parser("prune", help="Remove all unused local volumes")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", help="Provide filter values")
    p.set_defaults(func=cmd_volume_prune)


def add_commands(sub) -> None:
    """Add the container and volume commands to dockweb's top-level subparsers."""
    parser_class = sub._parser_class
    _add_container_commands(sub, under_container=False)
    container = sub.add_parser("container", help="Manage containers")
    csub = container.add_subparsers(dest="container_command", metavar="COMMAND",
                                    parser_class=parser_class)
    csub.required = True
    _add_container_commands(csub, under_container=True)
    _add_volume_commands(sub, parser_class)
