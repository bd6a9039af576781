"""A container's status and state, and their files: ``state.json`` (written atomically under
``state.lock``) and ``container.json`` (the record). The lowest module of the package: the
manager and the supervisor (``dockweb.runtime.shim``) both build on it.

Guarantees:
- ``write_json_atomic``: readers see the old or the new whole file.
- ``state_lock``: an exclusive flock on the container's ``state.lock``, held by whoever
  reads, modifies and writes ``state.json`` (the manager and the supervisor).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from dockweb.runtime.containers.spec import ContainerSpec
from dockweb.runtime.crashpoint import crashpoint
from dockweb.runtime.errors import ContainerNotFound
from dockweb.runtime.units import GO_ZERO_TEXT, human_duration, parse_go_time, rfc3339nano

ZERO_TIME = GO_ZERO_TEXT  # a state file's time of what never happened
CONTAINER_ID = re.compile(r"^[a-f0-9]{64}$")
TEMP_JSON = re.compile(r"^[a-z]+\.json\.(\d+)\.[a-f0-9]{6}$")  # write_json_atomic's


def now_rfc3339nano() -> str:
    """The current UTC time as Go's RFC3339Nano (trailing zeros of the fraction dropped)."""
    return rfc3339nano(time.time_ns())


class Status(enum.Enum):
    """A container's status, with Docker's names. Guards say which operations it allows."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"

    def can_start(self) -> bool:
        """A process can be launched: created or exited (running is a no-op, not a start)."""
        return self in (Status.CREATED, Status.EXITED)

    def can_stop(self) -> bool:
        return self in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)

    def can_kill(self) -> bool:
        """Has processes (moby's IsRunning); ``kill`` still refuses a restarting one, which
        has none between two runs ("wait until the container is running")."""
        return self in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)

    def can_signal(self) -> bool:
        """``kill`` goes through: running or paused. A restarting container has no process
        between two runs (dockerd: "wait until the container is running"); stop cancels
        the restart instead."""
        return self.can_kill() and self is not Status.RESTARTING

    def can_pause(self) -> bool:
        return self is Status.RUNNING

    def can_unpause(self) -> bool:
        return self is Status.PAUSED

    def can_exec(self) -> bool:
        return self is Status.RUNNING

    def can_restart(self) -> bool:
        """Stop (if need be) then start: not while restarting by its policy (stop cancels
        that), being removed or dead."""
        return self in (Status.CREATED, Status.RUNNING, Status.EXITED, Status.PAUSED)

    def can_remove(self, force: bool = False) -> bool:
        """Without force only stopped containers go; with force anything not already going."""
        if force:
            return self is not Status.REMOVING
        return self in (Status.CREATED, Status.EXITED, Status.DEAD)

    @property
    def is_active(self) -> bool:
        """Has processes (what ``docker ps`` lists without ``-a``)."""
        return self in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)


@dataclass
class State:
    status: Status = Status.CREATED
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    oom_killed: bool = False
    boot_id: str = ""
    # the published ports while it runs: {container_port, proto, host_ip, host_port}
    ports: list[dict] = field(default_factory=list)
    restart_count: int = 0  # restarts by its restart policy since the last start
    restart_delay: float = 0.0  # the last backoff (s): dockerd's doubles from 0.1 to 60
    manual_stop: bool = False  # stopped or killed by someone: "always" does not restart

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> State:
        d = dict(d)
        d["status"] = Status(d.get("status", "created"))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def status_text(self, now: datetime | None = None) -> str:
        """The STATUS column of ``docker ps``: ``status_text`` of this state."""
        return status_text(
            self.status,
            started_at=parse_go_time(self.started_at),
            finished_at=parse_go_time(self.finished_at),
            exit_code=self.exit_code,
            now=now,
        )


# Go's time.Since(zero time) saturates at the largest Duration (2^63-1 ns: 292 years)
_GO_MAX_DURATION_S = (2**63 - 1) / 1e9


def status_text(
    status: Status | str,
    *,
    started_at: datetime | None,
    finished_at: datetime | None,
    exit_code: int = 0,
    now: datetime | None = None,
) -> str:
    """The STATUS column of ``docker ps``, as moby's container.State.String(): "Up 3
    seconds", "Up 2 minutes (Paused)", "Restarting (1) 3 seconds ago", "Removal In
    Progress", "Dead", "Created" (never started), "" (started, never finished while not
    running), "Exited (0) 3 seconds ago". Times are aware datetimes, None for Go's zero
    time; ``status`` a Status or its name."""
    status = Status(status)
    now = now or datetime.now(UTC)

    def since(t: datetime | None) -> str:
        return human_duration(_GO_MAX_DURATION_S if t is None else (now - t).total_seconds())

    if status is Status.PAUSED:
        return f"Up {since(started_at)} (Paused)"
    if status is Status.RESTARTING:
        return f"Restarting ({exit_code}) {since(finished_at)} ago"
    if status is Status.RUNNING:
        return f"Up {since(started_at)}"
    if status is Status.REMOVING:
        return "Removal In Progress"
    if status is Status.DEAD:
        return "Dead"
    if started_at is None:
        return "Created"
    if finished_at is None:
        return ""
    return f"Exited ({exit_code}) {since(finished_at)} ago"


@dataclass
class Container:
    """A container's record (``container.json``) and its current state."""

    id: str
    name: str  # without Docker's leading "/"
    image: str  # as given to create
    image_id: str
    created: str
    spec: ContainerSpec
    path: str
    args: list[str]
    hostname: str
    mounts: list[dict]  # {type, name, source, destination, rw, anonymous}
    runtime: str = ""
    # the bridge networks it is connected to: name -> {"aliases": [...], "ipv4": ""} (what
    # create and `network connect` asked; the addresses of a running one are its endpoints')
    networks: dict[str, dict] = field(default_factory=dict)
    state: State = field(default_factory=State)

    @property
    def status(self) -> Status:
        return self.state.status

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def record(self) -> dict:
        d = asdict(self)
        del d["state"]
        return d

    @classmethod
    def from_record(cls, d: dict, state: State) -> Container:
        d = dict(d)
        d["spec"] = ContainerSpec.from_dict(d["spec"])
        return cls(state=state, **d)


