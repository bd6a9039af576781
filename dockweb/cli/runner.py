"""The resident runner: `dockweb run` without importing the CLI and the runtime each time.

    python -P -m dockweb.cli.runner SOCKET        (started by dockweb/cli/launch.py)

It imports what the fast run path (dockweb/cli/fastrun.py) needs once, then listens on a
Unix socket. For each command (launch.py describes the protocol) it forks a child that
takes the client's descriptors, working directory, umask, environment and arguments and
runs ``dockweb.cli.main.main`` as the direct path would; the child's exit code or signal
goes back to the client, signals the client receives come to the child, and a client that
goes away takes its child with it (SIGKILL). Children are forked from a process that never
ran a command, so one command leaves nothing behind for the next.

Guarantees:
- one runner per socket: it holds an exclusive flock on SOCKET.lock for as long as it
  listens (its pid written there), and a second one leaves;
- only its own user's commands (SO_PEERCRED), over a socket made 0600;
- never older code than the disk's: before each command it compares the modification times
  of the modules it imported from the package with those it imported; when one changed it
  answers "stale", stops listening and quits (the client runs the command directly and
  starts a new runner);
- idle for ``DOCKWEB_RUNNER_IDLE`` seconds (600 by default), or on SIGTERM, SIGINT or
  SIGHUP, it stops listening (removing its socket and releasing its lock, so that a new
  one can start at once) and quits once the commands it runs have ended.
"""

from __future__ import annotations

import fcntl
import gc
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback

from dockweb.cli import launch

IDLE_SECONDS = 600.0
MAX_REQUEST = 4 << 20  # bytes: arguments and environment
REQUEST_TIMEOUT = 5.0  # seconds for a client to send its request once connected
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def idle_seconds(environ=os.environ) -> float:
    """``DOCKWEB_RUNNER_IDLE`` in seconds; ValueError with the reason for a bad value."""
    value = environ.get("DOCKWEB_RUNNER_IDLE", "")
    if not value:
        return IDLE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"DOCKWEB_RUNNER_IDLE must be a number of seconds above 0, not {value!r}")
    return seconds


