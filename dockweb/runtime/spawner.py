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
``lifecycle._fork_shim`` gives them. It forks the exec helper the same way
(``dockweb.runtime.execreaper``, for ``ContainerManager.exec_start``: a new interpreter
would cost 60 ms of each ``docker exec``), with the stdio and pipes it is to get.
With ``--exit-hook`` the supervisor mirrors the container's exit in-process, calling
``MODULE.main([*ARGS, container_id])`` (the caller's ``containers.exit_hook`` with a SQLite
database), instead of running the exit command (a new interpreter that sets Django up: 0.5 s
of CPU after each exit).
It answers each request with the forked process's pid, reaps the supervisors as they end (they
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
        return self._request({"args": shim_args, "fds": pass_fds}, [log_fd, *pass_fds])

    def spawn_exec(self, helper_args: list[str], stdio: list[int], pass_fds: list[int]) -> int:
        """``python -m dockweb.runtime.execreaper *helper_args`` as a fork of the helper:
        ``stdio`` its stdin, stdout and stderr, ``pass_fds`` the other descriptors it gets
        (an fd argument such as ``--stdout-fd`` names one of them, as in the caller). Its
        pid (a child of the helper's, not the caller's: the caller learns its end from its
        stdout). Raises OSError if it could not be forked."""
        pid = self._request({"exec": helper_args, "fds": pass_fds}, [*stdio, *pass_fds])
        if pid <= 0:
            raise OSError("the spawner could not fork the exec helper")
        return pid

    def _request(self, request: dict, send_fds: list[int]) -> int:
        """Send one request with its descriptors (SCM_RIGHTS); the pid it is answered with."""
        data = json.dumps(request).encode()
        fds = array.array("i", send_fds)
        with self.lock:
            for attempt in (1, 2):
                sock = self._ensure()
                try:
                    sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
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


def _fork_exec(args: list[str], stdio: list[int], pass_fds: list[int]) -> int:
    """``python -m dockweb.runtime.execreaper *args`` as a fork of this process, with
    ``stdio`` as its stdin, stdout and stderr and no other descriptor than ``pass_fds``;
    its pid (reaped by ``_reap``)."""
    from dockweb.runtime import execreaper
    from dockweb.runtime.containers.lifecycle import child_stdio, fork_child

    def reap() -> int:
        child_stdio(*stdio, pass_fds)
        # what a new interpreter would have (the runtime it starts gets SIGINT's default)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return execreaper.main(args)

    return fork_child(reap)


def serve(sock: socket.socket, hook: list[str]) -> None:
    import dockweb.runtime.execreaper  # noqa: F401 - loaded once, for every exec
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
            exec_args = request.get("exec")
            head = 3 if exec_args is not None else 1  # stdio, or the supervisor's log
            given, got = fds[:head], fds[head:]
            mapping = {str(a): str(b) for a, b in zip(request["fds"], got, strict=True)}
            args = list(request["args"] if exec_args is None else exec_args)
            # the options before a "--" (after it: the exec's runtime and command, as given)
            ours = args.index("--") if "--" in args else len(args)
            for i, arg in enumerate(args[: ours - 1]):
                if arg in ("--sync-fd", "--attach-fd", "--stdout-fd"):
                    args[i + 1] = mapping[args[i + 1]]
            if exec_args is not None:
                pid = _fork_exec(args, given, got)
            else:
                pid = _fork_shim(args, got, given[0], pythonpath, ContainerManager, on_exit)
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
