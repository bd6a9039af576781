"""Container and volume operations shared by the `dockweb` CLI, the Celery worker and the pages.

Verbs (``create_container``, ``start_container`` …) call the runtime's ContainerManager or
VolumeManager on the store configured in settings (``DOCKWEB_ROOT``), then mirror the
result into the database (``sync_containers``), so pages show the truth without touching the
runtime. ``inspect_container`` turns a runtime container into docker's ContainerJSON shape;
the CLI, the mirror and the pages all read that one shape.

Pages never call these verbs directly: they queue a ``ContainerOperation`` that the worker
(root) runs through ``run_operation``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction

from containers.models import Container, ContainerOperation, Volume
from dockweb import jobs, live
from dockweb.docker.containers import (  # noqa: F401 - part of this module's interface
    container_json,
    inspect_volume,
)
from dockweb.docker.containers import row_fields as _row_fields
from dockweb.docker.filters import InvalidFilter, match_labels, regex_match
from dockweb.docker.run_options import (  # noqa: F401 - part of this module's interface
    InvalidOption,
    build_spec,
    parse_env,
    parse_labels,
    parse_mount,
)
from dockweb.engine import get_manager
from dockweb.runtime.errors import (
    Conflict,
    ContainerNotFound,
    DockwebError,
    InvalidArgument,
    NotFound,
)
from dockweb.runtime.units import parse_go_time as _parse_go_time
from networks.mirror import sync_networks

if TYPE_CHECKING:
    from dockweb.runtime.containers import ContainerManager, ContainerSpec

log = logging.getLogger(__name__)

# -- managers (get_manager: dockweb.engine) ----------------------------------------------


def get_volumes():
    """The runtime's VolumeManager, which asks the ContainerManager which volumes are in use."""
    return get_manager().volumes


# -- verbs -------------------------------------------------------------------------------
# Each changes the runtime, then mirrors it; the mirror runs even when the verb fails half-way.


def create_container(spec: ContainerSpec) -> str:
    """``docker create``: the new container's full ID. Repairs what a crash left first (as
    a pull reconciles the store), so the CLI needs no worker for that."""
    mgr = get_manager()
    try:
        mgr.reconcile()
        return mgr.create(spec).id
    finally:
        sync_containers()


def start_container(ref: str) -> str:
    mgr = get_manager()
    try:
        return mgr.start(ref).id
    finally:
        sync_containers()


def run_container(spec: ContainerSpec) -> str:
    """``docker run -d``: create and start; the container's full ID."""
    mgr = get_manager()
    try:
        mgr.reconcile()
        c = mgr.run(spec, detach=True)
        return c.id
    finally:
        sync_containers()


def run_attached(spec: ContainerSpec) -> int:
    """``docker run`` in the foreground: the container's output on ours, its exit code."""
    mgr = get_manager()
    try:
        mgr.reconcile()
        return mgr.run(spec, detach=False)
    finally:
        sync_containers()


def stop_container(ref: str, timeout: int | None = None) -> None:
    mgr = get_manager()
    try:
        mgr.stop(ref, timeout=mgr.stop_timeout(ref) if timeout is None else timeout)
    finally:
        sync_containers()


def restart_container(ref: str, timeout: int | None = None) -> None:
    mgr = get_manager()
    try:
        mgr.restart(ref, timeout=mgr.stop_timeout(ref) if timeout is None else timeout)
    finally:
        sync_containers()


def kill_container(ref: str, signal: str = "KILL") -> None:
    mgr = get_manager()
    try:
        mgr.kill(ref, signal=signal)
    finally:
        sync_containers()


def pause_container(ref: str) -> None:
    mgr = get_manager()
    try:
        mgr.pause(ref)
    finally:
        sync_containers()


def unpause_container(ref: str) -> None:
    mgr = get_manager()
    try:
        mgr.unpause(ref)
    finally:
        sync_containers()


def remove_container(ref: str, *, force: bool = False, volumes: bool = False) -> None:
    mgr = get_manager()
    try:
        mgr.remove(ref, force=force, volumes=volumes)
    finally:
        sync_containers()


def wait_container(ref: str) -> int:
    return get_manager().wait(ref)


def update_container(ref: str, **changes) -> None:
    try:
        get_manager().update(ref, **changes)
    finally:
        sync_containers()


def rename_container(ref: str, new_name: str) -> None:
    try:
        get_manager().rename(ref, new_name)
    finally:
        sync_containers()


