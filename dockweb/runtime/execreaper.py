"""Parent of a detached exec: ``python -m dockweb.runtime.execreaper --pid-file PATH
[--stdout-fd N] -- <runtime> exec --detach ...``.

``<runtime> exec --detach`` (``--tty --console-socket`` or not) starts the command and
exits; the command is then re-parented to the nearest child subreaper. This helper is that
subreaper, so that whoever started the exec (the CLI, a Celery worker, the Engine API
service: none should become a subreaper for everything they spawn) still learns the exit
code, as ``docker exec`` reports it. It writes JSON lines to stdout:

- ``{"pid": N}`` once the runtime started the command (its host pid, from ``--pid-file``),
  or ``{"error": "runtime exited with status N"}`` (the runtime's log has the message);
- ``{"exit_code": N}`` when the command ends (128 + signal when killed),

then exits. Orphans of the command met on the way are reaped too.

Without a tty the runtime hands its own stdio to the command. With ``--stdout-fd N`` it
gets this helper's stdin, fd N as stdout and this helper's stderr (the caller's pipes),
which the helper lets go of once the runtime has exited, so that they end when the
command's do; without it, /dev/null and this helper's stderr.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def _say(value: dict) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    stdout_fd = None
    if len(argv) >= 3 and argv[2] == "--stdout-fd":
        stdout_fd = int(argv[3])
        argv = argv[:2] + argv[4:]
    if len(argv) < 4 or argv[0] != "--pid-file" or argv[2] != "--":
        sys.stderr.write("usage: execreaper --pid-file PATH [--stdout-fd N] -- RUNTIME exec ...\n")
        return 2
    pid_file, cmd = argv[1], argv[3:]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if stdout_fd is None:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    else:
        proc = subprocess.run(cmd, stdout=stdout_fd, pass_fds=())
        _let_go_of_stdio(stdout_fd)
    if proc.returncode != 0:
        _say({"error": f"runtime exited with status {proc.returncode}"})
        return 1
    with open(pid_file) as f:
        pid = int(f.read().strip())
    _say({"pid": pid})
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:  # already reaped by someone else: nothing to report
            _say({"exit_code": 255})
            return 0
        except InterruptedError:
            continue
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            _say({"exit_code": 128 - code if code < 0 else code})
            return 0


def _let_go_of_stdio(stdout_fd: int) -> None:
    """Point stdin, stderr and ``stdout_fd`` at /dev/null: the command holds the pipes now."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 2):
        os.dup2(null, fd)
    os.close(null)
    os.close(stdout_fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
