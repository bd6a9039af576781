"""Creating a container (record, writable layer, volumes), and the verbs that change its
record: ``update`` and ``rename``. Names are reserved under the store's lock."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
from dataclasses import asdict

from dockweb.runtime import events, oci
from dockweb.runtime.containers.spec import NAME, ContainerSpec, check_host_config, random_name
from dockweb.runtime.containers.state import (
    Container,
    State,
    Status,
    now_rfc3339nano,
    write_json_atomic,
)
from dockweb.runtime.crashpoint import crashpoint
from dockweb.runtime.errors import ContainerConflict, InvalidContainerSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockweb.runtime.store import ImageRecord


class CreateMixin:
    """``ContainerManager``'s create, update and rename."""

    def create(self, spec: ContainerSpec) -> Container:
        """Create a container: record, writable layer, rootfs mount, volumes. Nothing runs.

        Raises ImageNotFound, InvalidContainerSpec (Docker's 400s) or ContainerConflict (the
        name is in use). On failure nothing is left behind.
        """
        # The image is resolved and the container recorded under one hold of the store's
        # metadata lock: image removal lists containers under that lock, so it either sees
        # this container or has removed the image before the lookup (ImageNotFound here).
        with self.store.locked():
            rec, argv, mounts = self._resolve(spec)
            c = self._record(spec, rec, argv, mounts)
        events.container(self.root, c, "create")
        return c

    def _resolve(self, spec: ContainerSpec) -> tuple[ImageRecord, list[str], list[dict]]:
        """The image, the command and the planned mounts of ``spec``, or Docker's 400s."""
        rec = self.store.lookup(spec.image)
        cfg = rec.config.get("config") or {}
        entrypoint = (cfg.get("Entrypoint") or []) if spec.entrypoint is None else spec.entrypoint
        if spec.cmd is not None:
            cmd = spec.cmd
        elif spec.entrypoint is not None:
            cmd = []  # --entrypoint clears the image's Cmd, as Docker does
        else:
            cmd = cfg.get("Cmd") or []
        argv = list(entrypoint) + list(cmd)
        if not argv:
            raise InvalidContainerSpec("No command specified")
        workdir = spec.workdir or cfg.get("WorkingDir") or ""
        if workdir and not workdir.startswith("/"):
            raise InvalidContainerSpec(
                f"the working directory '{workdir}' is invalid, it needs to be an absolute path"
            )
        self._check_network(spec)
        if spec.publish_all:
            self._publish_exposed(spec, cfg)
        if spec.name and not NAME.match(spec.name):
            raise InvalidContainerSpec(
                f"Invalid container name ({spec.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        check_host_config(spec)
        return rec, argv, self._plan_mounts(spec, cfg)

    def _record(
        self, spec: ContainerSpec, rec: ImageRecord, argv: list[str], mounts: list[dict]
    ) -> Container:
        """Write the container's record and layers. Called with the store's lock held."""
        cid = secrets.token_hex(32)
        hostname = spec.hostname or (socket.gethostname() if spec.network == "host" else cid[:12])
        with self.store.locked():
            name = self._reserve_name(spec.name.lstrip("/"), cid)
            cdir = self.cdir(cid)
            os.makedirs(cdir)
            try:
                anonymous = [v["name"] for v in mounts if v["type"] == "volume" and v["anonymous"]]
                if anonymous:  # for reconcile, should this create be cut short
                    with open(os.path.join(cdir, "create.json"), "w") as f:
                        json.dump({"anonymous_volumes": anonymous}, f)
                crashpoint("container.create.dir")
                for v in mounts:
                    if v["type"] == "volume":
                        self.volumes.create(v["name"], anonymous=v["anonymous"])
                        v["source"] = self.volumes.get(v["name"]).mountpoint
                crashpoint("container.create.volumes")
                container = Container(
                    id=cid,
                    name=name,
                    image=spec.image,
                    image_id=rec.id,
                    created=now_rfc3339nano(),
                    spec=spec,
                    path=argv[0],
                    args=argv[1:],
                    hostname=hostname,
                    mounts=mounts,
                    runtime=self.runtime,
                    networks=self._check_network(spec),
                    state=State(),
                )
                for d in ("upper", "work", "rootfs", "bundle", "init"):
                    os.makedirs(os.path.join(cdir, d))
                self._make_init_layer(os.path.join(cdir, "init"))
                crashpoint("container.create.layers")
                for empty in ("container.log", "shim.lock"):
                    with open(os.path.join(cdir, empty), "wb"):
                        pass
                crashpoint("container.create.state")
                # The container exists once its record is in place (``_ids``); no state.json
                # yet reads as created (``read_state``). An --rm container need not survive
                # a power cut (it would be removed as it ends): its record is not fsync'd.
                self._write_record(container, durable=not spec.auto_remove)
                if anonymous:
                    os.unlink(os.path.join(cdir, "create.json"))
            except BaseException:
                self._destroy(cid, mounts, volumes=True)
                raise
        crashpoint("container.create.recorded")
        return container

    def update(
        self,
        ref: str,
        *,
        memory: int | None = None,
        nano_cpus: int | None = None,
        pids_limit: int | None = None,
        restart: dict | None = None,
    ) -> Container:
        """``docker update``: new limits (applied at once to a running container through
        the runtime, kept for its next starts) and restart policy, with dockerd's checks."""
        with self.store.locked():
            c = self.get(ref)
            if restart is not None and restart.get("Name", "no") != "no" and c.spec.auto_remove:
                raise ContainerConflict(
                    "Restart policy cannot be updated because AutoRemove is enabled for the "
                    "container"
                )
            spec = ContainerSpec.from_dict(asdict(c.spec))
            if memory is not None:
                spec.memory = memory
            if nano_cpus is not None:
                spec.nano_cpus = nano_cpus
            if pids_limit is not None:
                spec.pids_limit = max(pids_limit, 0)
            if restart is not None:
                spec.restart = dict(restart)
            check_host_config(spec)
            if c.status.is_active and c.status is not Status.RESTARTING:
                # the limits as create sets them; -1 lifts one that is given as 0
                res = oci.resources(
                    memory=spec.memory, nano_cpus=spec.nano_cpus, pids_limit=spec.pids_limit
                )
                memory_limits = res.get("memory", {"swap": -1, "limit": -1})
                cpu = res.get("cpu", {"period": 100000, "quota": -1})
                args = []
                if memory is not None:  # swap first: it may not be below the memory
                    args += [
                        "--memory-swap",
                        str(memory_limits["swap"]),
                        "--memory",
                        str(memory_limits["limit"]),
                    ]
                if nano_cpus is not None:
                    args += ["--cpu-period", str(cpu["period"]), "--cpu-quota", str(cpu["quota"])]
                if pids_limit is not None:
                    args += ["--pids-limit", str(res.get("pids", {"limit": -1})["limit"])]
                if args:
                    proc = subprocess.run(
                        self._rt("update", *args, c.id), capture_output=True, text=True
                    )
                    if proc.returncode != 0:
                        raise ContainerConflict(
                            f"Cannot update container {c.id}: "
                            f"{proc.stderr.strip() or 'the runtime refused'}"
                        )
            c.spec = spec
            self._write_record(c)
        events.container(self.root, c, "update")
        return c

    def rename(self, ref: str, new_name: str) -> Container:
        """``docker rename``: a new name, with dockerd's checks and words. The hostname stays."""
        if not ref or not new_name:
            raise InvalidContainerSpec("Neither old nor new names may be empty")
        new_name = new_name.lstrip("/")
        with self.store.locked():
            c = self.get(ref)
            if c.name == new_name:
                raise InvalidContainerSpec(
                    "Renaming a container with the same name as its current name"
                )
            if not NAME.match(new_name):
                raise InvalidContainerSpec(
                    f"Error when allocating new name: Invalid container name (/{new_name}), "
                    "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )
            try:
                self._reserve_name(new_name, c.id)
            except ContainerConflict as e:
                raise ContainerConflict(f"Error when allocating new name: {e}") from None
            old_name = c.name
            c.name = new_name
            self._write_record(c)
            self._rename_endpoints(c.id, new_name)  # what its embedded DNS answers
        events.container(self.root, c, "rename", oldName="/" + old_name)
        return c

    def _write_record(self, c: Container, *, durable: bool = True) -> None:
        """container.json: what the container is (its state is apart, in state.json)."""
        write_json_atomic(
            os.path.join(self.cdir(c.id), "container.json"), c.record(), durable=durable
        )

    def _reserve_name(self, name: str, cid: str) -> str:
        taken = {}
        for other in self._ids():
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                with open(os.path.join(self.cdir(other), "container.json")) as f:
                    taken[json.load(f)["name"]] = other
        if name:
            if name in taken:
                raise ContainerConflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{taken[name]}". You have to remove (or rename) that container to be able '
                    "to reuse that name."
                )
            return name
        for i in range(6):
            candidate = random_name(i)
            if candidate not in taken:
                return candidate
        return cid[:12]
