"""``ContainerManager``: the public façade over a store's containers. Its verbs live by
concern in the mixins it is made of (``create``, ``lifecycle``, ``rootfs``, ``reconcile``,
``observe``, ``exec``); here are its paths, state files, lookup and listing."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable

from dockweb.runtime.containers.create import CreateMixin
from dockweb.runtime.containers.exec import ExecMixin
from dockweb.runtime.containers.lifecycle import LifecycleMixin
from dockweb.runtime.containers.netattach import NetAttachMixin
from dockweb.runtime.containers.observe import ObserveMixin
from dockweb.runtime.containers.ocirt import default_runtime
from dockweb.runtime.containers.reconcile import ReconcileMixin
from dockweb.runtime.containers.rootfs import RootfsMixin
from dockweb.runtime.containers.state import (
    CONTAINER_ID,
    Container,
    State,
    Status,
    boot_id,
    now_rfc3339nano,
    read_state,
    state_lock,
    write_state,
)
from dockweb.runtime.errors import ContainerNotFound
from dockweb.runtime.networks import NetworkManager
from dockweb.runtime.store import Store
from dockweb.runtime.volumes import VolumeManager


class ContainerManager(
    CreateMixin,
    LifecycleMixin,
    RootfsMixin,
    ReconcileMixin,
    ObserveMixin,
    ExecMixin,
    NetAttachMixin,
):
    """Create and run containers over a Store. Safe to use from several processes at once."""

    def __init__(
        self,
        store: Store,
        *,
        runtime: str | None = None,
        exit_command: list[str] | None = None,
        fork_supervisor: bool = False,
        on_exit: Callable[[str], None] | None = None,
        spawner=None,
    ):
        self.store = store
        # A multi-threaded caller's way to fork supervisors (a dockweb.runtime.spawner
        # Spawner): preferred to a new interpreter when set.
        self.spawner = spawner
        # Fork the supervisor from this process rather than start a new interpreter (about
        # 0.1 s less per start); honoured only while this process has a single thread.
        self.fork_supervisor = fork_supervisor
        # What a forked supervisor calls with the container's ID in place of running
        # exit_command (same work, no new interpreter); exit_command if it raises, and
        # always for a supervisor that was not forked.
        self.on_exit = on_exit
        self.root = store.root
        self.dir = os.path.join(self.root, "containers")
        os.makedirs(self.dir, exist_ok=True)
        self.runtime = runtime or default_runtime()
        self.exit_command = list(exit_command or [])
        # The runtime's state lives on tmpfs: a reboot clears it as it clears the processes.
        key = hashlib.sha256(self.root.encode()).hexdigest()[:12]
        self.runtime_root = os.path.join("/run/dockweb", key, self.runtime)
        self.volumes = VolumeManager(self.root, users=self._volume_users)
        self.networks = NetworkManager(self.root)
        self.netns = self.networks.netns

    # -- paths and records ----------------------------------------------------------------

    def cdir(self, cid: str) -> str:
        return os.path.join(self.dir, cid)

    def attach_path(self, cid: str) -> str:
        """The supervisor's attach socket of a ``-i``/``-t`` container. Beside the runtime's
        state rather than in the container's directory: a unix socket's path is limited to
        107 bytes, and the store's root may be long."""
        return os.path.join(os.path.dirname(self.runtime_root), "attach", cid)

    def _rt(self, *args: str) -> list[str]:
        return [self.runtime, "--root", self.runtime_root, *args]

    def _state_lock(self, cid: str) -> contextlib.AbstractContextManager[None]:
        return state_lock(self.cdir(cid))

    def read_state(self, cid: str) -> State:
        """``state.read_state`` of the container's directory."""
        return read_state(self.cdir(cid))

    def write_state(self, cid: str, state: State, *, durable: bool = True) -> None:
        write_state(self.cdir(cid), state, durable=durable)

    def update_state(self, cid: str, *, durable: bool = True, **changes) -> State:
        """Read-modify-write of state.json under the state lock. Returns the new state.
        ``durable=False`` for a state that a crash makes moot (running: the processes die
        with the machine and reconciliation says exited; removing: the directory goes)."""
        with self._state_lock(cid):
            st = self.read_state(cid)
            for k, v in changes.items():
                setattr(st, k, v)
            self.write_state(cid, st, durable=durable)
            return st

    def _load(self, cid: str) -> Container:
        try:
            with open(os.path.join(self.cdir(cid), "container.json")) as f:
                rec = json.load(f)
        except FileNotFoundError:
            raise ContainerNotFound(f"No such container: {cid}") from None
        return Container.from_record(rec, self._reconciled_state(cid))

    def _ids(self) -> list[str]:
        """The containers: directories whose record is in place. An empty record is a
        creation cut short by a power cut (an ``--rm`` container's is written without
        fsync), as a missing one is."""
        return [
            n
            for n in os.listdir(self.dir)
            if CONTAINER_ID.match(n) and _file_size(os.path.join(self.dir, n, "container.json")) > 0
        ]

    def shim_alive(self, cid: str) -> bool:
        """True while a supervisor holds the container's ``shim.lock``."""
        try:
            fd = os.open(os.path.join(self.cdir(cid), "shim.lock"), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def await_supervisor_gone(self, cid: str, timeout: float = 10.0) -> bool:
        """Wait until no supervisor holds the container's ``shim.lock`` (at most
        ``timeout`` seconds); True when none does. A supervisor that reported a failed start
        still cleans up before it leaves: a start right after must not find it there."""
        deadline = time.monotonic() + timeout
        while self.shim_alive(cid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _reconciled_state(self, cid: str) -> State:
        """The state, repaired if it claims processes that no supervisor watches any more."""
        st = self.read_state(cid)
        if not st.status.is_active or self.shim_alive(cid):
            return st
        with self._state_lock(cid):
            st = self.read_state(cid)
            if not st.status.is_active or self.shim_alive(cid):
                return st
            # The supervisor is gone: nobody collects this container's output or exit code,
            # so whatever still runs of it is killed, as Docker does without live-restore.
            subprocess.run(self._rt("kill", cid, "KILL"), capture_output=True)
            subprocess.run(self._rt("delete", "--force", cid), capture_output=True)
            with contextlib.suppress(Exception):  # its addresses and namespace: free again
                self.detach_networks(cid)
            st.status = Status.EXITED
            st.exit_code = 255 if st.exit_code == 0 else st.exit_code
            st.pid = 0
            st.ports = []  # its listeners went with it
            st.finished_at = now_rfc3339nano()
            st.error = "supervisor exited unexpectedly" if st.boot_id == boot_id() else ""
            self.write_state(cid, st)
            return st

    # -- lookup ---------------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """By full ID, name (with or without "/"), or unique ID prefix, as Docker's
        GetContainer. Raises ContainerNotFound ("No such container: x")."""
        if not ref:
            raise ContainerNotFound("No such container: ")
        ids = self._ids()
        if ref in ids:
            return self._load(ref)
        name = ref.lstrip("/")
        for cid in ids:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                with open(os.path.join(self.cdir(cid), "container.json")) as f:
                    if json.load(f)["name"] == name:
                        return self._load(cid)
        if re.fullmatch(r"[a-f0-9]+", ref):
            found = [c for c in ids if c.startswith(ref)]
            if len(found) > 1:
                raise ContainerNotFound(f"Multiple IDs found with provided prefix: {ref}")
            if found:
                return self._load(found[0])
        raise ContainerNotFound(f"No such container: {ref}")

    def list(self, *, all: bool = False) -> list[Container]:
        """Containers, newest first; without ``all`` only those with processes."""
        out = []
        for cid in self._ids():
            with contextlib.suppress(ContainerNotFound):
                c = self._load(cid)
                if all or c.status.is_active:
                    out.append(c)
        out.sort(key=lambda c: c.created, reverse=True)
        return out

    def used_images(self) -> list[tuple[str, str, bool]]:
        """(container ID, image ID, running) for ``Store.remove``'s conflicts."""
        return [(c.id, c.image_id, c.status.is_active) for c in self.list(all=True)]

    def _volume_users(self, name: str) -> list[str]:
        users = []
        for cid in self._ids():
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                with open(os.path.join(self.cdir(cid), "container.json")) as f:
                    mounts = json.load(f)["mounts"]
                if any(m["type"] == "volume" and m["name"] == name for m in mounts):
                    users.append(cid)
        return users


def _file_size(path: str) -> int:
    """-1 when there is no such file."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return -1
