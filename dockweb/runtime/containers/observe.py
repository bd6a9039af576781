"""Looking at a container without changing it: logs, diff, size, processes, stats, top,
its file system (``scope``, ``export``, ``existing_paths``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from dockweb.runtime import overlay
from dockweb.runtime.containers.state import read_text
from dockweb.runtime.errors import ContainerNotRunning, DockwebError, InvalidContainerSpec
from dockweb.runtime.store import parse_time
from dockweb.runtime.volumes import dir_size

# For type checkers only, without importing typing (4 ms of the CLI's fast run path)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO


class ObserveMixin:
    """``ContainerManager``'s logs, diff, size, pids, stats, top, scope, export."""

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
            yield from read_log(
                f,
                entry,
                tail,
                lambda: (
                    follow and (until is None or time.time() <= until) and self.shim_alive(c.id)
                ),
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
                if overlay.is_whiteout(st):
                    kind = "D"
                elif is_dir and overlay.is_opaque(full, userxattr=True):
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
        """The directory of ``pid``'s cgroup of ``controller`` (v1), or of its cgroup on a
        host with only the unified hierarchy (v2)."""
        unified = _unified_only()
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                for line in f:
                    _, ctrls, path = line.rstrip("\n").split(":", 2)
                    if unified and not ctrls and _ == "0":
                        return "/sys/fs/cgroup" + path
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

    def stats_sample(self, ref: str) -> dict:
        """One sample of a running container's cgroups in dockerd's types.Stats shape:
        ``read``, ``pids_stats``, ``blkio_stats``, ``num_procs``, ``storage_stats``,
        ``cpu_stats``, ``memory_stats``, as containerd reads them and dockerd's statsV1
        (cgroup v1) or statsV2 (a host with only the unified hierarchy) copies them; a
        memory limit above the machine's memory is the machine's. Raises
        ContainerNotRunning."""
        c = self.get(ref)
        if not c.status.is_active or not c.state.pid:
            raise ContainerNotRunning(f"Container {c.id} is not running")
        pid = c.state.pid
        read = time.time_ns()
        if _unified_only():
            return _sample_v2(read, self._cgroup_dir(pid, ""))
        return {
            "read": read,
            "pids_stats": _pids_stats(self._cgroup_dir(pid, "pids")),
            "blkio_stats": _blkio_stats(self._cgroup_dir(pid, "blkio")),
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": _cpu_stats(self._cgroup_dir(pid, "cpuacct"), self._cgroup_dir(pid, "cpu")),
            "memory_stats": _memory_stats(self._cgroup_dir(pid, "memory")),
        }

    def stats(self, ref: str, interval: float = 0.2) -> dict:
        """One ``docker stats --no-stream`` sample, from two ``stats_sample`` ``interval``
        seconds apart: ``{id, name, cpu_usage_ns, cpu_percent, memory_usage, memory_limit,
        memory_percent, pids}``, computed as the docker client does (CPU: container delta /
        system delta * online CPUs * 100; memory: usage less the inactive file cache)."""
        c = self.get(ref)
        first = self.stats_sample(c.id)
        time.sleep(interval)
        sample = self.stats_sample(c.id)
        cpu, pre = sample["cpu_stats"], first["cpu_stats"]
        c1, c2 = pre["cpu_usage"]["total_usage"], cpu["cpu_usage"]["total_usage"]
        s1, s2 = pre.get("system_cpu_usage", 0), cpu.get("system_cpu_usage", 0)
        online = cpu.get("online_cpus") or 1
        percent = (c2 - c1) / (s2 - s1) * online * 100.0 if s2 > s1 and c2 >= c1 else 0.0
        mem = sample["memory_stats"]
        raw, usage = mem.get("stats", {}), mem.get("usage", 0)
        inactive = raw.get("total_inactive_file", raw.get("inactive_file", 0))  # v1, v2
        usage = usage - inactive if inactive < usage else usage
        limit = mem.get("limit", 0)
        return {
            "id": c.id,
            "name": c.name,
            "cpu_usage_ns": c2,
            "cpu_percent": percent,
            "memory_usage": usage,
            "memory_limit": limit,
            "memory_percent": usage / limit * 100.0 if limit else 0.0,
            "pids": sample["pids_stats"].get("current", 0),
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
        return c, Scope(self.mount_rootfs(c), [*c.mounts, *files], read_only=bool(c.spec.read_only))

    def export(self, ref: str, out: BinaryIO) -> None:
        """Write the container's merged root filesystem as a tar stream (``docker export``):
        owners numeric with their names in the container's /etc/passwd and /etc/group (as
        dockerd's, which tars in a chroot), entries relative to ``/``, without the volumes
        and bind mounts."""
        c = self.get(ref)
        rootfs = self.mount_rootfs(c)
        import tarfile  # here: 4 ms of every `run`'s start-up otherwise

        from dockweb.runtime.copy import Scope, owner_names

        users, groups = owner_names(Scope(rootfs, []))
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for dirpath, dirnames, filenames in os.walk(rootfs):
                dirnames.sort()
                for name in sorted(dirnames) + sorted(filenames):
                    full = os.path.join(dirpath, name)
                    arc = os.path.relpath(full, rootfs)
                    info = tar.gettarinfo(full, arcname=arc)
                    info.uname, info.gname = users.get(info.uid, ""), groups.get(info.gid, "")
                    if info.isreg():
                        with open(full, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)

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
                if not overlay.is_whiteout(st):
                    found.append(path)
                break
        return found


# -- cgroup v1 files as libcontainer reads them and dockerd reports them ------------------

_USER_HZ = 100  # clock ticks a second, what cpuacct.stat and /proc/stat count in
_NS = 1_000_000_000


def _read_int(directory: str | None, name: str) -> int:
    if not directory:
        return 0
    text = read_text(os.path.join(directory, name)).strip()
    try:
        return int(text)
    except ValueError:
        return 0  # "max", missing


def _key_values(directory: str | None, name: str) -> dict[str, int]:
    out: dict[str, int] = {}
    if not directory:
        return out
    for line in read_text(os.path.join(directory, name)).splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def _pids_stats(directory: str | None) -> dict:
    out = {}
    current, limit = _read_int(directory, "pids.current"), _read_int(directory, "pids.max")
    if current:
        out["current"] = current
    if limit:
        out["limit"] = limit
    return out


_BLKIO_FILES = (  # dockerd's key, the CFQ file containerd reads for it
    ("io_service_bytes_recursive", "blkio.io_service_bytes_recursive"),
    ("io_serviced_recursive", "blkio.io_serviced_recursive"),
    ("io_queue_recursive", "blkio.io_queued_recursive"),
    ("io_service_time_recursive", "blkio.io_service_time_recursive"),
    ("io_wait_time_recursive", "blkio.io_wait_time_recursive"),
    ("io_merged_recursive", "blkio.io_merged_recursive"),
    ("io_time_recursive", "blkio.time_recursive"),
    ("sectors_recursive", "blkio.sectors_recursive"),
)


def _blkio_entries(directory: str | None, name: str) -> list[dict]:
    """``MAJ:MIN [Op] VALUE`` lines; the "Total" line skipped, as containerd."""
    out = []
    if not directory:
        return out
    for line in read_text(os.path.join(directory, name)).splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) < 3:
            continue
        with contextlib.suppress(ValueError):
            op, value = (fields[2], fields[3]) if len(fields) >= 4 else ("", fields[2])
            out.append(
                {"major": int(fields[0]), "minor": int(fields[1]), "op": op, "value": int(value)}
            )
    return out


def _blkio_stats(directory: str | None) -> dict:
    """containerd's cgroup v1 blkio stats: the CFQ files where the kernel has them, else
    the throttle files' bytes and operations (the other lists empty)."""
    if directory and os.path.exists(os.path.join(directory, "blkio.io_serviced_recursive")):
        return {key: _blkio_entries(directory, name) for key, name in _BLKIO_FILES}
    out: dict[str, list] = {key: [] for key, _ in _BLKIO_FILES}
    out["io_service_bytes_recursive"] = _blkio_entries(directory, "blkio.throttle.io_service_bytes")
    out["io_serviced_recursive"] = _blkio_entries(directory, "blkio.throttle.io_serviced")
    return out


def _system_cpu_usage() -> int:
    """dockerd's getSystemCPUUsage: the first seven fields of /proc/stat's cpu line, in ns."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * _NS // _USER_HZ


def _cpu_stats(cpuacct: str | None, cpu: str | None) -> dict:
    ticks = _key_values(cpuacct, "cpuacct.stat")
    percpu = []
    if cpuacct:
        with contextlib.suppress(ValueError):
            text = read_text(os.path.join(cpuacct, "cpuacct.usage_percpu"))
            percpu = [int(x) for x in text.split()]
    usage = {"total_usage": _read_int(cpuacct, "cpuacct.usage")}
    if percpu:
        usage["percpu_usage"] = percpu
    usage["usage_in_kernelmode"] = ticks.get("system", 0) * _NS // _USER_HZ
    usage["usage_in_usermode"] = ticks.get("user", 0) * _NS // _USER_HZ
    throttle = _key_values(cpu, "cpu.stat")
    return {
        "cpu_usage": usage,
        "system_cpu_usage": _system_cpu_usage(),
        "online_cpus": os.sysconf("SC_NPROCESSORS_ONLN"),
        "throttling_data": {
            "periods": throttle.get("nr_periods", 0),
            "throttled_periods": throttle.get("nr_throttled", 0),
            "throttled_time": throttle.get("throttled_time", 0),
        },
    }


def _unified_only() -> bool:
    """Whether the host has only cgroup v2 (its root is the unified hierarchy)."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


# the memory.stat keys dockerd 20.10 reports for cgroup v2 (containerd's v2 metrics)
_MEMORY_STAT_KEYS_V2 = (
    "anon file kernel_stack slab sock shmem file_mapped file_dirty file_writeback anon_thp "
    "inactive_anon active_anon inactive_file active_file unevictable slab_reclaimable "
    "slab_unreclaimable pgfault pgmajfault workingset_refault workingset_activate "
    "workingset_nodereclaim pgrefill pgscan pgsteal pgactivate pgdeactivate pglazyfree "
    "pglazyfreed thp_fault_alloc thp_collapse_alloc"
).split()


def _sample_v2(read: int, directory: str | None) -> dict:
    """dockerd's statsV2: CPU times from cpu.stat (no per-CPU figures), memory.current,
    memory.max and memory.stat's keys, memory.events' oom as failcnt, io.stat's read and
    write bytes as the only blkio list (the others null), pids.current and pids.max."""
    cpu = _key_values(directory, "cpu.stat")
    stat = _key_values(directory, "memory.stat")
    events = _key_values(directory, "memory.events")
    # "max" (no limit) is containerd's MaxUint64: above the machine's memory
    limit = _read_int(directory, "memory.max") or (1 << 64) - 1
    machine = _machine_memory()
    if machine and limit > machine:
        limit = machine
    memory = {
        "usage": _read_int(directory, "memory.current"),
        "stats": {key: stat.get(key, 0) for key in sorted(_MEMORY_STAT_KEYS_V2)},
        "failcnt": events.get("oom", 0),
        "limit": limit,
    }
    io = []
    if directory:
        for line in read_text(os.path.join(directory, "io.stat")).splitlines():
            device, *pairs = line.split() or [""]
            major, _, minor = device.partition(":")
            values = dict(p.split("=", 1) for p in pairs if "=" in p)
            with contextlib.suppress(ValueError):
                for op, key in (("read", "rbytes"), ("write", "wbytes")):
                    io.append(
                        {
                            "major": int(major),
                            "minor": int(minor),
                            "op": op,
                            "value": int(values.get(key, 0)),
                        }
                    )
    blkio: dict = dict.fromkeys(k for k, _ in _BLKIO_FILES)
    blkio["io_service_bytes_recursive"] = io or None
    return {
        "read": read,
        "pids_stats": _pids_stats(directory),
        "blkio_stats": blkio,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": {
            "cpu_usage": {
                "total_usage": cpu.get("usage_usec", 0) * 1000,
                "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000,
                "usage_in_usermode": cpu.get("user_usec", 0) * 1000,
            },
            "system_cpu_usage": _system_cpu_usage(),
            "online_cpus": os.sysconf("SC_NPROCESSORS_ONLN"),
            "throttling_data": {
                "periods": cpu.get("nr_periods", 0),
                "throttled_periods": cpu.get("nr_throttled", 0),
                "throttled_time": cpu.get("throttled_usec", 0) * 1000,
            },
        },
        "memory_stats": {k: v for k, v in memory.items() if v},
    }