class Runner:
    def __init__(self, path: str, idle: float = IDLE_SECONDS):
        self.path = path
        self.idle = idle
        self.pid = os.getpid()
        self.lock_fd = -1
        self.listener: socket.socket | None = None
        self.bound_ino = 0
        self.selector: selectors.BaseSelector | None = None
        self.wakeup: tuple[int, int] | None = None
        self.children: dict[int, socket.socket | None] = {}  # pid: its client's connection
        self.clients: dict[socket.socket, int] = {}  # connection: its child's pid
        self.mtimes: dict[str, int] = {}
        self.stopping = False

    # --- starting ----------------------------------------------------------------------

    def claim(self, wait: float = 10.0) -> bool:
        """Take the socket's lock, waiting up to ``wait`` seconds for a runner that is
        leaving; False when another runner keeps it."""
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.lock_fd = fd
        return True

    def warm(self) -> None:
        """Import what a `dockweb run` imports, and note the package's module files."""
        import _strptime  # noqa: F401 (datetime's strptime, first used in a command)
        import datetime  # noqa: F401
        import getpass  # noqa: F401
        import json  # noqa: F401
        import shlex  # noqa: F401
        import sqlite3  # noqa: F401

        import containers.exit_hook  # noqa: F401
        import containers.fastmirror  # noqa: F401
        import dockweb.cli.fastrun  # noqa: F401
        import dockweb.cli.main  # noqa: F401
        import dockweb.cli.run_common  # noqa: F401
        import dockweb.runtime.containers  # noqa: F401
        import dockweb.runtime.store  # noqa: F401

        self.mtimes = _mtimes(_package_files())
        gc.collect()
        gc.freeze()  # the children's collections leave the runner's pages shared

    def stale(self) -> bool:
        """Whether a module file the runner imported changed (or went) since."""
        return _mtimes(self.mtimes) != self.mtimes

    def listen(self) -> None:
        """Listen on the socket. It is bound under another name and renamed into place,
        so that a socket file at ``path`` always takes connections."""
        fresh = f"{self.path}.new"
        try:
            os.unlink(fresh)  # a dead runner's: the lock says none is listening
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            listener.bind(fresh)
        finally:
            os.umask(old)
        listener.listen(128)
        listener.setblocking(False)
        self.bound_ino = os.stat(fresh).st_ino
        os.rename(fresh, self.path)
        self.listener = listener

    # --- serving -----------------------------------------------------------------------

    def serve(self) -> None:
        """Run commands until stopped or idle, then until the last one has ended."""
        self.selector = selectors.DefaultSelector()
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wakeup = (read_end, write_end)
        signal.set_wakeup_fd(write_end)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(read_end, selectors.EVENT_READ, "signal")
        idle_since = time.monotonic()
        print(f"dockweb runner {os.getpid()}: listening on {self.path}", flush=True)
        while True:
            self._reap()
            if self.stopping and self.listener is not None:
                self._close_listener()
            if self.children or self.clients:
                idle_since = time.monotonic()
                timeout = None
            elif self.listener is None:
                break
            else:
                timeout = idle_since + self.idle - time.monotonic()
                if timeout <= 0:
                    print(f"dockweb runner {os.getpid()}: idle, leaving", flush=True)
                    self._close_listener()
                    continue
            for key, _ in self.selector.select(timeout):
                if key.data == "accept":
                    self._accept()
                elif key.data == "signal":
                    try:
                        while os.read(read_end, 512):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._from_client(key.fileobj)
        print(f"dockweb runner {os.getpid()}: stopped", flush=True)

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def _close_listener(self) -> None:
        """Stop taking commands: the socket removed (if still ours) and the lock released,
        so a new runner can start while the commands this one runs finish."""
        if self.listener is None:
            return
        self.selector.unregister(self.listener)
        try:
            if os.stat(self.path).st_ino == self.bound_ino:
                os.unlink(self.path)
        except OSError:
            pass
        self.listener.close()
        self.listener = None
        os.close(self.lock_fd)
        self.lock_fd = -1

    def _accept(self) -> None:
        if self.listener is None:
            return
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        fds: list[int] = []
        try:
            conn.setblocking(True)
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", creds)
            if uid != os.geteuid():
                conn.sendall(b"R\n")
                conn.close()
                return
            if self.stale():
                print(f"dockweb runner {os.getpid()}: modules changed on disk, leaving", flush=True)
                conn.sendall(b"S\n")
                conn.close()
                self.stopping = True
                self._close_listener()
                return
            conn.settimeout(REQUEST_TIMEOUT)
            payload, fds = _receive(conn)
            request = launch.decode_request(payload)
        except (OSError, ValueError) as err:
            print(f"dockweb runner {os.getpid()}: bad request: {err}", flush=True)
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        try:
            pid = os.fork()
        except OSError as err:  # the client gets no answer: it runs the command itself
            print(f"dockweb runner {os.getpid()}: cannot fork: {err}", flush=True)
            pid = -1
        if pid == 0:
            try:
                self._child(conn, fds, *request)
            finally:
                os._exit(125)
        for fd in fds:
            os.close(fd)
        if pid < 0:
            conn.close()
            return
        self.children[pid] = conn
        self.clients[conn] = pid
        try:
            conn.sendall(b"A\n")
        except OSError:
            pass
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ, "client")

    def _from_client(self, conn: socket.socket) -> None:
        """Signal numbers to pass on; the end of the connection: the client is gone."""
        pid = self.clients.get(conn)
        try:
            data = conn.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if pid is not None and pid in self.children:
                _kill(pid, signal.SIGKILL)  # as the direct path would die with its client
                self.children[pid] = None
            self._drop(conn)
            return
        for signum in data:
            if pid is not None and 0 < signum < signal.NSIG:
                _kill(pid, signum)

    def _drop(self, conn: socket.socket) -> None:
        self.clients.pop(conn, None)
        try:
            self.selector.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            if os.WIFSIGNALED(status):
                answer = f"K{os.WTERMSIG(status)}\n"
            else:
                answer = f"E{os.waitstatus_to_exitcode(status)}\n"
            try:
                conn.setblocking(True)
                conn.settimeout(1.0)
                conn.sendall(answer.encode())
            except OSError:
                pass
            self._drop(conn)

    # --- the child: one command --------------------------------------------------------

    def _child(self, conn, fds, cwd: str, umask: int, argv: list[str], environ: dict) -> None:
        from dockweb.runtime import syscalls

        # A runner killed (SIGKILL: it could not wait) takes its commands with it, as a
        # client does: its clients learn that their command's status is lost.
        syscalls.die_with_parent(signal.SIGKILL)
        if os.getppid() != self.pid:  # it died before that
            os._exit(125)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self._close_inherited(conn)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        try:
            os.chdir(cwd)
        except OSError as err:
            print(f"dockweb: cannot enter {cwd}: {err.strerror}", file=sys.stderr)
            os._exit(125)
        os.umask(umask)
        os.environ.clear()
        os.environ.update(environ)
        time.tzset()
        sys.argv = list(argv)
        _reopen_std_streams()
        from dockweb.cli import main

        code = _status_of(main.main)
        if "django" in sys.modules:  # the ordinary path ran: its exit hooks, as sys.exit
            import atexit

            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)

    def _close_inherited(self, conn) -> None:
        """The runner's descriptors, closed in the child (and so in the supervisors it
        forks): the lock among them, which must go with the runner."""
        for sock in [self.listener, conn, *self.clients]:
            if sock is not None:
                os.close(sock.detach())
        if self.selector is not None:
            self.selector.close()
        for fd in (*(self.wakeup or ()), self.lock_fd):
            if fd >= 0:
                os.close(fd)


