"""The OCI runtime (crun, runc) as a process: which one this host runs, its errors in
Docker's words, the terminal it hands back on ``--console-socket``, and the environment of
our own helper processes (``python -m``)."""

from __future__ import annotations

import array
import contextlib
import json
import os
import re
import shutil
import socket

from dockweb.runtime.containers.state import read_text


def default_runtime() -> str:
    """crun, unless this host's cgroup layout makes it refuse (crun 1.8 will not run on a
    hybrid v1/v2 host whose unified hierarchy has controllers), then runc."""
    hybrid_controllers = ""
    with contextlib.suppress(OSError):
        with open("/sys/fs/cgroup/unified/cgroup.controllers") as f:
            hybrid_controllers = f.read().strip()
    if shutil.which("crun") and not hybrid_controllers:
        return "crun"
    if shutil.which("runc"):
        return "runc"
    return "crun"


def log_error(path: str) -> str:
    """The last error message of a runtime's JSON log (``--log-format json``)."""
    msg = ""
    for line in read_text(path).splitlines():
        with contextlib.suppress(ValueError):
            d = json.loads(line)
            if d.get("level") == "error":
                msg = d.get("msg", "")
    return msg


def recv_console_fd(sock: socket.socket) -> int | None:
    """Accept one connection on a ``--console-socket`` and return the terminal's master fd
    it carries (SCM_RIGHTS); None when the runtime sent none."""
    conn, _ = sock.accept()
    with conn:
        fds = array.array("i")
        _, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_LEN(fds.itemsize))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return fds[0] if fds else None


def with_pythonpath(environ) -> dict[str, str]:
    """``environ`` with this package importable (for ``python -m dockweb.runtime.*``)."""
    pkg_root = os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    )
    env = dict(environ)
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def rt_error(stderr: str) -> str:
    text = stderr.strip().splitlines()
    return text[-1] if text else "unknown error"


_CRUN_NOT_FOUND = re.compile(
    r"executable file `(?P<name>.*)` not found in \$PATH: No such file or directory"
)
_CRUN_NO_PERMISSION = "open executable: Permission denied"


def docker_words(error: str, exec_: bool = False) -> str:
    """The runtime's start error in runc's words, which Docker prints and scripts match
    (``docker run``'s 127 and 126 come from them): crun says the same things otherwise."""
    prefix = "exec failed: " if exec_ else ""
    if m := _CRUN_NOT_FOUND.search(error):
        return (
            f"{prefix}unable to start container process: "
            f'exec: "{m["name"]}": executable file not found in $PATH'
        )
    if _CRUN_NO_PERMISSION in error:
        return f"{prefix}unable to start container process: exec: permission denied"
    return error


def start_exit_code(message: str) -> int:
    """``docker run``'s exit code for a start error (docker/cli runStartContainerErr)."""
    if (
        "executable file not found" in message
        or "no such file or directory" in message
        or "system cannot find the file specified" in message
    ):
        return 127
    if "permission denied" in message:
        return 126
    return 125