def container_logs(
    ref: str,
    *,
    follow: bool = False,
    tail: int | None = None,
    timestamps: bool = False,
    since: float | None = None,
    until: float | None = None,
) -> Iterator[tuple[str, str, str]]:
    """(stream, line, time) in order; with ``follow``, until the container stops."""
    return get_manager().logs(
        ref, follow=follow, tail=tail, timestamps=timestamps, since=since, until=until
    )


def container_diff(ref: str) -> list[tuple[str, str]]:
    return get_manager().diff(ref)


def container_top(ref: str, ps_args: str = "-ef") -> tuple[list[str], list[list[str]]]:
    return get_manager().top(ref, ps_args or "-ef")


def container_stats(ref: str) -> dict:
    return get_manager().stats(ref)


def check_exec(ref: str):
    """The container ``ref`` names if a command can run in it now (running, not paused),
    else the runtime's error in dockerd's words (``docker exec``'s create)."""
    return get_manager().check_exec(ref)


def container_stats_sample(ref: str) -> dict:
    """One sample of a running container's cgroups in dockerd's stats shape (the Engine
    API's frames); ContainerNotRunning otherwise."""
    return get_manager().stats_sample(ref)


def container_scope(ref: str):
    """(container, ``dockweb.runtime.copy.Scope``): its file system as its processes see
    it, for ``docker cp`` and the archive endpoints."""
    return get_manager().scope(ref)


def put_archive(
    ref: str, stream, path: str, *, no_overwrite_dir_non_dir: bool = False,
    copy_uid_gid: bool = False,
) -> None:
    """``PUT /containers/{id}/archive``: a tar unpacked into the directory ``path`` of the
    container (dockerd's rules and words, ``copy.extract_to_dir``); the container's row
    (its size) mirrored after."""
    from dockweb.runtime import copy

    c, scope = get_manager().scope(ref)
    try:
        copy.extract_to_dir(
            scope, stream, path, container=ref,
            no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
            user=(inspect_container(c)["Config"]["User"] or None) if copy_uid_gid else None,
        )
    finally:
        sync_containers(c.id)


def exec_in_container(ref: str, cmd: list[str], **kw) -> int:
    """``docker exec`` (output on ours): the command's exit code."""
    return get_manager().exec(ref, cmd, **kw)


def exec_detached(ref: str, cmd: list[str], **kw) -> None:
    """``docker exec -d``: started, not waited for."""
    get_manager().exec_detached(ref, cmd, **kw)


def start_exec(ref: str, cmd: list[str], **kw):
    """``docker exec`` without waiting: the runtime's ExecProcess handle (pty master or
    pipes, ``resize``, ``wait``), for callers that pump its I/O themselves."""
    return get_manager().exec_start(ref, cmd, **kw)


def export_container(ref: str, out) -> None:
    get_manager().export(ref, out)


def get_container(ref: str):
    return get_manager().get(ref)


def recover_after_restart() -> dict[str, list[str]]:
    """Repair what a stopped worker (or CLI, or supervisor) left: the runtime's reconcile
    (creations cut short undone, unsupervised containers stopped, half-seeded volumes
    emptied, temporary files removed), operations left running failed, then the mirror.
    Run at worker start. Returns the reconcile's report."""
    try:
        report = get_manager().reconcile()
    finally:
        jobs.fail_abandoned(ContainerOperation)
        sync_containers()
    return report


OPERATION_ABANDONED = "the worker stopped during the operation; look at the container and try again"


# -- volumes -----------------------------------------------------------------------------


def check_volume_driver(name: str, driver: str = "", options: dict | None = None) -> None:
    """dockweb has the ``local`` driver only, and it takes no options (type/device/o mount
    other file systems): dockerd's 404 for another driver, a 400 naming the options."""
    if driver and driver != "local":
        raise NotFound(
            f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found'
        )
    if options:
        keys = ", ".join(sorted(options))
        raise InvalidArgument(
            f"create {name or '<anonymous>'}: the local driver of dockweb takes no options "
            f"(given: {keys}); a volume is a directory"
        )


def create_volume(
    name: str = "",
    labels: dict[str, str] | None = None,
    *,
    driver: str = "",
    options: dict | None = None,
) -> str:
    check_volume_driver(name, driver, options)
    vm = get_volumes()
    try:
        return _volume_name(vm.create(name=name, labels=labels or {}))
    finally:
        sync_containers()


def remove_volume(name: str, *, force: bool = False) -> None:
    vm = get_volumes()
    try:
        vm.remove(name, force=force)
    finally:
        sync_containers()


