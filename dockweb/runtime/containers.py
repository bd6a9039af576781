"""Containers: an image's layers plus a writable layer, run by an OCI runtime under a
supervisor (``dockweb.runtime.shim``) that outlives whoever started it.

See docs/containers.md for the contract. Guarantees:
- ``state.json`` is written atomically under the container's ``state.lock`` (flock), by the
  manager and by the supervisor; readers see a whole state.
- The supervisor holds an exclusive flock on ``shim.lock`` while it lives; a container whose
  state says running or paused while nobody holds that lock has lost its supervisor (crash,
  reboot) and is reconciled to ``exited`` (255) the next time anyone looks at it.
- Names are unique: they are checked and the record written under the store's lock.
"""

from __future__ import annotations

import array
import contextlib
import enum
import fcntl
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal as signals
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from dockweb.runtime import attach as frames
from dockweb.runtime import oci, syscalls
from dockweb.runtime.crashpoint import crashpoint
from dockweb.runtime.errors import (
    ContainerConflict,
    ContainerNotFound,
    ContainerNotRunning,
    ContainerStartError,
    DockwebError,
    InvalidContainerSpec,
)
from dockweb.runtime.store import ImageRecord, Store, _is_mountpoint, parse_time
from dockweb.runtime.units import human_duration
from dockweb.runtime.volumes import VolumeManager, dir_size

# For type checkers only, without importing typing (4 ms of the CLI's fast run path)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

ZERO_TIME = "0001-01-01T00:00:00Z"
_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_TEMP_JSON = re.compile(r"^[a-z]+\.json\.(\d+)\.[a-f0-9]{6}$")  # _write_json_atomic's


def now_rfc3339nano() -> str:
    """The current UTC time as Go's RFC3339Nano (trailing zeros of the fraction dropped)."""
    ns = time.time_ns()
    base = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


# -- names ----------------------------------------------------------------------------------

_ADJECTIVES = (
    "admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold "
    "boring brave busy charming clever cool compassionate competent confident cranky crazy "
    "dazzling determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic "
    "exciting fervent festive flamboyant focused friendly frosty funny gallant gifted goofy "
    "gracious great happy hardcore heuristic hopeful hungry infallible inspiring intelligent "
    "interesting jolly jovial keen kind laughing loving lucid magical modest musing mystifying "
    "naughty nervous nice nifty nostalgic objective optimistic peaceful pedantic pensive "
    "practical priceless quirky quizzical recursing relaxed reverent romantic sad serene sharp "
    "silly sleepy stoic strange stupefied suspicious sweet tender thirsty trusting unruffled "
    "upbeat vibrant vigilant vigorous wizardly wonderful xenodochial youthful zealous zen"
).split()

# Notable scientists and engineers, as Docker's generator uses.
_SURNAMES = (
    "agnesi albattani allen almeida antonelli archimedes ardinghelli aryabhata austin babbage "
    "banach bardeen bartik bassi beaver bell benz bhabha bhaskara blackburn blackwell bohr "
    "booth borg bose bouman boyd brahmagupta brattain brown buck burnell cannon carson cartwright "
    "cerf chandrasekhar chaplygin chatelet chatterjee chebyshev cohen clarke colden cori cray "
    "curie darwin davinci dewdney dhawan diffie dijkstra dirac driscoll dubinsky easley edison "
    "einstein elbakyan elgamal elion ellis engelbart euclid euler faraday feistel fermat fermi "
    "feynman franklin gagarin galileo galois gates gauss germain goldberg goldstine goldwasser "
    "golick goodall gould greider grothendieck haibt hamilton haslett hawking heisenberg hellman "
    "hermann herschel hertz heyrovsky hodgkin hofstadter hoover hopper hugle hypatia jackson "
    "jang jemison jennings jepsen johnson joliot jones kalam kapitsa kare keldysh keller kepler "
    "khayyam khorana kilby kirch knuth kowalevski lalande lamarr lamport leakey leavitt lederberg "
    "lehmann lewin lichterman liskov lovelace lumiere mahavira margulis matsumoto maxwell mayer "
    "mccarthy mcclintock mclaren mclean mcnulty meitner mendel mendeleev meninsky merkle mestorf "
    "mirzakhani montalcini moore morse moser murdock napier nash neumann newton nightingale "
    "nobel noether northcutt noyce panini pare pascal pasteur payne perlman pike poincare "
    "poitras proskuriakova ptolemy raman ramanujan rhodes ride ritchie robinson roentgen "
    "rosalind rubin saha sammet sanderson satoshi shamir shannon shaw shirley shockley shtern "
    "sinoussi snyder solomon spence stonebraker sutherland swanson swartz swirles taussig "
    "tesla tharp thompson torvalds tu turing varahamihira vaughan villani visvesvaraya volhard "
    "wescoff wilbur wiles williams williamson wilson wing wozniak wright wu yalow yonath zhukovsky"
).split()


def random_name(retry: int = 0) -> str:
    """``adjective_surname``; on a retry a digit is appended, as Docker's generator does.
    Steve Wozniak is not boring, so ``boring_wozniak`` is never produced."""
    while True:
        name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}"
        if name != "boring_wozniak":
            break
    if retry > 0:
        name += str(secrets.randbelow(10))
    return name


# -- specs and states -----------------------------------------------------------------------


@dataclass
class MountSpec:
    """``-v name:/dst[:ro]`` (volume), ``-v /host:/dst[:ro]`` (bind), ``-v /dst`` (anonymous
    volume: ``type="volume"``, ``source=""``)."""

    type: str
    source: str
    target: str
    readonly: bool = False
    # -v makes a missing bind source; --mount refuses it, as dockerd
    create_source: bool = True


@dataclass
class ContainerSpec:
    image: str
    name: str = ""
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    network: str = "none"
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    mounts: list[MountSpec] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    detach: bool = False  # run -d: nothing attached (inspect's Config.Attach*)
    read_only: bool = False  # --read-only: the root file system mounted read-only
    cap_add: list[str] = field(default_factory=list)  # CAP_X names, or ALL
    cap_drop: list[str] = field(default_factory=list)
    tmpfs: dict[str, str] = field(default_factory=dict)  # --tmpfs /dst[:options]
    extra_hosts: list[str] = field(default_factory=list)  # --add-host name:ip
    memory: int = 0  # -m: bytes (0: no limit); swap twice that, as dockerd's default
    nano_cpus: int = 0  # --cpus times 1e9
    pids_limit: int = 0  # --pids-limit (0: none)
    stop_signal: str = ""  # --stop-signal: over the image's StopSignal
    stop_timeout: int | None = None  # --stop-timeout: stop's default seconds
    # -p: {container_port, proto, host_ip, host_port (0: any)}, see dockweb.runtime.ports
    ports: list[dict] = field(default_factory=list)
    # --restart: {"Name": no|always|unless-stopped|on-failure, "MaximumRetryCount": n}
    restart: dict = field(default_factory=lambda: {"Name": "no", "MaximumRetryCount": 0})
    shm_size: int = 0  # --shm-size bytes (0: 64 MiB)
    ulimits: list[dict] = field(default_factory=list)  # --ulimit {Name, Soft, Hard}
    group_add: list[str] = field(default_factory=list)  # --group-add names or numbers

    @classmethod
    def from_dict(cls, d: dict) -> ContainerSpec:
        d = dict(d)
        d["mounts"] = [MountSpec(**m) for m in d.get("mounts", [])]
        return cls(**d)


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
        return self in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)

    def can_pause(self) -> bool:
        return self is Status.RUNNING

    def can_unpause(self) -> bool:
        return self is Status.PAUSED

    def can_exec(self) -> bool:
        return self is Status.RUNNING

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
        """The STATUS column of ``docker ps`` (moby container.State.String)."""
        now = now or datetime.now(UTC)
        if self.status in (Status.RUNNING, Status.PAUSED):
            up = human_duration((now - parse_time(self.started_at)).total_seconds())
            return f"Up {up} (Paused)" if self.status is Status.PAUSED else f"Up {up}"
        if self.status is Status.RESTARTING:
            ago = human_duration((now - parse_time(self.finished_at)).total_seconds())
            return f"Restarting ({self.exit_code}) {ago} ago"
        if self.status is Status.REMOVING:
            return "Removal In Progress"
        if self.status is Status.DEAD:
            return "Dead"
        if self.status is Status.CREATED or self.finished_at == ZERO_TIME:
            return "Created"
        ago = human_duration((now - parse_time(self.finished_at)).total_seconds())
        return f"Exited ({self.exit_code}) {ago} ago"


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


