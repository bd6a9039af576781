"""Who runs a job: a worker process's identity, and whether that process still lives.

A claimed row records ``worker_identity()``; at the next worker start, a running row whose
worker is gone is failed (``dockweb.jobs.runner.fail_abandoned``).
"""

from __future__ import annotations

import os


def worker_identity() -> str:
    """``host:pid:start time`` of this process, to tell later whether it is still alive."""
    import socket  # lazily, like psutil: the CLI imports this package and starts fast

    import psutil

    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.2f}"


def worker_is_alive(identity: str) -> bool:
    """False when ``identity`` (from worker_identity) names a process of this host that is gone.

    Another host's worker is assumed alive: only that host can tell.
    """
    import socket

    import psutil

    try:
        host, pid, started = identity.rsplit(":", 2)
        pid_n, started_f = int(pid), float(started)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    try:
        return f"{psutil.Process(pid_n).create_time():.2f}" == f"{started_f:.2f}"
    except psutil.NoSuchProcess:
        return False