def _machine_memory() -> int:
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


# the memory.stat keys dockerd 20.10 reports for cgroup v1 (containerd's v1 metrics)
_MEMORY_STAT_KEYS = (
    "cache rss rss_huge mapped_file dirty writeback pgpgin pgpgout pgfault pgmajfault "
    "inactive_anon active_anon inactive_file active_file unevictable "
    "hierarchical_memory_limit hierarchical_memsw_limit total_cache total_rss "
    "total_rss_huge total_mapped_file total_dirty total_writeback total_pgpgin "
    "total_pgpgout total_pgfault total_pgmajfault total_inactive_anon total_active_anon "
    "total_inactive_file total_active_file total_unevictable"
).split()


def _memory_stats(directory: str | None) -> dict:
    """dockerd's v1 MemoryStats (zero fields left out, as its omitempty)."""
    if not directory:
        return {}
    limit = _read_int(directory, "memory.limit_in_bytes")
    machine = _machine_memory()
    if machine and limit > machine:
        limit = machine
    stats = _key_values(directory, "memory.stat")
    out = {
        "usage": _read_int(directory, "memory.usage_in_bytes"),
        "max_usage": _read_int(directory, "memory.max_usage_in_bytes"),
        "stats": {key: stats.get(key, 0) for key in sorted(_MEMORY_STAT_KEYS)},
        "failcnt": _read_int(directory, "memory.failcnt"),
        "limit": limit,
    }
    return {k: v for k, v in out.items() if v}


def read_log(f, entry, tail: int | None, more) -> Iterator[tuple[str, str, str]]:
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


def _same_fs_time(a_ns: int, b_ns: int) -> bool:
    """moby's sameFsTime: equal, or the same second when either side lacks nanoseconds."""
    if a_ns == b_ns:
        return True
    return a_ns // 10**9 == b_ns // 10**9 and (a_ns % 10**9 == 0 or b_ns % 10**9 == 0)


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