def prune_volumes() -> tuple[list[str], int]:
    """``docker volume prune``: (names removed, bytes reclaimed)."""
    vm = get_volumes()
    try:
        result = vm.prune()
    finally:
        sync_containers()
    if isinstance(result, tuple):
        names, space = result
    else:
        names, space = result, 0
    return [_volume_name(v) for v in names], int(space or 0)


VOLUME_LIST_FILTERS = ("dangling", "name", "driver", "label")


def list_volumes(filters: dict[str, list[str]] | None = None) -> list[dict]:
    """``docker volume ls``'s volumes (dockerd's filters: dangling, name, driver, label),
    by name. Raises InvalidFilter with dockerd's words."""
    filters = filters or {}
    for key, values in filters.items():
        if key not in VOLUME_LIST_FILTERS:
            raise InvalidFilter(f"Invalid filter '{key}'")
        if key == "dangling":
            for value in values:
                if value.lower() not in ("true", "1", "false", "0"):
                    raise InvalidFilter(f"Invalid filter 'dangling=[{value}]'")
    vm = get_volumes()
    out = []
    for v in vm.list():
        info = inspect_volume(v)
        if "name" in filters and not any(regex_match(p, v.name) for p in filters["name"]):
            continue
        if "driver" in filters and info["Driver"] not in filters["driver"]:
            continue
        if "dangling" in filters:
            want = filters["dangling"][-1].lower() in ("true", "1")
            if (not vm.users(v.name)) != want:
                continue
        if "label" in filters and not match_labels(filters["label"], info["Labels"]):
            continue
        out.append(info)
    out.sort(key=lambda v: v["Name"])
    return out


def get_volume(name: str) -> dict:
    return inspect_volume(get_volumes().get(name))


def _volume_name(v: Any) -> str:
    return v if isinstance(v, str) else v.name


# -- inspect: runtime container -> docker's ContainerJSON --------------------------------


def inspect_container(c: Any, mgr: ContainerManager | None = None) -> dict:
    """docker inspect's ContainerJSON for a runtime Container (or a ref to look up)."""
    mgr = mgr or get_manager()  # also for the image's config: Env, Cmd, User, WorkingDir
    if isinstance(c, str):
        c = mgr.get(c)
    return container_json(c, mgr, str(settings.DOCKWEB_ROOT))


# -- database mirror ---------------------------------------------------------------------


def tables_ready() -> bool:
    """Whether the Container table exists (a database not migrated yet is logged once a call)."""
    if Container._meta.db_table not in connection.introspection.table_names():
        log.warning("database not migrated: containers not mirrored (run `manage.py migrate`)")
        return False
    return True


def sync_containers(container_id: str | None = None) -> None:
    """Make the Container and Volume rows mirror the runtime. Idempotent.

    With ``container_id`` only that container is read (the supervisor's exit hook): its row
    is updated, or deleted when the runtime no longer has it (``--rm``), and volumes are
    mirrored too because an auto-removed container may take anonymous ones with it.
    """
    if not tables_ready():
        return
    mgr = get_manager()
    if container_id is not None:
        try:
            containers = [mgr.get(container_id)]
        except ContainerNotFound:
            containers = []
            Container.objects.filter(container_id__startswith=container_id).delete()
        wanted = None
    else:
        containers = mgr.list(all=True)
        wanted = set()
    rows = []
    for c in containers:
        info = inspect_container(c, mgr)
        try:
            size = tuple(mgr.size(info["Id"]))
        except (DockwebError, OSError):
            size = None
        rows.append((info["Id"], _row_fields(info, size)))
        if wanted is not None:
            wanted.add(info["Id"])
    volumes = [(inspect_volume(v), bool(v.anonymous)) for v in mgr.volumes.list()]
    with transaction.atomic():
        for cid, fields in rows:
            Container.objects.update_or_create(container_id=cid, defaults=fields)
        if wanted is not None:
            Container.objects.exclude(container_id__in=wanted).delete()
        _sync_volumes(volumes)
    # the networks too: a container's start or end changes their endpoints
    sync_networks(mgr)
    # the Images page counts the containers of each image
    live.publish_on_commit("containers", "volumes", "images", "disk", "networks")


def sync_after_network_change(mgr, cid: str = "") -> None:
    """The database mirrors the runtime again after a network verb of the CLI or the Engine
    API: the container's row with the Network rows (``sync_containers`` does both), or the
    Network rows alone."""
    if cid:
        sync_containers(cid)
    else:
        sync_networks(mgr)


