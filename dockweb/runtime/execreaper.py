"""Parent of a detached exec: ``python -m dockweb.runtime.execreaper -- <runtime> exec -d ...``.

``<runtime> exec --detach --tty --console-socket`` starts the command and exits; the
command is then re-parented to the nearest child subreaper. This helper is that subreaper,
so that whoever started the exec (the CLI, a Celery worker: neither should become a
subreaper for everything they spawn) still learns the exit code, as ``docker exec`` reports
it. It writes JSON lines to stdout:

- ``{"pid": N}`` once the runtime started the command (its host pid, from ``--pid-file``),
  or ``{"error": "runtime exited with status N"}`` (the runtime's log has the message);
- ``{"exit_code": N}`` when the command ends (128 + signal when killed),

then exits. Orphans of the command met on the way are reaped too.
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
    if len(argv) < 4 or argv[0] != "--pid-file" or argv[2] != "--":
        sys.stderr.write("usage: execreaper --pid-file PATH -- RUNTIME exec ...\n")
        return 2
    pid_file, cmd = argv[1], argv[3:]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
