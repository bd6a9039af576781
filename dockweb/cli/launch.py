"""The `dockweb` command's entry point: `dockweb run` through the resident runner, `dockweb
pull` through the running `dockweb system service` when there is one (dockweb/cli/thinpull.py),
else without Django when it can (dockweb/cli/fastpull.py).

A `dockweb run` spends about 60 ms importing the CLI, the runtime and sqlite3 before it does
anything, more than half of a short run. A runner (dockweb/cli/runner.py) keeps those
modules imported and forks a child per command, and this module is all that `dockweb run`
imports when one is there: it connects to the runner's socket, passes its command line,
working directory, umask, environment and its stdin, stdout and stderr (SCM_RIGHTS), then
waits. The child is the command, with this process's descriptors, so output, a terminal
(`-it`) and exit codes are those of the direct path; signals sent to this process are
passed on to it, and its end comes back as an exit code or as the signal this process then
dies of. When this process dies, the runner kills the child (SIGKILL), as the direct path
dies with it.

Only root's `run` goes through a runner, and only root's runner serves it (the socket is
0600 in a 0700 directory, and the runner checks the peer's credentials). Anything else, or
no runner listening, takes the direct path (``dockweb.cli.main.entry``); a missing runner
is started in the background for the next command. ``DOCKWEB_RUNNER=0`` turns it off, and
``DOCKWEB_RUNNER_SOCKET`` names another socket (tests and benchmarks have their own).

Protocol, one connection per command: the request is a 4-byte big-endian length and
``encode_request``'s payload, sent with descriptors 0, 1 and 2. The runner answers one line:
``A`` (accepted: the command runs), ``S`` (stale: its modules changed on disk since it
imported them; it quits and the command runs directly) or ``R`` (refused: another user).
After ``A`` the client sends signal numbers, one byte each, and the runner answers
``E<code>`` (exited) or ``K<signal>`` (killed by a signal).
"""

from __future__ import annotations

import _signal
import _socket
import os
import sys

from dockweb.cli.signals import PROXIED

# Signals this client passes on to the runner's child: the same, but for SIGTSTP and
# SIGCONT (Ctrl-Z and `fg` suspend and resume this process, as job control expects).
FORWARDED = tuple(s for s in PROXIED if s not in (_signal.SIGTSTP, _signal.SIGCONT))
ACCEPTED, EXITED, KILLED, STALE, REFUSED = "A", "E", "K", "S", "R"
# How long the runner may take to take a command on; longer means it is stuck, and the
# command cannot run directly instead (the runner may still run it).
ANSWER_TIMEOUT = 30.0
PROTOCOL = "1"
OFF = ("0", "off", "no", "false")

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def entry() -> None:
    """The `dockweb` command (and ``python -m dockweb.cli``)."""
    args = sys.argv[1:]
    if (
        args[:1] == ["run"]
        and os.geteuid() == 0
        and os.environ.get("DOCKWEB_RUNNER", "").lower() not in OFF
    ):
        code = through_runner(args)
        if code is not None:
            os._exit(code)
    pull_args = (
        args[1:] if args[:1] == ["pull"] else args[2:] if args[:2] == ["image", "pull"] else None
    )
    if pull_args is not None:
        # through the running `dockweb system service` when it serves this store, else
        # without setting Django up when the settings allow it (dockweb/cli/fastpull.py)
        from dockweb.cli import thinpull

        code = thinpull.pull(pull_args, _PACKAGE_ROOT)
        if code is None:
            from dockweb.cli import fastpull

            code = fastpull.pull(pull_args, args)
        if code is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    from dockweb.cli.main import entry as direct

    direct()


def socket_path() -> str:
    """The runner's socket: ``DOCKWEB_RUNNER_SOCKET``, else one per interpreter and
    checkout under /run/dockweb, so that two installations never share a runner."""
    path = os.environ.get("DOCKWEB_RUNNER_SOCKET")
    if path:
        return os.path.abspath(path)
    import zlib

    key = zlib.crc32(f"{sys.executable}\0{_PACKAGE_ROOT}".encode())
    return f"/run/dockweb/runner-{key:08x}.sock"


def encode_request(cwd: str, umask: int, argv: list[str], environ) -> bytes:
    """The request's payload: NUL-separated protocol version, working directory, umask,
    argument count, arguments, then the environment as KEY=VALUE."""
    words = [PROTOCOL, cwd, str(umask), str(len(argv)), *argv]
    words += [f"{k}={v}" for k, v in environ.items()]
    return b"\0".join(os.fsencode(w) for w in words)


