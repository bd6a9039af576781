"""Reading a process's state from /proc in tests, tolerant of the process ending mid-read."""

from __future__ import annotations


def proc_state(pid: int) -> str | None:
    """The state letter of ``pid`` (``R``, ``S``, ``Z``, ...), or None once it is gone.

    A process may exit between ``open`` and ``read`` of ``/proc/PID/stat``: the read then
    fails with ESRCH (ProcessLookupError), not ENOENT."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan may wait seconds for pid 1 to reap it)."""
    return proc_state(pid) not in (None, "Z")