# -- runtime helpers ------------------------------------------------------------------------


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def default_runtime() -> str:
    """crun, unless this host's cgroup layout makes it refuse (crun 1.8 will not run on a
    hybrid v1/v2 host whose unified hierarchy has controllers), then runc."""
    hybrid_controllers = ""
    with contextlib.suppress(OSError):
        with open("/sys/fs/cgroup/unified/cgroup.controllers") as f:
            hybrid_controllers = f.read().strip()
    if shutil.which("crun") and not hybrid_controllers:
        return "crun"
    if shutil.which("runc"):
        return "runc"
    return "crun"


def parse_signal(sig: str | int) -> int:
    """``KILL``, ``SIGKILL`` or ``9`` → 9; Docker's ``Invalid signal: X`` otherwise."""
    if isinstance(sig, int):
        return sig
    s = sig.strip().upper()
    if s.isdigit():
        n = int(s)
        if 0 < n < 65:
            return n
    else:
        name = s if s.startswith("SIG") else "SIG" + s
        with contextlib.suppress(AttributeError):
            return int(getattr(signals.Signals, name))
    raise InvalidContainerSpec(f"Invalid signal: {sig}")


def check_host_config(spec: ContainerSpec) -> None:
    """dockerd's checks of what ``create`` asks beyond the image: capabilities, limits and
    the stop signal, with its words (the Run form makes them too, before queueing)."""
    for what, caps in (("CapAdd", spec.cap_add), ("CapDrop", spec.cap_drop)):
        for cap in caps:
            try:
                oci.normalize_capability(cap)
            except ValueError as e:
                raise InvalidContainerSpec(f"invalid {what}: {e}") from None
    if 0 < spec.memory < 6 * 1024 * 1024:
        raise InvalidContainerSpec("Minimum memory limit allowed is 6MB")
    if spec.nano_cpus:
        n = os.cpu_count() or 1
        if spec.nano_cpus < 10**7 or spec.nano_cpus > n * 10**9:
            raise InvalidContainerSpec(
                f"Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
            )
    if spec.stop_signal:
        parse_signal(spec.stop_signal)  # "Invalid signal: X"


def _exec_failed(err: str) -> ContainerStartError:
    """An exec the runtime could not start, in dockerd's words (exit status 126)."""
    return ContainerStartError(
        f"OCI runtime exec failed: {_docker_words(err, exec_=True)}: unknown", 126
    )


