"""Containers: an image's layers plus a writable layer, run by an OCI runtime under a
supervisor (``dockweb.runtime.shim``) that outlives whoever started it.

See docs/containers.md for the contract. Guarantees:
- ``state.json`` is written atomically under the container's ``state.lock`` (flock), by the
  manager and by the supervisor; readers see a whole state.
- The supervisor holds an exclusive flock on ``shim.lock`` while it lives; a container whose
  state says running or paused while nobody holds that lock has lost its supervisor (crash,
  reboot) and is reconciled to ``exited`` (255) the next time anyone looks at it.
- Names are unique: they are checked and the record written under the store's lock.

One module per concern: ``state`` (status, state files), ``spec`` (what is asked),
``rootfs`` (mounts), ``create``, ``lifecycle`` (start to remove), ``reconcile``,
``observe`` (logs, diff, stats, top), ``exec``; ``manager`` puts them together as
``ContainerManager``. The names callers use are importable from here.
"""

from __future__ import annotations

from dockweb.runtime.containers.exec import ExecProcess
from dockweb.runtime.containers.manager import ContainerManager
from dockweb.runtime.containers.observe import parse_ps
from dockweb.runtime.containers.ocirt import default_runtime
from dockweb.runtime.containers.spec import (
    ContainerSpec,
    MountSpec,
    check_host_config,
    parse_signal,
    random_name,
)
from dockweb.runtime.containers.state import ZERO_TIME, Container, State, Status, now_rfc3339nano

__all__ = [
    "ZERO_TIME",
    "Container",
    "ContainerManager",
    "ContainerSpec",
    "ExecProcess",
    "MountSpec",
    "State",
    "Status",
    "check_host_config",
    "default_runtime",
    "now_rfc3339nano",
    "parse_ps",
    "parse_signal",
    "random_name",
]