def decode_request(payload: bytes) -> tuple[str, int, list[str], dict[str, str]]:
    """(cwd, umask, argv, environment) of ``encode_request``'s payload; ValueError when it
    is not one."""
    words = [os.fsdecode(w) for w in payload.split(b"\0")]
    if len(words) < 4 or words[0] != PROTOCOL:
        raise ValueError("not a dockweb runner request")
    cwd, umask, argc = words[1], int(words[2]), int(words[3])
    argv, rest = words[4 : 4 + argc], words[4 + argc :]
    if len(argv) != argc or not os.path.isabs(cwd) or any("=" not in w for w in rest):
        raise ValueError("malformed dockweb runner request")
    return cwd, umask, argv, dict(w.split("=", 1) for w in rest)


def through_runner(args: list[str]) -> int | None:
    """The command's exit status, run by the runner; None when it must run directly
    (nothing was run then). Does not return when the command was killed by a signal."""
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)  # a closed descriptor cannot be passed: the direct path copes
        cwd = os.getcwd()
    except OSError:
        return None
    path = socket_path()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(path)
        except OSError:  # none listening (or a stale socket file): start one for next time
            start_runner(path)
            return None
        umask = os.umask(0o022)
        os.umask(umask)
        payload = encode_request(cwd, umask, [sys.argv[0], *args], os.environ)
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        try:
            sock.sendmsg(
                [len(payload).to_bytes(4, "big") + payload],
                [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)],
            )
            sock.settimeout(ANSWER_TIMEOUT)
            lines = _Lines(sock)
            answer = lines.next()
        except TimeoutError:
            print(
                f"dockweb: the runner at {path} did not answer in {ANSWER_TIMEOUT:.0f}s;"
                " DOCKWEB_RUNNER=0 runs without it",
                file=sys.stderr,
            )
            return 125
        except OSError:
            return None
        if answer == STALE:
            start_runner(path)  # the old one quits: a new one imports the new code
            return None
        if answer != ACCEPTED:  # refused, or gone before it took the command on
            return None
        sock.settimeout(None)
        return _follow(lines)
    finally:
        sock.close()


class _Lines:
    """The runner's answers, one line at a time."""

    def __init__(self, sock):
        self.sock = sock
        self.data = b""

    def next(self) -> str:
        """The next line, "" at the end of the connection."""
        while b"\n" not in self.data:
            chunk = self.sock.recv(64)
            if not chunk:
                return ""
            self.data += chunk
        line, self.data = self.data.split(b"\n", 1)
        return line.decode("ascii", "replace")


def _follow(lines: _Lines) -> int:
    """After ``A``: signals passed on until the runner says how the command ended."""

    def forward(signum, frame) -> None:
        try:
            lines.sock.send(bytes((signum,)))
        except OSError:
            pass

    for signum in FORWARDED:
        _signal.signal(signum, forward)
    try:
        answer = lines.next()
    except OSError:
        answer = ""
    for signum in FORWARDED:
        _signal.signal(signum, _signal.SIG_IGN)  # the end is known: nothing to pass on
    kind, number = answer[:1], answer[1:]
    if kind == EXITED and number.isdigit():
        return int(number)
    if kind == KILLED and number.isdigit():
        _die_of(int(number))
    print(
        "dockweb: the runner ended before the command did; its exit status is unknown",
        file=sys.stderr,
    )
    return 125


def _die_of(signum: int) -> None:
    """End as the command ended: killed by ``signum``, so that a shell sees 128+signum and
    a parent sees the signal. Returns only when the signal does not end a process."""
    try:
        _signal.signal(signum, _signal.SIG_DFL)
    except (OSError, ValueError):  # SIGKILL and SIGSTOP keep their default anyway
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)


def start_runner(path: str) -> None:
    """Start a runner on ``path`` in the background, in its own session, logging to
    ``path``.log; it leaves at once when another one holds the socket's lock."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        log = os.open(f"{path}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    try:
        # -P: the runner's imports come from the package root, never from this command's
        # working directory
        os.posix_spawn(
            sys.executable,
            [sys.executable, "-P", "-m", "dockweb.cli.runner", path],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log, 1),
                (os.POSIX_SPAWN_DUP2, log, 2),
            ],
            setsid=True,
        )
    except OSError:
        pass
    finally:
        os.close(log)