def _package_files() -> list[str]:
    """The files of the package's modules imported so far."""
    root = _PACKAGE_ROOT + os.sep
    names = (getattr(module, "__file__", None) for module in list(sys.modules.values()))
    return [name for name in names if name and name.startswith(root)]


def _mtimes(names) -> dict[str, int]:
    mtimes = {}
    for name in names:
        try:
            mtimes[name] = os.stat(name).st_mtime_ns
        except OSError:
            mtimes[name] = -1
    return mtimes


def _receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    """The request's payload and the descriptors that came with it."""
    fds: list[int] = []
    data, ancillary, flags, _ = conn.recvmsg(65536, socket.CMSG_SPACE(3 * 4))
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += [int.from_bytes(raw[i : i + 4], sys.byteorder) for i in range(0, len(raw), 4)]
    try:
        if flags & socket.MSG_CTRUNC or len(fds) != 3:
            raise ValueError("a request comes with three descriptors")
        if len(data) < 4:
            raise ValueError("short request")
        size = int.from_bytes(data[:4], "big")
        if size > MAX_REQUEST:
            raise ValueError(f"request of {size} bytes")
        data = data[4:]
        while len(data) < size:
            chunk = conn.recv(min(size - len(data), 1 << 20))
            if not chunk:
                raise ValueError("request cut short")
            data += chunk
        if len(data) != size:
            raise ValueError("more than the request")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return data, fds


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _reopen_std_streams() -> None:
    """sys.stdin, stdout and stderr on the client's descriptors, buffered as Python makes
    them at start: stdout by line on a terminal, stderr by line always."""
    sys.stdin = open(0, encoding="utf-8", errors="strict", closefd=False)  # noqa: SIM115
    sys.stdout = open(  # noqa: SIM115
        1, "w", encoding="utf-8", closefd=False, buffering=1 if os.isatty(1) else -1
    )
    sys.stderr = open(  # noqa: SIM115
        2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1
    )


def _status_of(func) -> int:
    """``func()``'s exit status as the interpreter would make it of its return value or
    exception; a KeyboardInterrupt ends the process by SIGINT, as it ends Python's."""
    try:
        code = func()
    except SystemExit as exit:
        code = exit.code
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    except BaseException:
        traceback.print_exc()
        return 1
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def holder(path: str) -> int | None:
    """The pid of the runner that holds ``path``'s lock (0 while it has yet to write it),
    None when none does."""
    try:
        fd = os.open(f"{path}.lock", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # free (released at once by the close)
        except BlockingIOError:
            pass
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else 0
    finally:
        os.close(fd)


def stop(path: str, timeout: float = 10.0) -> bool:
    """Stop the runner on ``path`` (SIGTERM) and wait up to ``timeout`` seconds for it to
    stop listening. True when none is listening any more."""
    deadline = time.monotonic() + timeout
    signalled = False
    while (pid := holder(path)) is not None:
        if pid and not signalled:
            _kill(pid, signal.SIGTERM)
            signalled = True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dockweb.cli.runner SOCKET", file=sys.stderr)
        return 2
    try:
        idle = idle_seconds()
    except ValueError as err:
        print(f"dockweb runner: {err}", file=sys.stderr)
        return 2
    os.closerange(3, 1 << 16)
    os.chdir("/")
    runner = Runner(os.path.abspath(args[0]), idle)
    if not runner.claim():
        return 0  # another runner listens there
    runner.warm()
    runner.listen()
    runner.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
