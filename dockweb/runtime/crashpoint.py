"""Deterministic crash injection for the crash-safety tests.

``crashpoint(label)`` does nothing unless ``DOCKWEB_CRASH_AT`` names ``label``; then it
kills this process with SIGKILL on the spot, as a power cut or the OOM killer would, so a
test can stop an operation at a chosen step and check what the store looks like after.
``DOCKWEB_CRASH_AT=label#N`` kills on the Nth time ``label`` is reached in this process
(1 by default). The environment is read on every call: the check costs one dict lookup.

``also`` names another process killed first: a container's supervisor passes its starter
(the worker or the CLI, blocked waiting for its answer), so that the whole start dies at
that point, as when the worker's cgroup is killed; the container's own processes survive.
"""

from __future__ import annotations

import os
import signal
import threading

_hits: dict[str, int] = {}
_lock = threading.Lock()


def crashpoint(label: str, *, also: int = 0) -> None:
    wanted = os.environ.get("DOCKWEB_CRASH_AT")
    if not wanted:
        return
    name, _, nth = wanted.partition("#")
    if name != label:
        return
    with _lock:
        _hits[label] = _hits.get(label, 0) + 1
        if _hits[label] == int(nth or 1):
            if also > 0:
                try:
                    os.kill(also, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            os.kill(os.getpid(), signal.SIGKILL)