def boot_id() -> str:
    """This boot's ID (empty when the kernel does not say): a state written under another
    boot tells a reboot from a supervisor's crash."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def write_json_atomic(path: str, value: dict, *, durable: bool = True) -> None:
    """Readers see the old or the new whole file. ``durable`` fsyncs it first (5 to 25 ms
    on the development machine): a crash then keeps the new one. Without it, a crash may
    keep the old one (ext4, the store's file system, flushes a file renamed over another)."""
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(3)}"
    with open(tmp, "w") as f:
        f.write(json.dumps(value))  # dumps: C's encoder; dump streams through Python's
        if durable:
            f.flush()
            os.fsync(f.fileno())
    crashpoint("container.atomic_write")
    os.replace(tmp, path)


@contextlib.contextmanager
def state_lock(cdir: str) -> Iterator[None]:
    """Hold the container's ``state.lock`` (in its directory ``cdir``). Raises
    ContainerNotFound when the directory is gone (its supervisor removed it after --rm)."""
    try:
        fd = os.open(os.path.join(cdir, "state.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:  # removed meanwhile (its supervisor, after --rm)
        cid = os.path.basename(cdir)
        raise ContainerNotFound(f"No such container: {cid}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_state(cdir: str) -> State:
    """The state; created when ``state.json`` was never written (``create`` writes only
    the record), exited (255) when a machine crash left it empty or cut short (a state
    written without fsync: running, removing, or the exit of an ``--rm`` container)."""
    try:
        with open(os.path.join(cdir, "state.json")) as f:
            return State.from_dict(json.load(f))
    except FileNotFoundError:
        if os.path.exists(os.path.join(cdir, "container.json")):
            return State()
        cid = os.path.basename(cdir)
        raise ContainerNotFound(f"No such container: {cid}") from None
    except ValueError:
        return State(status=Status.EXITED, exit_code=255, error="state lost in a crash")


def write_state(cdir: str, state: State, *, durable: bool = True) -> None:
    """``state.json``, atomically (``durable``: fsync'd first)."""
    write_json_atomic(os.path.join(cdir, "state.json"), state.to_dict(), durable=durable)


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""
