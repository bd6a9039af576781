"""The commands that start a process and attach to it: run, create, exec, attach; the
terminal proxy of ``-it``. docker 20.10's messages and exit statuses: ``run`` exits 125 when
the container could not be made or started (126/127 when its command cannot be invoked or
found), else with the container's exit code."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import termios
import time
import tty

from containers import services
from containers.services import parse_env
from dockweb.cli.common import daemon_error, print_error
from dockweb.cli.lookup import find_container
from dockweb.cli.progress import PullRenderer
from dockweb.cli.run_common import (
    CidFile,
    SignalProxy,
    client_side,
    copy_log_lines,
    report,
    run_exit_code,
    spec_from_args,
    start_failed,
)
from dockweb.runtime import attach
from dockweb.runtime import reference as refs
from dockweb.runtime.containers import Status
from dockweb.runtime.errors import ContainerStartError, DockwebError, ImageNotFound
from images import services as image_services


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
    try:
        return services.create_container(spec)
    except ImageNotFound:
        pass

    try:
        named = refs.parse_normalized_named(spec.image)
    except DockwebError:
        raise ImageNotFound(f"No such image: {spec.image}") from None
    shown = named if (named.tag or named.digest) else named.with_tag("latest")
    print_error(f"Unable to find image '{shown.familiar_string()}' locally")
    renderer = PullRenderer(sys.stderr, quiet=False)
    result = image_services.pull_image(shown.string() if hasattr(shown, "string") else
                                       shown.familiar_string(), on_progress=renderer)
    renderer.finish()
    del result
    return services.create_container(spec)


def cmd_create(args) -> int:
    try:
        spec = spec_from_args(args)
    except DockwebError as err:  # the client's own checks of its flags
        report("create", err, with_help=True)
        return 125
    try:
        cid = _create_pulling(spec, args, "create")
    except DockwebError as err:  # docker create prints the daemon's answer as it is
        print_error(str(err) if client_side(err) else daemon_error(err))
        return 1
    print(cid)
    return 0


def cmd_run(args) -> int:
    try:
        spec = spec_from_args(args)
    except DockwebError as err:
        report("run", err, with_help=True)
        return 125
    # docker/cli's CheckTty, before creating; only when stdin is attached (not with -d)
    if args.tty and args.interactive and not args.detach and not sys.stdin.isatty():
        print_error("the input device is not a TTY")
        return 1
    try:
        cid = _create_pulling(spec, args, "run")
    except DockwebError as err:
        report("run", err, with_help=True)
        return run_exit_code(err)
    try:
        if not args.detach and (args.interactive or args.tty):
            return start_interactive(cid, interactive=args.interactive, sig_proxy=args.sig_proxy)
        if not args.detach:
            return start_attached(cid, sig_proxy=args.sig_proxy)
        services.start_container(cid)
    except DockwebError as err:  # docker run --rm removes a container that failed to start
        return start_failed(
            err, spec.auto_remove, lambda: services.remove_container(cid, force=True, volumes=True)
        )
    print(cid)
    return 0


def start_attached(cid: str, *, sig_proxy: bool = True, start: bool = True) -> int:
    """Start with the container's output copied to ours; its exit code. With
    ``sig_proxy``, signals we receive go to the container (``SignalProxy``).

    The log and the supervisor's lock file are opened before the start: with --rm the
    supervisor removes the container's directory as soon as it exits, and the open files
    still give the last lines and the final state it writes into the lock file.
    """
    mgr = services.get_manager()
    cdir = mgr.cdir(cid)
    log_path = os.path.join(cdir, "container.log")
    open(log_path, "ab").close()
    lock_fd = os.open(os.path.join(cdir, "shim.lock"), os.O_RDONLY | os.O_CREAT, 0o600)
    proxy = SignalProxy(lambda signum: mgr.kill(cid, signum), on=sig_proxy)
    try:
        with open(log_path, "rb") as log, proxy:
            log.seek(0, os.SEEK_END)  # start -a again (or attach): only what comes now
            mgr.note_attach(cid)
            if start:
                services.start_container(cid)
            pending = b""
            while True:
                proxy.forward()
                chunk = log.read()
                if chunk:
                    pending = copy_log_lines(pending + chunk)
                    continue
                try:
                    fcntl.flock(lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    time.sleep(0.02)
                    continue
                pending = copy_log_lines(pending + log.read())
                break
        data = os.pread(lock_fd, 65536, 0)
    finally:
        os.close(lock_fd)
    if data.strip():
        return int(json.loads(data)["exit_code"])
    return services.wait_container(cid)


def start_interactive(
    cid: str, *, interactive: bool, sig_proxy: bool = True, start: bool = True
) -> int:
    """Start a ``-i``/``-t`` container and attach to its supervisor (``run -it``, ``start
    -ai``): our stdin to the container's (with ``interactive``), its output to ours, our
    terminal raw and its size passed on (with a tty). Ctrl-P Ctrl-Q detaches and leaves the
    container running. Without a tty, and with ``sig_proxy``, signals we receive go to the
    container (with a tty Docker proxies none: Ctrl-C is a key). Returns its exit code (0
    when detached)."""
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
            mgr.note_attach(cid)
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


def cmd_exec(args) -> int:
    if find_container(args.container) is None:
        return 1
    if not args.cmd:
        print_error(
            '"dockweb exec" requires at least 2 arguments.\nSee \'dockweb exec --help\'.\n\n'
            "Usage:  dockweb exec [OPTIONS] CONTAINER COMMAND [ARG...]\n\n"
            "Run a command in a running container"
        )
        return 1
    env = []

    env = parse_env(args.env or [])
    if args.tty and args.interactive and not sys.stdin.isatty():
        print_error("the input device is not a TTY")
        return 1
    try:
        if args.detach:  # a start failure is the API's answer here, not the stream's
            try:
                services.exec_detached(
                    args.container, args.cmd, user=args.user or "", env=env,
                    workdir=args.workdir or "",
                )
            except DockwebError as err:
                print_error(daemon_error(err))
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
        print_error(daemon_error(err))
        return 1
    return int(code or 0)


def proxy_terminal(handle, *, interactive: bool) -> int:
    """Proxy our terminal to an exec's pty until the command ends, as the docker client
    does for ``-t``: the local terminal in raw mode while it runs (with ``-i``), its size
    given to the pty at once and on every SIGWINCH. Returns the command's exit code."""
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


def cmd_attach(args) -> int:
    """docker attach: the running container's output from now on (and our stdin to it when
    it has one), signals passed on, its exit code. Ctrl-P Ctrl-Q detaches from a tty."""
    c = find_container(args.container)
    if c is None:
        return 1
    if not c.status.is_active:
        print_error("You cannot attach to a stopped container, start it first")
        return 1
    if c.status is Status.PAUSED:
        print_error("You cannot attach to a paused container, unpause it first")
        return 1
    interactive = c.spec.interactive and not args.no_stdin
    if c.spec.tty and interactive and not sys.stdin.isatty():
        print_error("the input device is not a TTY")
        return 1
    if c.spec.tty or c.spec.interactive:
        return start_interactive(
            c.id, interactive=interactive, sig_proxy=args.sig_proxy, start=False
        )
    return start_attached(c.id, sig_proxy=args.sig_proxy, start=False)
