"""What both ways of ``dockweb run`` share (fastrun.py without Django, run.py with it): the
spec from the flags, --cidfile, docker's messages and exit statuses for a run that failed,
the signal proxy and the copy of the container's output.

Without Django: the fast run path imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys

from dockweb.cli.common import daemon_error, print_error
from dockweb.cli.signals import PROXIED
from dockweb.docker import run_options
from dockweb.docker.run_options import ClientOption, InvalidFlag, InvalidOption
from dockweb.runtime.errors import DockwebError, os_reason


def spec_from_args(args):
    if args.publish and args.network == "host":
        print_error("WARNING: Published ports are discarded when using host network mode")

    return run_options.build_spec(
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
        network_alias=args.network_alias or [],
        ip=args.ip or "",
        dns=args.dns or [],
        dns_search=args.dns_search or [],
        dns_option=args.dns_option or [],
        publish_all=bool(args.publish_all),
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
        security_opt=args.security_opt or [],
        privileged=bool(args.privileged),
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


def run_exit_code(err: Exception) -> int:
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


def report(cmd: str, err: Exception, *, with_help: bool) -> None:
    """docker/cli reportError: ``docker: <error>.`` and, for bad input, the help hint."""
    if isinstance(err, InvalidFlag):  # pflag's own error: bare, as its FlagErrorFunc
        print_error(f"{err}\nSee 'dockweb {cmd} --help'.")
        return
    text = daemon_error(err) if isinstance(err, DockwebError) and not client_side(err) else str(err)
    text = text.rstrip(".") + "."
    if with_help:
        text += f"\nSee 'dockweb {cmd} --help'."
    print_error(f"dockweb: {text}")


def start_failed(err: Exception, auto_remove: bool, remove) -> int:
    """docker run's answer to a container that failed to start: the error reported, the
    container removed with ``remove()`` under --rm (``auto_remove``; a failure to remove is
    ignored, as docker's), and the exit code (``run_exit_code``)."""
    report("run", err, with_help=False)
    if auto_remove:
        with contextlib.suppress(DockwebError):
            remove()
    return run_exit_code(err)


def client_side(err: Exception) -> bool:
    if isinstance(err, ClientOption):
        return True
    return isinstance(err, InvalidOption) and str(err).startswith("invalid environment")


class CidFile:
    """--cidfile, as docker/cli's cidFile: refused if the file exists, created before the
    container, the ID written once it exists, removed if it never got one."""

    def __init__(self, path: str | None) -> None:
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


class SignalProxy:
    """docker's --sig-proxy (moby cli's ForwardAllSignals): the signals this process
    receives (``signals.PROXIED``) are passed on to the container, and do not end this
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
        if self.on:
            for signum in PROXIED:
                self.saved[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc) -> None:
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


def copy_log_lines(data: bytes) -> bytes:
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
