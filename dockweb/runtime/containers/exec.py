"""Running a command in a running container (``docker exec``) and the handle of one that
runs (``ExecProcess``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import select
import shutil
import signal as signals
import socket
import struct
import subprocess
import sys
import tempfile
import termios
from collections.abc import Callable
from typing import BinaryIO

from dockweb.runtime import attach as frames
from dockweb.runtime import events, oci
from dockweb.runtime.containers.ocirt import (
    docker_words,
    log_error,
    recv_console_fd,
    with_pythonpath,
)
from dockweb.runtime.containers.state import Container, Status, write_json_atomic
from dockweb.runtime.errors import (
    ContainerConflict,
    ContainerNotRunning,
    ContainerStartError,
    InvalidContainerSpec,
)


class ExecMixin:
    """``ContainerManager``'s exec, exec_start and exec_detached."""

    def _exec_events(self, c: Container, cmd: list[str], exec_id: str | None) -> str:
        """Journal dockerd's ``exec_create`` (unless the caller created the exec and said so
        with ``exec_id``, as the Engine API does) and ``exec_start``; the exec's ID."""
        text = cmd[0] + " " + " ".join(cmd[1:])  # dockerd's Entrypoint + " " + Args
        if exec_id is None:
            exec_id = secrets.token_hex(32)
            events.container(self.root, c, "exec_create: " + text, execID=exec_id)
        events.container(self.root, c, "exec_start: " + text, execID=exec_id)
        return exec_id

    def _exec_died(self, c: Container, exec_id: str) -> Callable[[int], None]:
        return lambda code: events.container(
            self.root, c, "exec_die", execID=exec_id, exitCode=str(code)
        )

    def check_exec(self, ref: str) -> Container:
        """The container ``ref`` names if a command can run in it now, else dockerd's
        refusal: ContainerNotFound, or ContainerConflict (paused, restarting) /
        ContainerNotRunning with dockerd's words (a paused one as ``ref`` names it)."""
        c = self.get(ref)
        if c.status is Status.PAUSED:
            raise ContainerConflict(f"Container {ref} is paused, unpause the container before exec")
        if c.status is Status.RESTARTING:
            raise ContainerConflict(
                f"Container {c.id} is restarting, wait until the container is running"
            )
        if not c.status.can_exec():
            raise ContainerNotRunning(f"Container {c.id} is not running")
        return c

    def _exec_command(
        self,
        ref: str,
        cmd: list[str],
        *,
        tty: bool,
        user: str,
        env,
        workdir: str,
        privileged: bool = False,
    ) -> tuple[Container, list[str], str]:
        """Check that ``ref`` can exec and build ``<runtime> ... exec`` options (without the
        container ID and command) and the path of the runtime's JSON log for this exec."""
        c = self.check_exec(ref)
        if not cmd:
            raise InvalidContainerSpec("No exec command specified")
        rootfs = self.mount_rootfs(c)
        cfg = self.store.get_image(c.image_id).config.get("config") or {}
        u = oci.resolve_user(rootfs, user or c.spec.user or cfg.get("User") or "")
        # docker exec -t sets TERM=xterm for the exec whatever the container's own tty
        base_env = oci.process_env(
            oci.merge_env(cfg.get("Env") or [], c.spec.env), c.hostname, c.spec.tty or tty
        )
        # The exec's whole process, as containerd hands it to the runtime: the container's
        # own (capabilities, rlimits, no_new_privileges, ...) with the command, env, cwd,
        # terminal and user replaced. The runtimes' --user would keep the container's
        # supplementary groups (root's 0) for another user; docker's exec has only the
        # user's own.
        with open(os.path.join(self.cdir(c.id), "bundle", "config.json"), "rb") as f:
            process = json.load(f)["process"]
        process.pop("consoleSize", None)
        process["terminal"] = tty
        process["args"] = list(cmd)
        process["env"] = oci.merge_env(base_env, list(env))
        if workdir or c.spec.workdir or cfg.get("WorkingDir"):
            process["cwd"] = workdir or c.spec.workdir or cfg.get("WorkingDir")
        process["user"] = {"uid": u.uid, "gid": u.gid}
        if privileged:  # docker exec --privileged: every capability, as moby's execSetPlatformOpt
            every = oci.host_capabilities()
            process["capabilities"] = {"bounding": every, "permitted": every, "effective": every}
        if u.additional_gids:
            process["user"]["additionalGids"] = list(u.additional_gids)
        token = secrets.token_hex(4)
        log = os.path.join(self.cdir(c.id), f"exec-{token}.log")
        spec = log[: -len(".log")] + ".json"  # both go in _drop_exec_files
        write_json_atomic(spec, process, durable=False)
        return (
            c,
            [
                self.runtime,
                "--root",
                self.runtime_root,
                "--log",
                log,
                "--log-format",
                "json",
                "exec",
                "--process",
                spec,
            ],
            log,
        )

    def exec_start(
        self,
        ref: str,
        cmd: list[str],
        *,
        tty: bool = False,
        interactive: bool = False,
        user: str = "",
        env: list[str] | tuple = (),
        workdir: str = "",
        privileged: bool = False,
        output: bool = True,
        exec_id: str | None = None,
    ) -> ExecProcess:
        """Start ``cmd`` in the running container and return at once with a handle to pump
        its I/O and wait for it (``docker exec -d`` plus an attach).

        The runtime runs ``exec --detach``; the command's parent is then a small subreaper
        (``dockweb.runtime.execreaper``) that reports its host pid and exit code, so the
        command outlives whoever started it. With ``tty`` it also gets ``--tty
        --console-socket``: the pty's master arrives here over the socket (SCM_RIGHTS) and
        is ``handle.master``, on which ``resize`` sets the window size. Without ``tty``,
        ``handle.stdin`` (with ``interactive``; else the command reads /dev/null),
        ``handle.stdout`` and ``handle.stderr`` are pipes, or /dev/null without ``output``.
        ``privileged``: every capability (``docker exec --privileged``).

        Raises what ``exec`` raises, and ContainerStartError (126) when the runtime cannot
        start the command."""
        c, rt, log = self._exec_command(
            ref, cmd, tty=tty, user=user, env=env, workdir=workdir, privileged=privileged
        )
        exec_id = self._exec_events(c, cmd, exec_id)
        work = tempfile.mkdtemp(prefix="dwx-", dir="/tmp")
        pid_file = os.path.join(work, "pid")
        helper_args = ["--pid-file", pid_file]
        options = ["--detach", "--pid-file", pid_file]
        ours: dict[str, int] = {}  # our ends of the command's pipes, by the stream
        theirs: list[int] = []  # the command's ends, closed here once the helper has them
        stdin = stderr = subprocess.DEVNULL
        out_w = -1
        sock = None
        try:
            if tty:
                sock_path = os.path.join(work, "c.sock")
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.bind(sock_path)
                sock.listen(1)
                options += ["--tty", "--console-socket", sock_path]
                stderr = None  # the runtime's complaints: ours
            else:
                if interactive:
                    stdin, ours["stdin"] = os.pipe()
                    theirs.append(stdin)
                if output:
                    ours["stdout"], out_w = os.pipe()
                    ours["stderr"], stderr = os.pipe()
                    theirs += [out_w, stderr]
                else:
                    out_w = os.open(os.devnull, os.O_WRONLY)
                    theirs.append(out_w)
                helper_args += ["--stdout-fd", str(out_w)]
            status, helper = self._start_execreaper(
                [*helper_args, "--", *rt, *options, c.id, *cmd],
                stdin=stdin,
                stderr=stderr,
                pass_fds=[] if tty else [out_w],
            )
            for fd in theirs:
                os.close(fd)
            theirs = []
            # the runtime sends the master before it exits, and the helper speaks only then
            first = json.loads(status.readline() or b'{"error": "helper died"}')
            if "error" in first:
                status.read()  # to its end: the helper's
                status.close()
                if helper is not None:
                    helper.wait()
                raise _exec_failed(log_error(log) or first["error"])
            master = None
            if sock is not None:
                sock.settimeout(5)
                master = _recv_fd(sock)
        except BaseException:
            for fd in [*theirs, *ours.values()]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        finally:
            if sock is not None:
                sock.close()
            shutil.rmtree(work, ignore_errors=True)
            _drop_exec_files(log)
        return ExecProcess(
            status,
            helper,
            pid=first["pid"],
            master=master,
            stdin=os.fdopen(ours["stdin"], "wb") if "stdin" in ours else None,
            stdout=os.fdopen(ours["stdout"], "rb") if "stdout" in ours else None,
            stderr=os.fdopen(ours["stderr"], "rb") if "stderr" in ours else None,
            on_exit=self._exec_died(c, exec_id),
        )

    def _start_execreaper(
        self, args: list[str], *, stdin: int, stderr: int | None, pass_fds: list[int]
    ) -> tuple[BinaryIO, subprocess.Popen | None]:
        """``python -m dockweb.runtime.execreaper *args`` with ``stdin`` and ``stderr``
        (descriptors, or subprocess.DEVNULL; None: ours) and ``pass_fds``: forked by the
        manager's spawner when it has one (the Engine API service: no new interpreter per
        exec), else a new interpreter. The stream of its JSON lines (its stdout; it ends
        when the helper does) and its Popen (None when the spawner forked it)."""
        if self.spawner is None:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dockweb.runtime.execreaper", *args],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=stderr,
                pass_fds=pass_fds,
                env=with_pythonpath(os.environ),
                cwd="/",
            )
            return proc.stdout, proc
        r, w = os.pipe()
        null = os.open(os.devnull, os.O_RDWR)

        def fd(given: int | None, ours: int) -> int:
            return null if given == subprocess.DEVNULL else ours if given is None else given

        try:
            self.spawner.spawn_exec(args, [fd(stdin, 0), w, fd(stderr, 2)], pass_fds)
        except OSError as e:
            os.close(r)
            raise ContainerStartError(f"OCI runtime exec failed: {e}: unknown", 126) from None
        finally:
            os.close(w)
            os.close(null)
        return os.fdopen(r, "rb"), None

    def exec_detached(
        self,
        ref: str,
        cmd: list[str],
        *,
        user: str = "",
        env=(),
        workdir: str = "",
        exec_id: str | None = None,
    ) -> None:
        """``docker exec -d``: start the command and return; its output goes nowhere, as
        with dockerd (nothing attaches). Raises what ``exec`` raises if it cannot start."""
        c, rt, log = self._exec_command(ref, cmd, tty=False, user=user, env=env, workdir=workdir)
        self._exec_events(c, cmd, exec_id)
        try:
            # the command inherits the runtime's stdio: all /dev/null, or a pipe of ours
            # would stay open (and be waited for) as long as the command runs
            proc = subprocess.run(
                [*rt, "--detach", c.id, *cmd],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            err = log_error(log) or f"exit status {proc.returncode}"
        finally:
            _drop_exec_files(log)
        if proc.returncode != 0:
            raise _exec_failed(err)

    def exec(
        self,
        ref: str,
        cmd: list[str],
        *,
        tty: bool = False,
        interactive: bool = False,
        user: str = "",
        env: list[str] | tuple = (),
        workdir: str = "",
        stdin=None,
        stdout=None,
        stderr=None,
    ) -> int:
        """Run ``cmd`` in the running container and return its exit code. ``stdin``,
        ``stdout``, ``stderr`` are passed to the process (file objects or fds; None: this
        process's own). Raises ContainerNotRunning / ContainerConflict (paused) with Docker's
        messages, or ContainerStartError (exit code 126, as ``docker exec``) when the
        runtime cannot start the command.

        With ``tty`` the command gets a pty (``exec_start``) and this copies ``stdin`` (only
        with ``interactive``) to it and its output to ``stdout`` until it exits; the local
        terminal's mode is left alone (the CLI sets raw mode and forwards resizes itself)."""
        if tty:
            handle = self.exec_start(
                ref, cmd, tty=True, interactive=interactive, user=user, env=env, workdir=workdir
            )
            return handle.proxy(_fileno(stdin, 0) if interactive else None, _fileno(stdout, 1))
        c, rt, log = self._exec_command(ref, cmd, tty=False, user=user, env=env, workdir=workdir)
        exec_id = self._exec_events(c, cmd, None)
        try:
            proc = subprocess.run(
                [*rt, c.id, *cmd],
                stdin=stdin if stdin is not None else (None if interactive else subprocess.DEVNULL),
                stdout=stdout,
                stderr=stderr,
            )
            err = log_error(log)
        finally:
            _drop_exec_files(log)
        if proc.returncode != 0 and err:
            raise _exec_failed(err)
        self._exec_died(c, exec_id)(proc.returncode)
        return proc.returncode


class ExecProcess:
    """A command started by ``ContainerManager.exec_start``.

    ``pid``: the command's host pid. ``master``: the pty's master fd (tty only; owned by
    the handle, closed by ``close``). ``stdin``, ``stdout``, ``stderr``: pipes (no tty
    only; stdin is None without ``interactive``, the others without ``output``).
    Closing the master hangs the pty up, which sends the shell SIGHUP, as closing a
    terminal window does."""

    def __init__(
        self,
        status: BinaryIO,
        proc: subprocess.Popen | None,
        *,
        pid: int,
        master: int | None = None,
        stdin=None,
        stdout=None,
        stderr=None,
        on_exit: Callable[[int], None] | None = None,
    ):
        self._on_exit = on_exit  # called once with the exit code (the exec_die event)
        # the execreaper helper's stdout (it says the exit code, then exits: the stream
        # ends) and the helper when it is our child (None: the spawner's, reaped there)
        self._status = status
        self._proc = proc
        self._exit_code: int | None = None
        self.pid = pid
        self.master = master
        self.tty = master is not None
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr

    def resize(self, cols: int, rows: int) -> None:
        """Set the pty's window size (TIOCSWINSZ; the kernel sends SIGWINCH to its
        foreground process group). Does nothing without a tty or after ``close``."""
        if self.master is None or cols <= 0 or rows <= 0:
            return
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def poll(self) -> int | None:
        """The exit code if the command has ended, else None (never blocks)."""
        if self._exit_code is None and select.select([self._status], [], [], 0)[0]:
            self.wait()  # the helper speaks only as it ends
        return self._exit_code

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the command; its exit code as ``docker exec`` gives it (128 + signal
        when killed). Raises TimeoutError."""
        if self._exit_code is not None:
            return self._exit_code
        if not select.select([self._status], [], [], timeout)[0]:
            raise TimeoutError(f"exec {self.pid}: still running")
        code = 255
        for line in self._status.read().splitlines():
            with contextlib.suppress(ValueError, KeyError):
                code = int(json.loads(line)["exit_code"])
        self._status.close()
        if self._proc is not None:
            self._proc.wait()
        self._exit_code = code
        if self._on_exit is not None:
            self._on_exit(code)
        return code

    def kill(self, sig: int = signals.SIGKILL) -> None:
        """Signal the command. Gone: no-op."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def close(self) -> None:
        """Release the pty master (hanging the terminal up) or the pipes. Idempotent."""
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = None
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()

    def proxy(
        self,
        in_fd: int | None,
        out_fd: int,
        *,
        on_wakeup: Callable[[], None] | None = None,
        wakeup_fd: int | None = None,
    ) -> int:
        """Copy ``in_fd`` (None: nothing) to the pty and the pty to ``out_fd`` until the
        command ends; close the handle and return its exit code. ``wakeup_fd``: readable
        when ``on_wakeup`` should run (the CLI's SIGWINCH self-pipe)."""
        assert self.master is not None, "proxy needs a tty exec"
        watched = [self.master]
        if in_fd is not None:
            watched.append(in_fd)
        if wakeup_fd is not None:
            watched.append(wakeup_fd)
        try:
            while True:
                ready, _, _ = select.select(watched, [], [], 0.5)
                if self.master in ready:
                    try:
                        data = os.read(self.master, 65536)
                    except OSError:  # EIO: every slave fd is closed, the command is gone
                        data = b""
                    if not data:
                        break
                    frames.write_all(out_fd, data)
                if in_fd is not None and in_fd in ready:
                    data = os.read(in_fd, 65536)
                    if not data:  # our input ended: send EOF as a terminal does (^D)
                        watched.remove(in_fd)
                        in_fd = None
                        frames.write_all(self.master, b"\x04")
                    else:
                        frames.write_all(self.master, data)
                if wakeup_fd is not None and wakeup_fd in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wakeup_fd, 512)
                    if on_wakeup:
                        on_wakeup()
                if not ready and self.poll() is not None:
                    break
        finally:
            self.close()
        return self.wait()


# -- helpers shared with the supervisor -----------------------------------------------------


def _exec_failed(err: str) -> ContainerStartError:
    """An exec the runtime could not start, in dockerd's words (exit status 126)."""
    return ContainerStartError(
        f"OCI runtime exec failed: {docker_words(err, exec_=True)}: unknown", 126
    )


def _drop_exec_files(log: str) -> None:
    """Remove an exec's runtime log and the process.json beside it."""
    for path in (log, log[: -len(".log")] + ".json"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _recv_fd(sock: socket.socket) -> int:
    """The exec's terminal from the console socket, or the start error when none came."""
    fd = recv_console_fd(sock)
    if fd is None:
        raise ContainerStartError("OCI runtime exec failed: no console received: unknown", 126)
    return fd


def _fileno(f, default: int) -> int:
    if f is None:
        return default
    return f if isinstance(f, int) else f.fileno()
