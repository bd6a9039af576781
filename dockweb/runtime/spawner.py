"""Supervisors forked for a long-lived, multi-threaded caller (the Engine API service).

``ContainerManager.start`` makes a container's supervisor either as a new interpreter
(``python -m dockweb.runtime.containers``: 0.2 to 0.3 s of imports before the container
runs) or, from a single-threaded process that has those modules loaded already, as a fork
of itself (``fork_supervisor``: what the CLI's fast ``run`` path does). A threaded server
cannot fork safely, so it keeps this helper instead:

    python -m dockweb.runtime.spawner --fd N [--exit-hook MODULE ARG...]

a single-threaded process that imports the supervisor's modules once, then forks one
supervisor per request it receives on its socket (descriptor ``N``, inherited): the
supervisor's arguments and the descriptors it is to get (SCM_RIGHTS), as
``lifecycle._fork_shim`` gives them. With ``--exit-hook`` the supervisor mirrors the
container's exit in-process, calling ``MODULE.main([*ARGS, container_id])`` (the caller's
``containers.exit_hook`` with a SQLite database), instead of running the exit command (a new
interpreter that sets Django up: 0.5 s of CPU after each exit).
It answers each request with the supervisor's pid, reaps the supervisors as they end (they
are its children; they outlive it) and leaves when its caller closes the socket.

``Spawner`` is the caller's side: started on first use, restarted if it died.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import signal
import socket
import subprocess
import sys
import threading

_MAX_FDS = 8


class Spawner:
    """The caller's end: ``spawn(shim_args, pass_fds, log_fd)`` forks a supervisor, as
    ``lifecycle._fork_shim`` would in the caller; safe from any thread."""

    def __init__(self, exit_hook: list[str] | None = None):
        # [MODULE, *ARGS]: what the supervisors call after an exit, in-process (see above)
        self.exit_hook = list(exit_hook or [])
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen | None = None

    def _ensure(self) -> socket.socket:
        if self.sock is not None and self.proc is not None and self.proc.poll() is None:
            return self.sock
        self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        from dockweb.runtime.containers.ocirt import with_pythonpath

        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dockweb.runtime.spawner", "--fd", str(theirs.fileno()),
                 *(["--exit-hook", *self.exit_hook] if self.exit_hook else [])],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=with_pythonpath(os.environ),
                cwd="/",
            )
        finally:
            theirs.close()
        self.sock = ours
        return ours

    def start(self) -> None:
        """Start the helper now (it imports its modules while the caller goes on)."""
        with self.lock:
            self._ensure()

    def spawn(self, shim_args: list[str], pass_fds: list[int], log_fd: int) -> int:
        """The supervisor's pid, once forked. Raises OSError if the helper is gone."""
        request = json.dumps({"args": shim_args, "fds": pass_fds}).encode()
        fds = array.array("i", [log_fd, *pass_fds])
        with self.lock:
            for attempt in (1, 2):
                sock = self._ensure()
                try:
                    sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                    answer = sock.recv(64)
                except OSError:
                    answer = b""
                if answer:
                    return int(answer)
                self.close()  # died: a new one for the second attempt
                if attempt == 2:
                    raise OSError("the supervisor spawner is gone")
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.wait()  # it leaves once its socket is closed
            self.proc = None


# -- the helper ------------------------------------------------------------------------------


def _on_exit(hook: list[str]):
    """``MODULE.main([*ARGS, cid])`` for ``hook`` = [MODULE, *ARGS] (imported now, once)."""
    if not hook:
        return None
    import importlib

    module = importlib.import_module(hook[0])

    def on_exit(cid: str) -> None:
        module.main([*hook[1:], cid])

    return on_exit


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(sock: socket.socket, hook: list[str]) -> None:
    import dockweb.runtime.shim  # noqa: F401 - loaded once, for every supervisor
    from dockweb.runtime.containers import ContainerManager
    from dockweb.runtime.containers.lifecycle import _fork_shim
    from dockweb.runtime.containers.ocirt import with_pythonpath

    pythonpath = with_pythonpath(os.environ)["PYTHONPATH"]
    on_exit = _on_exit(hook)
    import gc

    gc.collect()
    gc.freeze()  # the supervisors' collections leave the pages shared
    while True:
        try:
            data, ancillary, _flags, _ = sock.recvmsg(
                1 << 20, socket.CMSG_SPACE(_MAX_FDS * 4)
            )
        except InterruptedError:
            continue
        _reap()
        if not data:
            return
        fds: list[int] = []
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                arr = array.array("i")
                arr.frombytes(raw[: len(raw) - len(raw) % arr.itemsize])
                fds += list(arr)
        try:
            request = json.loads(data)
            log_fd, got = fds[0], fds[1:]
            mapping = {str(a): str(b) for a, b in zip(request["fds"], got, strict=True)}
            args = list(request["args"])
            for i, arg in enumerate(args[:-1]):
                if arg in ("--sync-fd", "--attach-fd"):
                    args[i + 1] = mapping[args[i + 1]]
            pid = _fork_shim(args, got, log_fd, pythonpath, ContainerManager, on_exit)
            answer = str(pid).encode()
        except Exception as e:  # noqa: BLE001 - answered, the helper carries on
            print(f"spawner: {e}", file=sys.stderr, flush=True)
            answer = b"0"
        finally:
            for fd in fds:
                os.close(fd)
        try:
            sock.send(answer)
        except OSError:
            return


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dockweb.runtime.spawner")
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--exit-hook", nargs=argparse.REMAINDER, default=[])
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller's ^C is not ours
    serve(socket.socket(fileno=args.fd), args.exit_hook)
    return 0


if __name__ == "__main__":
    sys.exit(main())