def _sync_volumes(volumes: list[tuple[dict, bool]]) -> None:
    names = set()
    for v, anonymous in volumes:
        names.add(v["Name"])
        Volume.objects.update_or_create(
            name=v["Name"],
            defaults={
                "driver": v["Driver"],
                "mountpoint": v["Mountpoint"],
                "created": _parse_go_time(v["CreatedAt"]),
                "labels": v["Labels"] or {},
                "options": v["Options"] or {},
                "anonymous": anonymous,
            },
        )
    Volume.objects.exclude(name__in=names).delete()


# -- queued operations (the pages) -------------------------------------------------------


def start_operation(
    kind: str, args: dict, *, user=None, container_id: str = ""
) -> ContainerOperation:
    """Queue an operation for the worker; it is sent after the transaction commits."""
    if kind not in ContainerOperation.Kind.values:
        raise DockwebError(f"unknown operation {kind!r}")
    return jobs.start(
        ContainerOperation, user=user, kind=kind, args=args, container_id=container_id
    )


RUN_OPTIONS = (
    "name",
    "env",
    "volumes",
    "workdir",
    "user",
    "entrypoint",
    "hostname",
    "network",
    "network_alias",
    "ip",
    "dns",
    "dns_search",
    "publish_all",
    "auto_remove",
    "labels",
    "memory",
    "cpus",
    "add_host",
    "read_only",
    "publish",
    "restart",
)


def start_run(image: str, cmd: list[str] | None, *, by=None, **options) -> ContainerOperation:
    """Queue ``docker run -d``; the options are checked now, so mistakes show on the form."""
    image = image.strip()
    if not image:
        raise InvalidOption("Enter an image to run.")
    options = {k: v for k, v in options.items() if k in RUN_OPTIONS}
    host_access = _check_run_options(options, by)
    return start_operation(
        ContainerOperation.Kind.RUN,
        {"image": image, "cmd": cmd or None, **options, "host_access": host_access},
        user=by,
    )


def _check_run_options(options: dict, user=None) -> bool:
    """Docker's client-side checks, without needing the runtime (the web process), and
    what ``user`` may reach on the host (access/hostaccess.py: HostAccessRefused for an
    operator's bind mount outside ``DOCKWEB_BIND_ROOTS``, host network…). Returns whether
    the user may reach the host (an admin), which the worker is told."""
    from access import hostaccess

    admin = hostaccess.may_reach_host(user)
    hostaccess.check_options(options, user, admin=admin)

    for v in options.get("volumes", []):
        parts = v.split(":")
        if len(parts) > 3 or not parts[-1 if len(parts) == 1 else 1].startswith("/"):
            raise InvalidOption(f"invalid volume specification: '{v}'")
        if len(parts) == 3 and parts[2] not in ("ro", "rw"):
            raise InvalidOption(f"invalid mode: {parts[2]}")
    for v in options.get("env", []):
        if not v or v.startswith("="):
            raise InvalidOption(f"invalid environment variable: {v}")
    network = options.get("network") or "bridge"
    if network not in ("bridge", "default", "none", "host"):
        from networks.models import Network  # the mirror; the worker checks the runtime

        if not Network.objects.filter(name=network).exists():
            raise InvalidOption(f"network {network} not found")
    wd = options.get("workdir", "")
    if wd and not wd.startswith("/"):
        raise InvalidOption(
            f"the working directory '{wd}' is invalid, it needs to be an absolute path"
        )
    # the rest as `run` checks it: the client's parsing, then dockerd's checks
    from dockweb.runtime.containers import check_host_config

    spec = build_spec("", None, **options)
    check_host_config(spec)
    hostaccess.check(spec, user, admin=admin)
    return admin


def _refused(op: ContainerOperation, err: BaseException) -> dict:
    """Removing a running container or a volume in use: forcing may help."""
    return {"conflict": isinstance(err, Conflict) and not op.args.get("force")}


@jobs.kind(
    "container_operation",
    model=ContainerOperation,
    task="containers.tasks.run_operation",
    what=lambda op: op.kind,
    abandoned=OPERATION_ABANDONED,
    failed_fields=_refused,
)
def run_operation(op: ContainerOperation) -> dict:
    """Run a queued operation in this process (the worker); ``run_operation(op_id)``. A
    no-op unless queued.

    Records the outcome in the row: ``result`` (the container ID, diff lines, processes,
    stats, removed volumes…) or ``error`` with Docker's message; ``conflict`` when forcing
    may help (removing a running container or a volume in use).
    """
    return _dispatch(op)