def _drop_exec_files(log: str) -> None:
    """Remove an exec's runtime log and the process.json beside it."""
    for path in (log, log[: -len(".log")] + ".json"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _write_json_atomic(path: str, value: dict, *, durable: bool = True) -> None:
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


class ContainerManager:
    """Create and run containers over a Store. Safe to use from several processes at once."""

    def __init__(
        self,
        store: Store,
        *,
        runtime: str | None = None,
        exit_command: list[str] | None = None,
        fork_supervisor: bool = False,
        on_exit: Callable[[str], None] | None = None,
    ):
        self.store = store
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

    @contextlib.contextmanager
    def _state_lock(self, cid: str) -> Iterator[None]:
        try:
            fd = os.open(os.path.join(self.cdir(cid), "state.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # removed meanwhile (its supervisor, after --rm)
            raise ContainerNotFound(f"No such container: {cid}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read_state(self, cid: str) -> State:
        """The state; created when ``state.json`` was never written (``create`` writes only
        the record), exited (255) when a machine crash left it empty or cut short (a state
        written without fsync: running, removing, or the exit of an ``--rm`` container)."""
        cdir = self.cdir(cid)
        try:
            with open(os.path.join(cdir, "state.json")) as f:
                return State.from_dict(json.load(f))
        except FileNotFoundError:
            if os.path.exists(os.path.join(cdir, "container.json")):
                return State()
            raise ContainerNotFound(f"No such container: {cid}") from None
        except ValueError:
            return State(status=Status.EXITED, exit_code=255, error="state lost in a crash")

    def write_state(self, cid: str, state: State, *, durable: bool = True) -> None:
        _write_json_atomic(
            os.path.join(self.cdir(cid), "state.json"), state.to_dict(), durable=durable
        )

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
            if _HEX64.match(n) and _file_size(os.path.join(self.dir, n, "container.json")) > 0
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
            st.status = Status.EXITED
            st.exit_code = 255 if st.exit_code == 0 else st.exit_code
            st.pid = 0
            st.ports = []  # its listeners went with it
            st.finished_at = now_rfc3339nano()
            st.error = "supervisor exited unexpectedly" if st.boot_id == _boot_id() else ""
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

    # -- create ---------------------------------------------------------------------------

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
            return self._record(spec, rec, argv, mounts)

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
        if spec.network not in ("none", "host"):
            raise InvalidContainerSpec(f"network {spec.network} not found")
        if spec.name and not _NAME.match(spec.name):
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
                    args += ["--memory-swap", str(memory_limits["swap"]),
                             "--memory", str(memory_limits["limit"])]
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
        return c

    def rename(self, ref: str, new_name: str) -> Container:
        """``docker rename``: a new name, with dockerd's checks and words. The hostname stays.
        """
        if not ref or not new_name:
            raise InvalidContainerSpec("Neither old nor new names may be empty")
        new_name = new_name.lstrip("/")
        with self.store.locked():
            c = self.get(ref)
            if c.name == new_name:
                raise InvalidContainerSpec(
                    "Renaming a container with the same name as its current name"
                )
            if not _NAME.match(new_name):
                raise InvalidContainerSpec(
                    f"Error when allocating new name: Invalid container name (/{new_name}), "
                    "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )
            try:
                self._reserve_name(new_name, c.id)
            except ContainerConflict as e:
                raise ContainerConflict(f"Error when allocating new name: {e}") from None
            c.name = new_name
            self._write_record(c)
        return c

    def _write_record(self, c: Container, *, durable: bool = True) -> None:
        """container.json: what the container is (its state is apart, in state.json)."""
        _write_json_atomic(
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

    def _plan_mounts(self, spec: ContainerSpec, cfg: dict) -> list[dict]:
        out: list[dict] = []
        seen = set()
        for m in spec.mounts:
            target = os.path.normpath(m.target) if m.target else ""
            if not target.startswith("/") or target == "/":
                raise InvalidContainerSpec(
                    f"invalid volume specification: '{m.source}:{m.target}': invalid mount "
                    "config for type \"{m.type}\": invalid specification: destination can't be '/'"
                    if target == "/"
                    else f"invalid volume specification: '{m.source}:{m.target}'"
                )
            if target in seen:
                raise InvalidContainerSpec(f"Duplicate mount point: {target}")
            seen.add(target)
            if m.type == "bind":
                if not m.source.startswith("/"):
                    raise InvalidContainerSpec(
                        f'invalid mount config for type "bind": invalid mount path: '
                        f"'{m.source}' mount path must be absolute"
                    )
                if not m.create_source and not os.path.exists(m.source):
                    raise InvalidContainerSpec(
                        'invalid mount config for type "bind": bind source path does not '
                        f"exist: {m.source}"
                    )
                out.append(
                    {
                        "type": "bind",
                        "name": "",
                        "source": m.source,
                        "destination": target,
                        "rw": not m.readonly,
                        "anonymous": False,
                    }
                )
            elif m.type == "volume":
                name = m.source or secrets.token_hex(32)
                out.append(
                    {
                        "type": "volume",
                        "name": name,
                        "source": "",
                        "destination": target,
                        "rw": not m.readonly,
                        "anonymous": not m.source,
                    }
                )
            else:
                raise InvalidContainerSpec(f"invalid mount type: {m.type}")
        for target in sorted(cfg.get("Volumes") or {}):
            target = os.path.normpath(target)
            if target not in seen:
                seen.add(target)
                out.append(
                    {
                        "type": "volume",
                        "name": secrets.token_hex(32),
                        "source": "",
                        "destination": target,
                        "rw": True,
                        "anonymous": True,
                    }
                )
        return out

    @staticmethod
    def _make_init_layer(init: str) -> None:
        """The files and mount points Docker's init layer holds (daemon/initlayer), so that
        the runtime's mount points never show in ``diff``."""
        for d in ("dev/pts", "dev/shm", "proc", "sys", "etc"):
            os.makedirs(os.path.join(init, d), exist_ok=True)
        for f in (".dockerenv", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/console"):
            with open(os.path.join(init, f), "w"):
                pass
        os.chmod(os.path.join(init, ".dockerenv"), 0o755)
        os.symlink("/proc/mounts", os.path.join(init, "etc/mtab"))

    # -- rootfs ---------------------------------------------------------------------------

    def _lower_dirs(self, c: Container) -> list[str]:
        """Absolute lower dirs, top first: the init layer, then the image's layers."""
        rec = self.store.get_image(c.image_id)
        return [os.path.join(self.cdir(c.id), "init")] + [
            self.store.layer_diff(ch) for ch in reversed(rec.layers)
        ]

    def _init_link(self, cid: str) -> str:
        link = os.path.join(self.store.links_dir, "C" + cid[:25].upper())
        if not os.path.lexists(link):
            os.symlink(os.path.join("..", "containers", cid, "init"), link)
        return os.path.join("l", os.path.basename(link))

    def mount_rootfs(self, c: Container) -> str:
        """Mount the container's root filesystem (overlay of the image, the init layer and
        the writable layer) at ``rootfs/``. Idempotent."""
        target = os.path.join(self.cdir(c.id), "rootfs")
        if _is_mountpoint(target):
            return target
        rec = self.store.get_image(c.image_id)
        lowers = [self._init_link(c.id)] + [
            os.path.join("l", self.store.get_layer(ch).link) for ch in reversed(rec.layers)
        ]
        rel = os.path.join("containers", c.id)
        absolute = ",".join(
            f"{k}={':'.join(os.path.join(self.root, p) for p in v.split(':'))}"
            for k, v in (
                ("lowerdir", ":".join(lowers)),
                ("upperdir", f"{rel}/upper"),
                ("workdir", f"{rel}/work"),
            )
        )
        relative = f"lowerdir={':'.join(lowers)},upperdir={rel}/upper,workdir={rel}/work"
        # --rm: the writable layer goes when the process ends, so it need not survive a
        # crash; "volatile" (Linux 5.10) spares its unmount a sync of the store's whole file
        # system (7 to 10 ms), as podman mounts --rm containers.
        if c.spec.auto_remove:
            with contextlib.suppress(ContainerStartError):  # else an older kernel: without
                self._mount_overlay(c, target, absolute + ",volatile", relative + ",volatile")
                return target
        self._mount_overlay(c, target, absolute, relative)
        return target

    def _mount_overlay(self, c: Container, target: str, absolute: str, relative: str) -> None:
        # mount(2) without running mount(8) when the absolute paths fit in the kernel's one
        # page of options; else the short relative ones, resolved in mount(8)'s cwd.
        if syscalls.fits(absolute):
            try:
                syscalls.mount_overlay(target, absolute)
            except OSError as e:
                raise ContainerStartError(f"mount rootfs of {c.id}: {e.strerror}", 125) from e
            return
        proc = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", relative, target],
            cwd=self.root,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ContainerStartError(f"mount rootfs of {c.id}: {proc.stderr.strip()}", 125)

    def _unmount_rootfs(self, cid: str) -> None:
        target = os.path.join(self.cdir(cid), "rootfs")
        if _is_mountpoint(target):
            with contextlib.suppress(OSError):  # as `umount -l` failing: nothing to do
                syscalls.unmount(target)

    # -- start ----------------------------------------------------------------------------

    def _prepare(self, c: Container) -> None:
        """Everything the runtime needs, written fresh at each start as Docker does: rootfs
        mount, seeded volumes, working directory, /etc files and the bundle's config.json."""
        cdir = self.cdir(c.id)
        rootfs = self.mount_rootfs(c)
        crashpoint("container.start.mounted")
        for m in c.mounts:
            if m["type"] == "volume":
                self.volumes.create(m["name"], anonymous=m["anonymous"])
                src = oci._in_root(rootfs, m["destination"])
                self.volumes.seed(m["name"], src)
            elif m["type"] == "bind" and not os.path.exists(m["source"]):
                os.makedirs(m["source"], exist_ok=True)  # -v creates a missing host dir
        crashpoint("container.start.volumes")
        user = oci.resolve_user(
            rootfs,
            c.spec.user
            or ((self.store.get_image(c.image_id).config.get("config") or {}).get("User") or ""),
        )
        if c.spec.group_add:
            oci.add_groups(rootfs, user, c.spec.group_add)
        cfg = self.store.get_image(c.image_id).config.get("config") or {}
        workdir = c.spec.workdir or cfg.get("WorkingDir") or "/"
        wd = oci._in_root(rootfs, workdir)
        if not os.path.exists(wd):
            os.makedirs(wd, mode=0o755, exist_ok=True)
        etc = self._write_etc_files(c)
        env = oci.process_env(
            oci.merge_env(cfg.get("Env") or [], c.spec.env), c.hostname, c.spec.tty
        )
        mounts = [
            {
                "destination": m["destination"],
                "type": "bind",
                "source": m["source"],
                "options": ["rbind", "rprivate"] + ([] if m["rw"] else ["ro"]),
            }
            for m in c.mounts
        ]
        spec = oci.runtime_spec(
            rootfs=rootfs,
            args=[c.path, *c.args],
            env=env,
            cwd=workdir,
            user=user,
            hostname=c.hostname,
            tty=c.spec.tty,
            network=c.spec.network,
            cgroups_path=f"dockweb/{c.id}",
            etc_files=etc,
            mounts=mounts,
            read_only=c.spec.read_only,
            capabilities=oci.capabilities(c.spec.cap_add, c.spec.cap_drop),
            tmpfs=c.spec.tmpfs,
            resources=oci.resources(
                memory=c.spec.memory, nano_cpus=c.spec.nano_cpus, pids_limit=c.spec.pids_limit
            ),
            shm_size=c.spec.shm_size,
            rlimits=oci.rlimits(c.spec.ulimits),
        )
        # rewritten at every start, read by the runtime right after: no need to survive a crash
        _write_json_atomic(os.path.join(cdir, "bundle", "config.json"), spec, durable=False)
        crashpoint("container.start.config")

    def _write_etc_files(self, c: Container) -> dict[str, str]:
        cdir = self.cdir(c.id)
        paths = {
            "/etc/hostname": os.path.join(cdir, "hostname"),
            "/etc/hosts": os.path.join(cdir, "hosts"),
            "/etc/resolv.conf": os.path.join(cdir, "resolv.conf"),
        }
        with open(paths["/etc/hostname"], "w") as f:
            f.write(c.hostname + "\n")
        if c.spec.network == "host":
            hosts = _read_text("/etc/hosts") or oci.HOSTS_LOCAL
            resolv = _read_text("/etc/resolv.conf")
        else:
            hosts = oci.HOSTS_LOCAL
            resolv = _filter_resolv(_read_text("/etc/resolv.conf"))
        for entry in c.spec.extra_hosts:  # --add-host name:ip, as dockerd appends them
            name, _, ip = entry.partition(":")
            hosts += f"{ip}\t{name}\n"
        with open(paths["/etc/hosts"], "w") as f:
            f.write(hosts)
        with open(paths["/etc/resolv.conf"], "w") as f:
            f.write(resolv)
        for p in paths.values():
            os.chmod(p, 0o644)
        return paths

    def start(
        self, ref: str, *, attach: socket.socket | None = None, _restart: bool = False
    ) -> Container:
        """Start the container's process under a detached supervisor; returns once the
        process runs (or raises ContainerStartError with Docker's message and exit code,
        recording both in the state). Starting a running container does nothing.
        ``_restart``: the supervisor restarting it by its policy (the count goes on).

        ``attach``: one end of a connected socket pair (see ``start_attached``), handed to
        the supervisor of a ``-i``/``-t`` container as an attach client from before the
        process runs (closed here once handed over; left open if nothing was started).
        Other containers' output is read with ``logs(follow=True)``, the exit code with
        ``wait``.
        """
        c = self.get(ref)
        if c.status in (Status.RUNNING, Status.RESTARTING):
            return c
        if c.status is Status.PAUSED:
            raise ContainerConflict("cannot start a paused container, try unpause instead")
        if not c.status.can_start():
            raise ContainerConflict(f"Container {c.id} is marked for removal and cannot be started")
        if self.shim_alive(c.id):
            raise ContainerConflict(f"Container {c.id} is already being started")
        try:
            self._prepare(c)
        except ContainerStartError as e:
            self.update_state(c.id, exit_code=e.exit_code, error=str(e))
            raise
        except OSError as e:
            self.update_state(c.id, exit_code=125, error=str(e))
            raise ContainerStartError(str(e), 125) from e
        if os.path.exists(os.path.join(self.runtime_root, c.id)):
            # the runtime's record of an earlier run that nobody deleted (a crash)
            subprocess.run(self._rt("delete", "--force", c.id), capture_output=True)
        st = c.state
        if not _restart and (st.manual_stop or st.restart_count or st.restart_delay):
            # a start by someone: the policy applies afresh (dockerd's)
            c.state = self.update_state(
                c.id, durable=False, manual_stop=False, restart_count=0, restart_delay=0.0
            )
        result = self._spawn_shim(c, attach=attach)
        if result.get("cancelled"):  # a restart that a stop overtook
            return self.get(c.id)
        if "error" in result:
            error = _docker_words(result["error"])
            code = _start_exit_code(error)
            msg = f"failed to create shim task: OCI runtime create failed: {error}: unknown"
            if result.get("ports"):  # a host port it could not have: dockerd's own words
                msg, code = result["error"], 125
            self.update_state(c.id, exit_code=code, error=msg)
            raise ContainerStartError(msg, code)
        crashpoint("container.start.answered")
        try:
            return self.get(c.id)
        except ContainerNotFound:  # --rm, and the process has ended already
            return c

    def start_attached(self, ref: str) -> socket.socket:
        """Start a ``-i``/``-t`` container with a client attached (``run -it``, ``start
        -ai``); returns the client's socket (``dockweb.runtime.attach`` frames). Its
        supervisor holds the other end before the process runs, as Docker attaches before it
        starts: no output can be missed, however soon the process ends. A container running
        already: a new client of its attach socket, which gets the output from then on."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with theirs:
                c = self.start(ref, attach=theirs)
                if theirs.fileno() < 0:  # handed to the supervisor that runs it
                    return ours
        except BaseException:
            ours.close()
            raise
        ours.close()
        return frames.connect(self.attach_path(c.id))

    def _spawn_shim(self, c: Container, *, attach: socket.socket | None = None) -> dict:
        r, w = os.pipe()
        pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = pkg_root + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        shim_args = [
            "--root",
            self.root,
            "--id",
            c.id,
            "--runtime",
            self.runtime,
            "--runtime-root",
            self.runtime_root,
            "--sync-fd",
            str(w),
            "--exit-command",
            json.dumps(self.exit_command),
        ]
        pass_fds = [w]
        if attach is not None:
            shim_args += ["--attach-fd", str(attach.fileno())]
            pass_fds.append(attach.fileno())
        forked = self.fork_supervisor and threading.active_count() == 1
        with open(os.path.join(self.cdir(c.id), "shim.log"), "ab") as log:
            if forked:
                _fork_shim(shim_args, pass_fds, log.fileno(), env["PYTHONPATH"], self.on_exit)
            else:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "dockweb.runtime.shim", *shim_args],
                    pass_fds=pass_fds,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    env=env,
                    cwd="/",
                )
                pid = proc.pid
        os.close(w)
        if attach is not None:
            attach.close()  # the supervisor's now
        if not forked:
            os.waitpid(pid, 0)  # the supervisor forks and its first process exits at once
        crashpoint("container.start.spawned")
        chunks = []
        with os.fdopen(r, "rb") as f:
            while True:
                chunk = f.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        data = b"".join(chunks).strip()
        if not data:
            tail = _read_text(os.path.join(self.cdir(c.id), "shim.log"))[-2000:]
            return {"error": f"supervisor failed: {tail.strip() or 'no output'}"}
        return json.loads(data)

    def run(
        self,
        spec: ContainerSpec,
        *,
        detach: bool,
        on_output: Callable[[str, str], None] | None = None,
    ) -> int | Container:
        """create + start; with ``detach`` the Container, else wait and return its exit
        code. A start failure raises ContainerStartError (``exit_code`` 125/126/127; with
        ``auto_remove`` the container is removed first, as ``docker run --rm`` does).

        Without ``detach``, ``on_output(stream, text)`` receives every log line as it is
        written ("attached" output), even for an ``auto_remove`` container that is gone by
        the time it returns: the log and the supervisor's lock are opened before the start.
        """
        c = self.create(spec)
        cdir = self.cdir(c.id)
        log = open(os.path.join(cdir, "container.log"), "rb")
        lock_fd = os.open(os.path.join(cdir, "shim.lock"), os.O_RDONLY)
        try:
            try:
                self.start(c.id)
            except ContainerStartError:
                if spec.auto_remove:
                    with contextlib.suppress(DockwebError):
                        self.remove(c.id, force=True, volumes=True)
                raise
            if detach:
                return self.get(c.id)
            if on_output is None:
                # the supervisor holds its lock until it is done; with --rm the container
                # may be gone by then, but the final state is in the lock file, open here
                fcntl.flock(lock_fd, fcntl.LOCK_SH)
            else:

                def entry(line: bytes):
                    try:
                        d = json.loads(line)
                    except ValueError:
                        return None
                    return d["stream"], d["log"], d["time"]

                for stream, text, _ in _read_log(
                    log, entry, None, lambda: _lock_held(lock_fd)
                ):
                    on_output(stream, text)
            data = os.pread(lock_fd, 65536, 0)
            if data.strip():
                return int(json.loads(data)["exit_code"])
            return self.wait(c.id)
        finally:
            log.close()
            os.close(lock_fd)

    # -- wait / stop / kill ---------------------------------------------------------------

    def wait(self, ref: str, timeout: float | None = None) -> int:
        """Block until the container is not running; return its exit code (Docker's
        ``wait`` with condition not-running: a created container returns at once).
        Works with ``auto_remove``: the supervisor leaves the final state in its lock file."""
        c = self.get(ref)
        if not c.status.is_active:
            return c.state.exit_code
        try:
            fd = os.open(os.path.join(self.cdir(c.id), "shim.lock"), os.O_RDONLY)
        except FileNotFoundError:
            return self.get(c.id).state.exit_code
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"wait {c.id}: still running") from None
                    time.sleep(0.02)
            data = os.pread(fd, 65536, 0)
        finally:
            os.close(fd)
        if data.strip():
            return int(json.loads(data)["exit_code"])
        return self._reconciled_state(c.id).exit_code

    def _cancel_restart(self, cid: str) -> None:
        """Stop a supervisor waiting to restart the container: it sees the state change and
        leaves; the container stays exited."""
        with self._state_lock(cid):
            st = self.read_state(cid)
            if st.status is Status.RESTARTING:
                st.status = Status.EXITED
            st.manual_stop = True
            self.write_state(cid, st, durable=False)
        self._wait_stopped(cid, 10)

    def _wait_stopped(self, cid: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.shim_alive(cid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _signal(self, c: Container, sig: int) -> None:
        proc = subprocess.run(self._rt("kill", c.id, str(sig)), capture_output=True, text=True)
        if proc.returncode != 0 and self.shim_alive(c.id):
            # runc refuses to signal a process it considers stopped; fall back to the pid
            with contextlib.suppress(ProcessLookupError):
                if c.state.pid:
                    os.kill(c.state.pid, sig)

    def stop_timeout(self, ref: str) -> int:
        """The seconds ``stop`` waits when not told: ``--stop-timeout``, else 10."""
        c = self.get(ref)
        return 10 if c.spec.stop_timeout is None else c.spec.stop_timeout

    def stop(self, ref: str, timeout: int | None = 10) -> None:
        """Send the container's stop signal (``--stop-signal``, else the image's StopSignal,
        else SIGTERM), then SIGKILL after ``timeout`` seconds (None or negative: wait
        forever). A stopped container is left as it is. A paused container is signalled,
        then thawed so the signal is delivered."""
        c = self.get(ref)
        if c.status is Status.RESTARTING:  # between two runs: no process, a cancel
            self._cancel_restart(c.id)
            return
        # no restart after this, even one its supervisor is starting right now (the new
        # supervisor sees the mark and runs nothing)
        self.update_state(c.id, durable=False, manual_stop=True)
        if not c.status.can_stop():
            return
        stop_signal = c.spec.stop_signal or (
            self.store.get_image(c.image_id).config.get("config") or {}
        ).get("StopSignal") or "SIGTERM"
        sig = parse_signal(stop_signal)
        self._signal(c, sig)
        if c.status is Status.PAUSED:
            self._resume(c)
        if timeout is None or timeout < 0:
            while self.shim_alive(c.id):
                time.sleep(0.05)
            return
        if self._wait_stopped(c.id, timeout):
            return
        self._signal(c, signals.SIGKILL)
        if not self._wait_stopped(c.id, 30):
            raise ContainerConflict(f"Container {c.id} did not stop after SIGKILL")

    def restart(self, ref: str, timeout: int | None = 10) -> None:
        c = self.get(ref)
        self.stop(c.id, timeout)
        self.start(c.id)

    def kill(self, ref: str, signal: str | int = "KILL") -> None:
        """Send a signal. Docker's "Cannot kill container: x: Container <id> is not running"
        when nothing runs. With SIGKILL, returns once the container has exited."""
        sig = parse_signal(signal)  # first, as dockerd's router parses it before the lookup
        try:
            c = self.get(ref)
        except ContainerNotFound as e:
            raise ContainerNotFound(f"Cannot kill container: {ref}: {e}") from None
        if not c.status.can_kill():
            raise ContainerNotRunning(
                f"Cannot kill container: {ref}: Container {c.id} is not running"
            )
        if c.status is Status.RESTARTING:
            raise ContainerConflict(
                f"Cannot kill container: {ref}: Container {c.id} is restarting, wait until "
                "the container is running"
            )
        self.update_state(c.id, durable=False, manual_stop=True)
        self._signal(c, sig)
        if c.status is Status.PAUSED and sig == signals.SIGKILL:
            self._resume(c)
        if sig == signals.SIGKILL:
            self._wait_stopped(c.id, 30)

    # -- pause ----------------------------------------------------------------------------

    def pause(self, ref: str) -> None:
        """Freeze every process of the container (cgroup freezer)."""
        c = self.get(ref)
        if c.status is Status.PAUSED:
            raise ContainerConflict(f"Container {c.id} is already paused")
        if not c.status.can_pause():
            raise ContainerNotRunning(f"Container {c.id} is not running")
        with self._state_lock(c.id):
            proc = subprocess.run(self._rt("pause", c.id), capture_output=True, text=True)
            if proc.returncode != 0:
                raise ContainerConflict(f"Cannot pause container {c.id}: {_rt_error(proc.stderr)}")
            st = self.read_state(c.id)
            if st.status is Status.RUNNING:
                st.status = Status.PAUSED
                self.write_state(c.id, st)

    def _resume(self, c: Container) -> None:
        with self._state_lock(c.id):
            subprocess.run(self._rt("resume", c.id), capture_output=True, text=True)
            st = self.read_state(c.id)
            if st.status is Status.PAUSED:
                st.status = Status.RUNNING
                self.write_state(c.id, st)

    def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if not c.status.can_unpause():
            raise ContainerConflict(f"Container {c.id} is not paused")
        with self._state_lock(c.id):
            proc = subprocess.run(self._rt("resume", c.id), capture_output=True, text=True)
            if proc.returncode != 0:
                raise ContainerConflict(
                    f"Cannot unpause container {c.id}: {_rt_error(proc.stderr)}"
                )
            st = self.read_state(c.id)
            if st.status is Status.PAUSED:
                st.status = Status.RUNNING
                self.write_state(c.id, st)

    # -- remove ---------------------------------------------------------------------------

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        """Remove a stopped container (``force`` kills a running one first): its rootfs
        mount, writable layer, logs and record. Named volumes always survive; anonymous ones
        are removed with ``volumes`` (``docker rm -v``). Raises ContainerConflict with Docker's
        message for a running or paused container without ``force``."""
        c = self.get(ref)
        if not c.status.can_remove(force):
            if c.status is Status.PAUSED:
                raise ContainerConflict(
                    f"You cannot remove a paused container {c.id}. Unpause and then stop the "
                    "container before attempting removal or force remove"
                )
            if c.status is Status.REMOVING:
                raise ContainerConflict(f"removal of container {c.id} is already in progress")
            if c.status is Status.RESTARTING:
                raise ContainerConflict(
                    f"You cannot remove a restarting container {c.id}. Stop the container "
                    "before attempting removal or force remove"
                )
            raise ContainerConflict(
                f"You cannot remove a running container {c.id}. Stop the container before "
                "attempting removal or force remove"
            )
        if c.status is Status.RESTARTING:
            self._cancel_restart(c.id)
        elif c.status.is_active:
            self.kill(c.id, "KILL")
        with self.store.locked():
            with contextlib.suppress(ContainerNotFound):
                self.update_state(c.id, status=Status.REMOVING, durable=False)
            self._destroy(c.id, c.mounts, volumes=volumes)

    def _destroy(self, cid: str, mounts: list[dict], *, volumes: bool) -> None:
        if os.path.exists(os.path.join(self.runtime_root, cid)):  # else deleted already
            subprocess.run(self._rt("delete", "--force", cid), capture_output=True)
        self._unmount_rootfs(cid)
        cdir = self.cdir(cid)
        if os.path.isdir(cdir):
            doomed = os.path.join(self.dir, f".removing-{cid}")
            os.rename(cdir, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        link = os.path.join(self.store.links_dir, "C" + cid[:25].upper())
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        if volumes:
            for m in mounts:
                if m["type"] == "volume" and m["anonymous"]:
                    with contextlib.suppress(DockwebError):
                        self.volumes.remove(m["name"])

    # -- reconcile ------------------------------------------------------------------------

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

        Returns what it changed: container IDs ``removed`` and ``stopped`` (runtime state or
        processes cleared, state repaired), volume names ``emptied``, temporary ``files``.
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
                elif _HEX64.match(entry) and entry not in complete:
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
                    if _HEX64.match(cid) and cid not in complete:
                        subprocess.run(self._rt("delete", "--force", cid), capture_output=True)
                        report["removed"].append(cid)
            report["emptied"] = self.volumes.reconcile()
        report["removed"] = sorted(set(report["removed"]))
        return report

    def _remove_temp_files(self, cid: str) -> list[str]:
        """``<name>.json.<pid>.<hex>`` left by a writer that died before its rename, and the
        creation's ``create.json`` left after the record was written."""
        removed = []
        cdir = self.cdir(cid)
        for d in (cdir, os.path.join(cdir, "bundle")):
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(d):
                    m = _TEMP_JSON.match(name)
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

    # -- logs -----------------------------------------------------------------------------

    def logs(
        self,
        ref: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        timestamps: bool = False,
        since: str | float | None = None,
        until: float | None = None,
    ) -> Iterator[tuple[str, str, str]]:
        """Yield (stream, text, time) from the json-file log. ``text`` keeps its newline;
        with ``timestamps`` it is prefixed by the time and a space (as ``docker logs -t``).
        ``follow`` keeps reading until the container stops. ``since`` and ``until`` (Unix
        seconds) keep the entries written from and up to then; ``until`` also ends a
        follow once it has passed, as dockerd's."""
        c = self.get(ref)
        path = os.path.join(self.cdir(c.id), "container.log")
        since_dt = None
        if since is not None:
            since_dt = (
                datetime.fromtimestamp(float(since), UTC)
                if isinstance(since, (int, float))
                else parse_time(since)
            )

        def entry(line: bytes):
            try:
                d = json.loads(line)
            except ValueError:
                return None
            if since_dt is not None and parse_time(d["time"]) < since_dt:
                return None
            if until is not None and parse_time(d["time"]).timestamp() > until:
                return None
            text = d["log"]
            if timestamps:
                text = f"{d['time']} {text}"
            return d["stream"], text, d["time"]

        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return
        with f:
            yield from _read_log(
                f,
                entry,
                tail,
                lambda: follow
                and (until is None or time.time() <= until)
                and self.shim_alive(c.id),
            )

    # -- inspection -----------------------------------------------------------------------

    def diff(self, ref: str) -> list[tuple[str, str]]:
        """Changes of the writable layer as ``docker diff`` lists them (moby archive
        ``changes`` with overlay deletions): whiteouts and opaque dirs are D, an entry in the
        writable layer that exists in a lower layer is C (unless it is a directory whose size,
        mode and mtime are unchanged), anything else A; the parent of an A or D is C."""
        c = self.get(ref)
        upper = os.path.join(self.cdir(c.id), "upper")
        lowers = self._lower_dirs(c)
        changes: list[tuple[str, str]] = []
        changed_dirs: set[str] = set()

        def walk(rel: str) -> None:
            try:
                names = sorted(os.listdir(os.path.join(upper, rel.lstrip("/"))))
            except NotADirectoryError:
                return
            for name in names:
                path = f"{rel.rstrip('/')}/{name}"
                full = os.path.join(upper, path.lstrip("/"))
                st = os.lstat(full)
                kind = ""
                is_dir = stat.S_ISDIR(st.st_mode)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    kind = "D"
                elif is_dir and _is_opaque(full):
                    kind = "D"
                if not kind:
                    kind = "A"
                    skip = False
                    for layer in lowers:
                        try:
                            lst = os.stat(os.path.join(layer, path.lstrip("/")))
                        except OSError:
                            continue
                        if (
                            stat.S_ISDIR(lst.st_mode)
                            and is_dir
                            and (
                                lst.st_size == st.st_size
                                and lst.st_mode == st.st_mode
                                and _same_fs_time(lst.st_mtime_ns, st.st_mtime_ns)
                            )
                        ):
                            skip = True
                        kind = "C"
                        break
                    if skip:
                        if is_dir:
                            walk(path)
                        continue
                if is_dir:
                    changed_dirs.add(path)
                # every unrecorded ancestor is reported as changed, outermost first (what
                # `docker diff` prints on overlay2: "C /etc" for a changed /etc/passwd)
                tail = []
                parent = os.path.dirname(path)
                while parent != "/":
                    if parent not in changed_dirs:
                        tail.insert(0, ("C", parent))
                        changed_dirs.add(parent)
                    parent = os.path.dirname(parent)
                changes.extend(tail)
                changes.append((kind, path))
                if is_dir:
                    walk(path)

        walk("/")
        return changes

    def size(self, ref: str) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): the writable layer's size as moby's directory.Size counts
        it, and that plus the image's size."""
        c = self.get(ref)
        rw = dir_size(os.path.join(self.cdir(c.id), "upper"))
        return rw, rw + self.store.image_size(self.store.get_image(c.image_id))

    def _cgroup_dir(self, pid: int, controller: str) -> str | None:
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                for line in f:
                    _, ctrls, path = line.rstrip("\n").split(":", 2)
                    if controller in ctrls.split(","):
                        base = f"/sys/fs/cgroup/{controller}"
                        if not os.path.isdir(base):
                            base = f"/sys/fs/cgroup/{ctrls}"
                        return base + path
        except OSError:
            return None
        return None

    def pids(self, ref: str) -> list[int]:
        """The container's processes (from its pids cgroup), init first."""
        c = self.get(ref)
        if not c.status.is_active or not c.state.pid:
            return []
        cg = self._cgroup_dir(c.state.pid, "pids")
        out = []
        if cg:
            with contextlib.suppress(OSError):
                with open(os.path.join(cg, "cgroup.procs")) as f:
                    out = [int(x) for x in f.read().split()]
        if c.state.pid in out:
            out.remove(c.state.pid)
            out.insert(0, c.state.pid)
        return out or [c.state.pid]

    def stats(self, ref: str, interval: float = 0.2) -> dict:
        """One ``docker stats --no-stream`` sample from the cgroup v1 files:
        ``{cpu_usage_ns, cpu_percent, memory_usage, memory_limit, memory_percent, pids}``.
        cpu_percent is measured over ``interval`` seconds, as Docker's
        (container delta / system delta * online CPUs * 100)."""
        c = self.get(ref)
        if not c.status.is_active:
            raise ContainerNotRunning(f"Container {c.id} is not running")
        pid = c.state.pid
        cpu = self._cgroup_dir(pid, "cpuacct")
        mem = self._cgroup_dir(pid, "memory")
        pids_dir = self._cgroup_dir(pid, "pids")

        def cpu_usage() -> int:
            return int(_read_text(os.path.join(cpu, "cpuacct.usage")) or 0) if cpu else 0

        def system_usage() -> int:
            with open("/proc/stat") as f:
                fields = f.readline().split()[1:8]
            return sum(int(x) for x in fields) * 10_000_000  # USER_HZ ticks to ns

        c1, s1 = cpu_usage(), system_usage()
        time.sleep(interval)
        c2, s2 = cpu_usage(), system_usage()
        online = os.cpu_count() or 1
        percent = (c2 - c1) / (s2 - s1) * online * 100.0 if s2 > s1 and c2 >= c1 else 0.0
        usage = int(_read_text(os.path.join(mem, "memory.usage_in_bytes")) or 0) if mem else 0
        limit = int(_read_text(os.path.join(mem, "memory.limit_in_bytes")) or 0) if mem else 0
        inactive = 0
        if mem:
            for line in _read_text(os.path.join(mem, "memory.stat")).splitlines():
                k, _, v = line.partition(" ")
                if k == "total_inactive_file":
                    inactive = int(v)
        usage = max(usage - inactive, 0)
        try:
            import psutil

            host_mem = psutil.virtual_memory().total
        except Exception:  # noqa: BLE001 - psutil is optional here
            host_mem = limit
        if not limit or limit > host_mem:
            limit = host_mem
        npids = int(_read_text(os.path.join(pids_dir, "pids.current")) or 0) if pids_dir else 0
        return {
            "id": c.id,
            "name": c.name,
            "cpu_usage_ns": c2,
            "cpu_percent": percent,
            "memory_usage": usage,
            "memory_limit": limit,
            "memory_percent": usage / limit * 100.0 if limit else 0.0,
            "pids": npids,
        }

    def top(self, ref: str, ps_args: str = "-ef") -> tuple[list[str], list[list[str]]]:
        """``docker top``: the host's ``ps`` output restricted to the container's processes
        (titles, rows), as moby's ContainerTop: ``ps ARGS -q PIDS`` first, plain ``ps ARGS``
        if ps refuses that, rows split on ASCII whitespace with the overhang joined into
        the last column. A ps failure is its first line of stderr ("ps: error: ...")."""
        ps_args = ps_args or "-ef"
        for key, value in re.findall(r"\s+([^\s]*)=\s*(PID[^\s]*)", ps_args):
            if key != "pid":  # renaming a column to PID would fool the filter below
                raise InvalidContainerSpec(f'specifying "{key}={value}" is not allowed')
        c = self.get(ref)
        if not c.status.is_active:
            raise ContainerNotRunning(f"Container {c.id} is not running")
        pids = self.pids(c.id)
        args = ["ps", *ps_args.split(" ")]
        ps = subprocess.run([*args, "-q", ",".join(map(str, pids))], capture_output=True)
        if ps.returncode != 0:  # some options (f) do not go with q
            ps = subprocess.run(args, capture_output=True)
            if ps.returncode != 0:
                why = ps.stderr.decode(errors="replace").split("\n", 1)[0]
                raise DockwebError(f"ps: {why or f'exit status {ps.returncode}'}")
        return parse_ps(ps.stdout.decode(errors="replace"), set(pids))

    def scope(self, ref: str):
        """The container and its file system as its processes see it (``copy.Scope``): the
        root file system mounted, with its volumes and bind mounts (``docker cp``)."""
        from dockweb.runtime.copy import Scope

        c = self.get(ref)
        cdir = self.cdir(c.id)
        files = [  # the files every container gets bind-mounted, as dockerd's
            {"destination": f"/etc/{name}", "source": os.path.join(cdir, name), "rw": True}
            for name in ("hostname", "hosts", "resolv.conf")
            if os.path.exists(os.path.join(cdir, name))
        ]
        return c, Scope(self.mount_rootfs(c), [*c.mounts, *files])

    def export(self, ref: str, out: BinaryIO) -> None:
        """Write the container's merged root filesystem as a tar stream (``docker export``):
        owners numeric, entries relative to ``/``, without the volumes and bind mounts."""
        c = self.get(ref)
        rootfs = self.mount_rootfs(c)
        import tarfile  # here: 4 ms of every `run`'s start-up otherwise

        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for dirpath, dirnames, filenames in os.walk(rootfs):
                dirnames.sort()
                for name in sorted(dirnames) + sorted(filenames):
                    full = os.path.join(dirpath, name)
                    arc = os.path.relpath(full, rootfs)
                    info = tar.gettarinfo(full, arcname=arc)
                    info.uname = info.gname = ""
                    if info.isreg():
                        with open(full, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)

    def _exec_command(
        self, ref: str, cmd: list[str], *, tty: bool, user: str, env, workdir: str
    ) -> tuple[Container, list[str], str]:
        """Check that ``ref`` can exec and build ``<runtime> ... exec`` options (without the
        container ID and command) and the path of the runtime's JSON log for this exec."""
        c = self.get(ref)
        if c.status is Status.PAUSED:
            raise ContainerConflict(f"Container {ref} is paused, unpause the container before exec")
        if not c.status.can_exec():
            raise ContainerNotRunning(f"Container {c.id} is not running")
        if not cmd:
            raise InvalidContainerSpec("No exec command specified")
        rootfs = self.mount_rootfs(c)
        cfg = self.store.get_image(c.image_id).config.get("config") or {}
        u = oci.resolve_user(rootfs, user or c.spec.user or cfg.get("User") or "")
        # docker exec -t sets TERM=xterm for the exec whatever the container's own tty
        base_env = oci.process_env(
            oci.merge_env(cfg.get("Env") or [], c.spec.env), c.hostname, c.spec.tty or tty
        )
        # The exec's whole process, as containerd hands it to the runtime: the container's
        # own (capabilities, rlimits, no_new_privileges, ...) with the command, env, cwd,
        # terminal and user replaced. The runtimes' --user would keep the container's
        # supplementary groups (root's 0) for another user; docker's exec has only the
        # user's own.
        with open(os.path.join(self.cdir(c.id), "bundle", "config.json"), "rb") as f:
            process = json.load(f)["process"]
        process.pop("consoleSize", None)
        process["terminal"] = tty
        process["args"] = list(cmd)
        process["env"] = oci.merge_env(base_env, list(env))
        if workdir or c.spec.workdir or cfg.get("WorkingDir"):
            process["cwd"] = workdir or c.spec.workdir or cfg.get("WorkingDir")
        process["user"] = {"uid": u.uid, "gid": u.gid}
        if u.additional_gids:
            process["user"]["additionalGids"] = list(u.additional_gids)
        token = secrets.token_hex(4)
        log = os.path.join(self.cdir(c.id), f"exec-{token}.log")
        spec = log[: -len(".log")] + ".json"  # both go in _drop_exec_files
        _write_json_atomic(spec, process, durable=False)
        return (
            c,
            [
                self.runtime,
                "--root",
                self.runtime_root,
                "--log",
                log,
                "--log-format",
                "json",
                "exec",
                "--process",
                spec,
            ],
            log,
        )

    def existing_paths(self, ref: str, paths: list[str]) -> list[str]:
        """Those of ``paths`` (absolute) that exist in the container's filesystem, in the
        given order, read from its writable layer and its image's layers (top first, a
        whiteout hides what is below) without mounting anything. A symlink counts as
        present. For offering only the shells an image has."""
        c = self.get(ref)
        layers = [os.path.join(self.cdir(c.id), "upper"), *self._lower_dirs(c)]
        found = []
        for path in paths:
            rel = path.lstrip("/")
            for layer in layers:
                try:
                    st = os.lstat(os.path.join(layer, rel))
                except OSError:
                    continue
                if not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):  # not a whiteout
                    found.append(path)
                break
        return found

    def exec_start(
        self,
        ref: str,
        cmd: list[str],
        *,
        tty: bool = False,
        interactive: bool = False,
        user: str = "",
        env: list[str] | tuple = (),
        workdir: str = "",
    ) -> ExecProcess:
        """Start ``cmd`` in the running container and return at once with a handle to pump
        its I/O and wait for it (``docker exec -d`` plus an attach).

        With ``tty`` the runtime runs ``exec --detach --tty --console-socket``: the pty's
        master arrives here over the socket (SCM_RIGHTS) and is ``handle.master``, on which
        ``resize`` sets the window size; the command's parent is a small subreaper
        (``dockweb.runtime.execreaper``) that reports its exit code. Without ``tty`` the
        runtime runs in the foreground and ``handle.stdin`` (a pipe with ``interactive``,
        else /dev/null), ``handle.stdout`` and ``handle.stderr`` are pipes.

        Raises what ``exec`` raises; with ``tty`` a runtime failure is raised here, without
        it by ``wait()`` (the foreground runtime reports it when it exits)."""
        c, rt, log = self._exec_command(ref, cmd, tty=tty, user=user, env=env, workdir=workdir)
        if not tty:
            proc = subprocess.Popen(
                [*rt, c.id, *cmd],
                stdin=subprocess.PIPE if interactive else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            return ExecProcess(proc, pid=proc.pid, log=log)
        sock_dir = tempfile.mkdtemp(prefix="dwx-", dir="/tmp")
        sock_path = os.path.join(sock_dir, "c.sock")
        pid_file = os.path.join(sock_dir, "pid")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(sock_path)
            sock.listen(1)
            helper = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dockweb.runtime.execreaper",
                    "--pid-file",
                    pid_file,
                    "--",
                    *rt,
                    "--detach",
                    "--tty",
                    "--console-socket",
                    sock_path,
                    "--pid-file",
                    pid_file,
                    c.id,
                    *cmd,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                env=_with_pythonpath(os.environ),
                cwd="/",
            )
            # the runtime sends the master before it exits, and the helper speaks only then
            first = json.loads(helper.stdout.readline() or b'{"error": "helper died"}')
            if "error" in first:
                helper.wait()
                err = _log_error(log) or first["error"]
                _drop_exec_files(log)
                raise _exec_failed(err)
            sock.settimeout(5)
            master = _recv_fd(sock)
        finally:
            sock.close()
            shutil.rmtree(sock_dir, ignore_errors=True)
        _drop_exec_files(log)
        return ExecProcess(helper, pid=first["pid"], master=master)

    def exec_detached(
        self, ref: str, cmd: list[str], *, user: str = "", env=(), workdir: str = ""
    ) -> None:
        """``docker exec -d``: start the command and return; its output goes nowhere, as
        with dockerd (nothing attaches). Raises what ``exec`` raises if it cannot start."""
        c, rt, log = self._exec_command(ref, cmd, tty=False, user=user, env=env, workdir=workdir)
        try:
            # the command inherits the runtime's stdio: all /dev/null, or a pipe of ours
            # would stay open (and be waited for) as long as the command runs
            proc = subprocess.run(
                [*rt, "--detach", c.id, *cmd],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            err = _log_error(log) or f"exit status {proc.returncode}"
        finally:
            _drop_exec_files(log)
        if proc.returncode != 0:
            raise _exec_failed(err)

    def exec(
        self,
        ref: str,
        cmd: list[str],
        *,
        tty: bool = False,
        interactive: bool = False,
        user: str = "",
        env: list[str] | tuple = (),
        workdir: str = "",
        stdin=None,
        stdout=None,
        stderr=None,
    ) -> int:
        """Run ``cmd`` in the running container and return its exit code. ``stdin``,
        ``stdout``, ``stderr`` are passed to the process (file objects or fds; None: this
        process's own). Raises ContainerNotRunning / ContainerConflict (paused) with Docker's
        messages, or ContainerStartError (exit code 126, as ``docker exec``) when the
        runtime cannot start the command.

        With ``tty`` the command gets a pty (``exec_start``) and this copies ``stdin`` (only
        with ``interactive``) to it and its output to ``stdout`` until it exits; the local
        terminal's mode is left alone (the CLI sets raw mode and forwards resizes itself)."""
        if tty:
            handle = self.exec_start(
                ref, cmd, tty=True, interactive=interactive, user=user, env=env, workdir=workdir
            )
            return handle.proxy(_fileno(stdin, 0) if interactive else None, _fileno(stdout, 1))
        c, rt, log = self._exec_command(ref, cmd, tty=False, user=user, env=env, workdir=workdir)
        try:
            proc = subprocess.run(
                [*rt, c.id, *cmd],
                stdin=stdin if stdin is not None else (None if interactive else subprocess.DEVNULL),
                stdout=stdout,
                stderr=stderr,
            )
            err = _log_error(log)
        finally:
            _drop_exec_files(log)
        if proc.returncode != 0 and err:
            raise _exec_failed(err)
        return proc.returncode


class ExecProcess:
    """A command started by ``ContainerManager.exec_start``.

    ``pid``: the command's host pid (tty) or the foreground runtime's (no tty). ``master``:
    the pty's master fd (tty only; owned by the handle, closed by ``close``). ``stdin``,
    ``stdout``, ``stderr``: pipes (no tty only; stdin is None without ``interactive``).
    Closing the master hangs the pty up, which sends the shell SIGHUP, as closing a
    terminal window does."""

    def __init__(
        self, proc: subprocess.Popen, *, pid: int, master: int | None = None, log: str = ""
    ):
        self._proc = proc
        self._log = log
        self._exit_code: int | None = None
        self.pid = pid
        self.master = master
        self.tty = master is not None
        self.stdin = None if self.tty else proc.stdin
        self.stdout = None if self.tty else proc.stdout
        self.stderr = None if self.tty else proc.stderr

    def resize(self, cols: int, rows: int) -> None:
        """Set the pty's window size (TIOCSWINSZ; the kernel sends SIGWINCH to its
        foreground process group). Does nothing without a tty or after ``close``."""
        if self.master is None or cols <= 0 or rows <= 0:
            return
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def poll(self) -> int | None:
        """The exit code if the command has ended, else None (never blocks)."""
        if self._exit_code is None and self._proc.poll() is not None:
            self.wait()
        return self._exit_code

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the command; its exit code as ``docker exec`` gives it (128 + signal
        when killed). Raises TimeoutError, or ContainerStartError (126) when the runtime
        could not start it (no tty: it says so only when it exits)."""
        if self._exit_code is not None:
            return self._exit_code
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"exec {self.pid}: still running") from None
        if self.tty:
            code = 255
            for line in self._proc.stdout.read().splitlines():
                with contextlib.suppress(ValueError, KeyError):
                    code = int(json.loads(line)["exit_code"])
            self._proc.stdout.close()
        else:
            code = self._proc.returncode
            err = _log_error(self._log)
            _drop_exec_files(self._log)
            if code != 0 and err:
                self._exit_code = 126
                raise _exec_failed(err)
        self._exit_code = code
        return code

    def kill(self, sig: int = signals.SIGKILL) -> None:
        """Signal the command (tty) or the foreground runtime, which forwards it. Gone: no-op."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def close(self) -> None:
        """Release the pty master (hanging the terminal up) or the pipes. Idempotent."""
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = None
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()

    def proxy(
        self,
        in_fd: int | None,
        out_fd: int,
        *,
        on_wakeup: Callable[[], None] | None = None,
        wakeup_fd: int | None = None,
    ) -> int:
        """Copy ``in_fd`` (None: nothing) to the pty and the pty to ``out_fd`` until the
        command ends; close the handle and return its exit code. ``wakeup_fd``: readable
        when ``on_wakeup`` should run (the CLI's SIGWINCH self-pipe)."""
        assert self.master is not None, "proxy needs a tty exec"
        watched = [self.master]
        if in_fd is not None:
            watched.append(in_fd)
        if wakeup_fd is not None:
            watched.append(wakeup_fd)
        try:
            while True:
                ready, _, _ = select.select(watched, [], [], 0.5)
                if self.master in ready:
                    try:
                        data = os.read(self.master, 65536)
                    except OSError:  # EIO: every slave fd is closed, the command is gone
                        data = b""
                    if not data:
                        break
                    frames.write_all(out_fd, data)
                if in_fd is not None and in_fd in ready:
                    data = os.read(in_fd, 65536)
                    if not data:  # our input ended: send EOF as a terminal does (^D)
                        watched.remove(in_fd)
                        in_fd = None
                        frames.write_all(self.master, b"\x04")
                    else:
                        frames.write_all(self.master, data)
                if wakeup_fd is not None and wakeup_fd in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wakeup_fd, 512)
                    if on_wakeup:
                        on_wakeup()
                if not ready and self.poll() is not None:
                    break
        finally:
            self.close()
        return self.wait()


# -- helpers shared with the supervisor -----------------------------------------------------


def _fork_shim(
    shim_args: list[str],
    pass_fds: list[int],
    log_fd: int,
    pythonpath: str,
    on_exit: Callable[[str], None] | None = None,
) -> int:
    """``python -m dockweb.runtime.shim *shim_args`` as a fork of this process (its modules
    are loaded already): the child gets what the Popen would give it (own session, cwd /,
    stdin /dev/null, stdout and stderr to ``log_fd``, no other descriptor than ``pass_fds``,
    PYTHONPATH for the exit command) and never returns into the caller's code. Only from a
    single-threaded process. The child is the supervisor itself (no second fork: the
    caller, the CLI, is short-lived, and init reaps the supervisor once the CLI is gone);
    returns its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        low = 3
        for fd in sorted(pass_fds):
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, os.sysconf("SC_OPEN_MAX"))
        os.environ["PYTHONPATH"] = pythonpath
        signals.signal(signals.SIGINT, signals.SIG_DFL)
        from dockweb.runtime import shim

        code = shim.main(shim_args, on_exit=on_exit, detach=False)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _read_log(f, entry, tail: int | None, more) -> Iterator[tuple[str, str, str]]:
    """Entries of an open json-file log; then, while ``more()``, new ones as they come."""
    lines = f.read().splitlines(keepends=True)
    pending = b""
    if lines and not lines[-1].endswith(b"\n"):
        pending = lines.pop()
    if tail is not None and tail >= 0:
        lines = lines[len(lines) - tail :] if tail else []
    for line in lines:
        e = entry(line)
        if e:
            yield e
    while True:
        chunk = f.read()
        if chunk:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                e = entry(line)
                if e:
                    yield e
            continue
        if not more():
            rest = f.read()
            if rest:
                pending += rest
                continue
            return
        time.sleep(0.05)


def _mounts_under(prefix: str) -> list[str]:
    try:
        with open("/proc/self/mountinfo") as f:
            targets = [line.split()[4] for line in f]
    except OSError:
        return []
    return [t for t in targets if t.startswith(prefix)]


def _file_size(path: str) -> int:
    """-1 when there is no such file."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return -1


def _lock_held(fd: int) -> bool:
    """True while another open file description holds a lock on the file behind ``fd``."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _filter_resolv(text: str) -> str:
    """Drop localhost nameservers (unreachable from a new netns); Google's if none is left,
    as Docker's resolvconf.FilterResolvDNS does."""
    lines = [ln for ln in text.splitlines() if not re.match(r"^\s*nameserver\s+(127\.|::1\b)", ln)]
    if not any(re.match(r"^\s*nameserver\s", ln) for ln in lines):
        lines += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    return "\n".join(lines).strip("\n") + "\n"


def _same_fs_time(a_ns: int, b_ns: int) -> bool:
    """moby's sameFsTime: equal, or the same second when either side lacks nanoseconds."""
    if a_ns == b_ns:
        return True
    return a_ns // 10**9 == b_ns // 10**9 and (a_ns % 10**9 == 0 or b_ns % 10**9 == 0)


def _is_opaque(path: str) -> bool:
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        with contextlib.suppress(OSError):
            if os.getxattr(path, attr, follow_symlinks=False) == b"y":
                return True
    return False


def _log_error(path: str) -> str:
    """The last error message of a runtime's JSON log (``--log-format json``)."""
    msg = ""
    for line in _read_text(path).splitlines():
        with contextlib.suppress(ValueError):
            d = json.loads(line)
            if d.get("level") == "error":
                msg = d.get("msg", "")
    return msg


def _with_pythonpath(environ) -> dict[str, str]:
    """``environ`` with this package importable (for ``python -m dockweb.runtime.*``)."""
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(environ)
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _recv_fd(sock: socket.socket) -> int:
    """Accept one connection on a console socket and return the fd it carries."""
    conn, _ = sock.accept()
    with conn:
        fds = array.array("i")
        _, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_LEN(fds.itemsize))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if not fds:
        raise ContainerStartError("OCI runtime exec failed: no console received: unknown", 126)
    return fds[0]


def _fileno(f, default: int) -> int:
    if f is None:
        return default
    return f if isinstance(f, int) else f.fileno()


def _rt_error(stderr: str) -> str:
    text = stderr.strip().splitlines()
    return text[-1] if text else "unknown error"


_CRUN_NOT_FOUND = re.compile(
    r"executable file `(?P<name>.*)` not found in \$PATH: No such file or directory"
)
_CRUN_NO_PERMISSION = "open executable: Permission denied"


def _docker_words(error: str, exec_: bool = False) -> str:
    """The runtime's start error in runc's words, which Docker prints and scripts match
    (``docker run``'s 127 and 126 come from them): crun says the same things otherwise."""
    prefix = "exec failed: " if exec_ else ""
    if m := _CRUN_NOT_FOUND.search(error):
        return (
            f"{prefix}unable to start container process: "
            f'exec: "{m["name"]}": executable file not found in $PATH'
        )
    if _CRUN_NO_PERMISSION in error:
        return f"{prefix}unable to start container process: exec: permission denied"
    return error


def _start_exit_code(message: str) -> int:
    """``docker run``'s exit code for a start error (docker/cli runStartContainerErr)."""
    if (
        "executable file not found" in message
        or "no such file or directory" in message
        or "system cannot find the file specified" in message
    ):
        return 127
    if "permission denied" in message:
        return 126
    return 125


_ASCII_SPACE = re.compile(r"[\t\n\v\f\r ]+")


def parse_ps(output: str, pids: set[int]) -> tuple[list[str], list[list[str]]]:
    """moby's parsePSOutput: the titles and the rows of ``pids``; a row has as many columns
    as there are titles, what overhangs joined with spaces into the last."""
    lines = output.split("\n")
    titles = _ASCII_SPACE.split(lines[0].strip(" \t\n\v\f\r")) if lines[0].strip() else []
    if "PID" not in titles:
        raise DockwebError("Couldn't find PID field in ps output")
    pid_col = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = _ASCII_SPACE.split(line.strip(" \t\n\v\f\r"))
        if not line or len(fields) <= pid_col or fields[pid_col] == "-":
            continue  # "-": a thread line of -L; moby never keeps those either
        try:
            pid = int(fields[pid_col])
        except ValueError:
            raise DockwebError(
                f"Unexpected pid '{fields[pid_col]}': strconv.Atoi: parsing "
                f'"{fields[pid_col]}": invalid syntax'
            ) from None
        if pid in pids:
            n = len(titles)
            rows.append(fields[: n - 1] + [" ".join(fields[n - 1 :])])
    return titles, rows
