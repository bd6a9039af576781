"""Repairing what crashes left: creations and removals cut short, containers whose
supervisor is gone, temporary files, stray mounts."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess

from dockweb.runtime import syscalls
from dockweb.runtime.containers.state import CONTAINER_ID, TEMP_JSON, State, Status
from dockweb.runtime.errors import ContainerNotFound


class ReconcileMixin:
    """``ContainerManager``'s reconcile."""

    def reconcile(self) -> dict[str, list[str]]:
        """Repair what a crash of a creation, start or removal left (the worker, the CLI or a
        supervisor killed). Idempotent. Safe while other processes use the containers: it
        holds the store's lock (containers are created and removed under it), and a
        container's ``shim.lock`` while it clears that container's runtime state.

        - A creation cut short (a directory without ``container.json``) is undone: runtime
          state, mounts, directory, short link and the anonymous volumes it made. A removal
          cut short (``.removing-<id>``, or a record whose state says removing) is finished.
        - A container no supervisor watches keeps no runtime state: whatever runs of it is
          killed (nobody would collect its output or exit code), its attach socket goes, and
          a state of running or paused becomes exited (255). Created and exited stay so.
        - Temporary files of interrupted writes go, and mounts under ``containers/`` that
          belong to no container are detached.
        - Volumes: ``VolumeManager.reconcile`` (a half-seeded volume is emptied, to be
          seeded again on next use).

        - Networks: an endpoint or a network namespace of a container that no supervisor
          watches (or that is gone) is released and removed; dockweb's own namespace and
          its forwarder go when nothing is attached, and come back for one that runs.

        Returns what it changed: container IDs ``removed`` and ``stopped`` (runtime state or
        processes cleared, state repaired), volume names ``emptied``, temporary ``files``,
        container IDs whose ``networks`` leftovers were cleared.
        """
        report: dict[str, list[str]] = {"removed": [], "stopped": [], "emptied": [], "files": []}
        with self.store.locked():
            complete = set(self._ids())
            prefix = self.dir + os.sep
            for target in sorted(_mounts_under(prefix), reverse=True):
                if target[len(prefix) :].split(os.sep)[0] not in complete:
                    with contextlib.suppress(OSError):
                        syscalls.unmount(target)
            for entry in os.listdir(self.dir):
                if entry.startswith(".removing-"):
                    cid = entry[len(".removing-") :]
                    self._destroy(cid, [], volumes=False)
                    shutil.rmtree(os.path.join(self.dir, entry), ignore_errors=True)
                    report["removed"].append(cid)
                elif CONTAINER_ID.match(entry) and entry not in complete:
                    try:
                        with open(os.path.join(self.cdir(entry), "create.json")) as f:
                            names = json.load(f)["anonymous_volumes"]
                    except (OSError, ValueError, KeyError):
                        names = []  # cut short before it made any volume
                    made = [{"type": "volume", "name": n, "anonymous": True} for n in names]
                    self._destroy(entry, made, volumes=True)
                    report["removed"].append(entry)
            for cid in sorted(complete):
                report["files"] += self._remove_temp_files(cid)
                try:
                    st = self.read_state(cid)
                except ContainerNotFound:
                    continue
                if st.status is Status.REMOVING:  # as dockerd at start-up: finish it
                    self._destroy(cid, self._load(cid).mounts, volumes=False)
                    report["removed"].append(cid)
                elif self._clear_unsupervised(cid, st):
                    report["stopped"].append(cid)
            with contextlib.suppress(FileNotFoundError):
                for cid in os.listdir(self.runtime_root):
                    if CONTAINER_ID.match(cid) and cid not in complete:
                        subprocess.run(self._rt("delete", "--force", cid), capture_output=True)
                        report["removed"].append(cid)
            report["emptied"] = self.volumes.reconcile()
            report["networks"] = self._reconcile_networks()
        report["removed"] = sorted(set(report["removed"]))
        return report

    def _reconcile_networks(self) -> list[str]:
        """Endpoints and namespaces of containers not running under a supervisor. Called
        with the store's lock held (no create or remove meanwhile)."""
        cleared = []
        with self.networks.locked():
            owners = {ep.container_id for _, ep in self.networks.all_endpoints()}
            with contextlib.suppress(FileNotFoundError):
                owners |= {n for n in os.listdir(self.netns.dir) if CONTAINER_ID.match(n)}
            for cid in sorted(owners):
                if not self.shim_alive(cid):
                    self._release_all(cid)
                    cleared.append(cid)
                    continue
                # running: an endpoint on a network its record does not name is a connect
                # or a disconnect cut short
                try:
                    recorded = set(self._load(cid).networks)
                except ContainerNotFound:
                    recorded = set()
                for net, ep in self.networks.container_endpoints(cid):
                    if net.name not in recorded:
                        self.netns.unplug(ep)
                        self.networks.release(net, cid)
                        cleared.append(cid)
            attached = self.networks.all_endpoints()
            if not attached and (os.path.exists(self.netns.infra) or self.netns.infra_up()):
                self.netns.teardown_infra()
            elif attached and not self.netns.infra_up():
                # the forwarder died (the bridges and veths stay with the namespace): again
                self.netns.ensure_infra(self.networks.get("bridge").gateway)
        return cleared

    def _remove_temp_files(self, cid: str) -> list[str]:
        """``<name>.json.<pid>.<hex>`` left by a writer that died before its rename, and the
        creation's ``create.json`` left after the record was written."""
        removed = []
        cdir = self.cdir(cid)
        for d in (cdir, os.path.join(cdir, "bundle")):
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(d):
                    m = TEMP_JSON.match(name)
                    if (m and not syscalls.pid_alive(int(m.group(1)))) or (
                        d == cdir and name == "create.json"
                    ):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(d, name))
                        removed.append(os.path.join(d, name))
        return removed

    def _clear_unsupervised(self, cid: str, st: State) -> bool:
        """Clear the runtime state, processes and attach socket of a container that no
        supervisor holds, and repair a state that claims processes. True when it changed
        something. The ``shim.lock`` is held meanwhile: a supervisor starting now waits."""
        changed = False
        try:
            fd = os.open(os.path.join(self.cdir(cid), "shim.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # supervised
            if os.path.exists(os.path.join(self.runtime_root, cid)):
                subprocess.run(self._rt("delete", "--force", cid), capture_output=True)
                changed = True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.attach_path(cid))
                changed = True
        finally:
            os.close(fd)
        if st.status.is_active:
            with contextlib.suppress(ContainerNotFound):
                self._reconciled_state(cid)  # running or paused: exited (255)
                changed = not self.read_state(cid).status.is_active
        return changed


def _mounts_under(prefix: str) -> list[str]:
    try:
        with open("/proc/self/mountinfo") as f:
            targets = [line.split()[4] for line in f]
    except OSError:
        return []
    return [t for t in targets if t.startswith(prefix)]