def _dispatch(op: ContainerOperation) -> dict:
    a = op.args
    K = ContainerOperation.Kind
    ref = a.get("container", "")
    if op.kind == K.RUN:
        spec = build_spec(
            a["image"],
            a.get("cmd"),
            detach=True,
            **{k: a[k] for k in RUN_OPTIONS if k in a},
        )
        # again here, as root and just before the mounts: a symlink swapped since the form
        # was sent, or a missing source (never made for a user without host access)
        from access import hostaccess

        hostaccess.check(spec, op.created_by, admin=a.get("host_access") is True)
        cid = run_container(spec)
        return {"container_id": cid, "result": {"id": cid}}
    if op.kind == K.START:
        start_container(ref)
    elif op.kind == K.STOP:
        stop_container(ref, a.get("timeout"))
    elif op.kind == K.RESTART:
        restart_container(ref, a.get("timeout"))
    elif op.kind == K.KILL:
        kill_container(ref, a.get("signal") or "KILL")
    elif op.kind == K.PAUSE:
        pause_container(ref)
    elif op.kind == K.UNPAUSE:
        unpause_container(ref)
    elif op.kind == K.REMOVE:
        remove_container(ref, force=bool(a.get("force")), volumes=bool(a.get("volumes")))
    elif op.kind == K.DIFF:
        return {"result": {"changes": [list(c) for c in container_diff(ref)]}}
    elif op.kind == K.TOP:
        titles, procs = container_top(ref)
        return {"result": {"titles": titles, "processes": procs}}
    elif op.kind == K.STATS:
        return {"result": {"stats": json.loads(json.dumps(container_stats(ref), default=str))}}
    elif op.kind == K.VOLUME_CREATE:
        name = create_volume(a.get("name", ""), parse_labels(a.get("labels", [])))
        return {"result": {"name": name}}
    elif op.kind == K.VOLUME_REMOVE:
        remove_volume(a["name"], force=bool(a.get("force")))
    elif op.kind == K.VOLUME_PRUNE:
        names, space = prune_volumes()
        return {"result": {"deleted": names, "reclaimed": space}}
    else:
        raise DockwebError(f"unknown operation {op.kind!r}")
    return {}


# -- read side for the pages (database and log files only) -------------------------------


def find_container(key: str) -> Container:
    """A Container row by full ID, unique ID prefix or name (docker's order); raises
    ContainerNotFound ("No such container: x") when none matches."""
    key = key.strip().lstrip("/")
    found = Container.objects.filter(container_id=key).first()
    if found:
        return found
    found = Container.objects.filter(name=key).first()
    if found:
        return found
    if key:
        matches = list(Container.objects.filter(container_id__startswith=key)[:2])
        if len(matches) == 1:
            return matches[0]
    raise ContainerNotFound(f"No such container: {key}")


def log_path(container_id: str) -> str:
    """The json-file log the supervisor writes (docs/containers.md)."""
    return os.path.join(str(settings.DOCKWEB_ROOT), "containers", container_id, "container.log")


def read_log(container_id: str, offset: int = 0, *, limit: int = 1000) -> tuple[list[dict], int]:
    """Log entries written after byte ``offset``, and the offset to ask from next time.

    Only whole lines are returned (a line being written is left for the next call); at most
    ``limit`` entries. A missing file reads as empty. Reading the file, not the runtime,
    lets the web process follow logs without privileges beyond read access.
    """
    try:
        f = open(log_path(container_id), "rb")
    except OSError:
        return [], offset
    entries = []
    with f:
        f.seek(offset)
        while len(entries) < limit:
            line = f.readline()
            if not line.endswith(b"\n"):
                break
            offset += len(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            entries.append(entry)
    return entries, offset


def tail_offset(container_id: str, lines: int = 200) -> int:
    """The byte offset where the last ``lines`` log lines start (0 for a short log)."""
    try:
        size = os.path.getsize(log_path(container_id))
    except OSError:
        return 0
    with open(log_path(container_id), "rb") as f:
        block = 64 * 1024
        pos = size
        data = b""
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
        nl = [i for i, ch in enumerate(data) if ch == 10]
        if len(nl) <= lines:
            return pos if pos == 0 else pos + (nl[0] + 1 if nl else 0)
        return pos + nl[-lines - 1] + 1
