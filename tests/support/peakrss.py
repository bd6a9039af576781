"""Run a command and report its peak RSS as the kernel counts it (``ru_maxrss`` from
wait4), without the memory of whoever started it.

On Linux a process started by a large one inherits that one's high-water mark: exec keeps
the maximum RSS of the memory it replaces (a child of a 300 MB pytest reports 300 MB). So
the command is started by this small script, run as its own interpreter, which waits for it
and writes its peak RSS in bytes to a file. What it reports is at most the launcher's own
few megabytes too high, never too low.

    python tests/support/peakrss.py OUT_FILE COMMAND [ARG...]   # exits with COMMAND's code

``run(command, **popen_kw)`` does that from Python: ``(exit code, peak RSS in bytes)``.
Nothing here imports pytest or dockweb (benchmarks use it too).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def run(command: list[str], **popen_kw) -> tuple[int, int]:
    """Run ``command`` (keywords go to subprocess.Popen: cwd, env, stdout, stderr,
    timeout) and return its exit code and peak RSS in bytes."""
    timeout = popen_kw.pop("timeout", None)
    with tempfile.NamedTemporaryFile("r", suffix=".peakrss") as out:
        proc = subprocess.Popen([sys.executable, __file__, out.name, *command], **popen_kw)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        text = out.read().strip()
    if not text:
        raise RuntimeError(f"peakrss: no measure for {command!r} (exit {code})")
    return code, int(text)


def main(argv: list[str]) -> int:
    out, command = argv[1], argv[2:]
    proc = subprocess.Popen(command)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as f:
        f.write(str(usage.ru_maxrss * 1024))
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
