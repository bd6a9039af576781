"""The OCI runtime spec for a container, with Docker Engine's defaults (moby oci/defaults.go
and daemon/oci_linux.go).

Everything here is a pure function of its arguments, except `resolve_user`, which reads the
container's own ``/etc/passwd`` and ``/etc/group`` (never the host's), as Docker does.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from dockweb.runtime import seccomp as seccomp_profiles
from dockweb.runtime.errors import ContainerStartError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# moby oci/caps/defaults.go (the list 20.10 gives a non-privileged container)
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
]

READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]

# /dev/shm is 64m, as Docker's default ShmSize
SHM_SIZE = 64 * 1024 * 1024


def default_mounts(shm_size: int = 0) -> list[dict]:
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["ro", "nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size or SHM_SIZE}"],
        },
    ]


def _dev(kind: str, major: int | None, minor: int | None, access: str = "rwm") -> dict:
    return {"allow": True, "type": kind, "major": major, "minor": minor, "access": access}


# moby oci/defaults.go DefaultLinuxSpec().Linux.Resources.Devices
DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    _dev("c", 1, 5),  # /dev/zero
    _dev("c", 1, 3),  # /dev/null
    _dev("c", 1, 9),  # /dev/urandom
    _dev("c", 1, 8),  # /dev/random
    _dev("c", 5, 0),  # /dev/tty
    _dev("c", 5, 1),  # /dev/console
    _dev("c", 1, 7),  # /dev/full
    _dev("c", 136, None),  # /dev/pts/*
    _dev("c", 5, 2),  # /dev/ptmx
    _dev("c", 10, 200),  # /dev/net/tun
    _dev("c", None, None, "m"),  # mknod of any char device
    _dev("b", None, None, "m"),  # mknod of any block device
]

HOSTS_LOCAL = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@dataclass
class ExecUser:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"


def _read_db(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [ln.split(":") for ln in lines if ln.strip() and not ln.startswith("#")]


def resolve_user(rootfs: str, user: str) -> ExecUser:
    """Resolve ``user`` ("", "name", "uid", "name:group", "uid:gid") against the container's
    ``/etc/passwd`` and ``/etc/group`` as moby/sys/user GetExecUser does.

    Raises ContainerStartError (exit code 125) with Docker's message for an unknown name.
    The files are read through the (host-side) rootfs mount; symlinks inside the container
    are not followed outside it because only ``etc/passwd`` and ``etc/group`` are opened and
    an absolute link there would be read on the host: those are refused.
    """
    passwd = _read_db(in_root(rootfs, "/etc/passwd"))
    groups = _read_db(in_root(rootfs, "/etc/group"))
    name, _, group = user.partition(":")
    out = ExecUser()
    entry = None
    if name:
        for row in passwd:
            if len(row) >= 4 and (row[0] == name or (name.isdigit() and row[2] == name)):
                entry = row
                break
        if entry is None:
            if not name.isdigit():
                raise ContainerStartError(
                    f"unable to find user {name}: no matching entries in passwd file", 125
                )
            out.uid = int(name)
        else:
            out.uid, out.gid = int(entry[2]), int(entry[3])
            out.home = entry[5] if len(entry) > 5 else "/"
    if group:
        found = None
        for row in groups:
            if len(row) >= 3 and (row[0] == group or (group.isdigit() and row[2] == group)):
                found = row
                break
        if found is None:
            if not group.isdigit():
                raise ContainerStartError(
                    f"unable to find group {group}: no matching entries in group file", 125
                )
            out.gid = int(group)
        else:
            out.gid = int(found[2])
    elif entry is not None or not name:
        # supplementary groups: the groups that list the user as a member
        user_name = entry[0] if entry is not None else "root"
        for row in groups:
            if len(row) >= 4 and user_name in row[3].split(",") and row[2].isdigit():
                gid = int(row[2])
                if gid not in out.additional_gids:
                    out.additional_gids.append(gid)
    # moby's getUser (20.10.24, GHSA-hmfx-3pcx-653p): the primary group always comes first
    # among the supplementary groups, so `id` lists it in groups= as under Docker
    out.additional_gids.insert(0, out.gid)
    return out


def in_root(rootfs: str, path: str) -> str:
    """``path`` inside ``rootfs``, following symlinks as if ``rootfs`` were ``/``."""
    current = rootfs
    parts = [p for p in path.split("/") if p]
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if current != rootfs:
                current = os.path.dirname(current)
            continue
        if part == ".":
            continue
        nxt = os.path.join(current, part)
        if os.path.islink(nxt):
            hops += 1
            if hops > 40:
                return nxt
            target = os.readlink(nxt)
            if target.startswith("/"):
                current = rootfs
            parts = [p for p in target.split("/") if p] + parts
            continue
        current = nxt
    return current


def merge_env(base: list[str], over: list[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: ``over`` replaces same-key entries of ``base`` in
    place and appends the rest; an entry without ``=`` in ``over`` deletes the key."""
    out = list(base)
    keys = {e.split("=", 1)[0]: i for i, e in enumerate(out)}
    removed = set()
    for e in over:
        k = e.split("=", 1)[0]
        if "=" not in e:
            if k in keys:
                removed.add(keys[k])
            continue
        if k in keys and keys[k] not in removed:
            out[keys[k]] = e
        else:
            keys[k] = len(out)
            out.append(e)
    return [e for i, e in enumerate(out) if i not in removed]


def process_env(container_env: list[str], hostname: str, tty: bool) -> list[str]:
    """The process environment as moby's CreateDaemonEnvironment builds it."""
    defaults = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if tty:
        defaults.append("TERM=xterm")
    return merge_env(defaults, container_env)


ALL_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]


def host_capabilities() -> list[str]:
    """Every capability this kernel knows (moby's caps.GetAllCapabilities): the list up to
    /proc/sys/kernel/cap_last_cap, which it is ordered by."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        return list(ALL_CAPABILITIES)
    return ALL_CAPABILITIES[: last + 1]


def privileged_capabilities() -> list[str]:
    """A privileged container's capabilities: every one the kernel knows (moby's
    GetAllCapabilities) that this process's bounding set holds, since the runtime cannot
    give more (a host that runs dockweb with some dropped, e.g. in a sandbox)."""
    caps = host_capabilities()
    try:
        with open("/proc/self/status") as f:
            line = next(ln for ln in f if ln.startswith("CapBnd:"))
        bounding = int(line.split()[1], 16)
    except (OSError, StopIteration, ValueError, IndexError):
        return caps
    return [c for i, c in enumerate(caps) if bounding >> i & 1]


def normalize_capability(name: str) -> str:
    """moby's NormalizeLegacyCapabilities for one name: upper case, ``CAP_`` prefixed,
    ``ALL`` as it is. Raises ValueError ("unknown capability: ...") for another."""
    cap = name.strip().upper()
    if cap == "ALL":
        return cap
    if not cap.startswith("CAP_"):
        cap = "CAP_" + cap
    if cap not in ALL_CAPABILITIES:
        raise ValueError(f'unknown capability: "{cap}"')
    return cap


def capabilities(add: list[str], drop: list[str]) -> list[str]:
    """moby's TweakCapabilities: the defaults (every capability with ``ALL`` added), less
    the dropped (none left with ``ALL`` dropped), plus the added."""
    add = [normalize_capability(c) for c in add]
    drop = [normalize_capability(c) for c in drop]
    if "ALL" in add:
        return [c for c in ALL_CAPABILITIES if c not in drop]
    base = [] if "ALL" in drop else [c for c in DEFAULT_CAPABILITIES if c not in drop]
    return base + [c for c in ALL_CAPABILITIES if c in add and c not in base]


ULIMITS = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}


def rlimits(ulimits: list[dict]) -> list[dict]:
    """--ulimit name=soft[:hard] ({"Name", "Soft", "Hard"}) as OCI process.rlimits."""
    return [
        {"type": ULIMITS[u["Name"]], "soft": u["Soft"], "hard": u["Hard"]} for u in ulimits
    ]


def add_groups(rootfs: str, user: ExecUser, groups: list[str]) -> None:
    """--group-add: group names (from the container's /etc/group) or numbers, appended to
    the user's supplementary groups. Raises ContainerStartError for an unknown name."""
    table = _read_db(in_root(rootfs, "/etc/group"))
    for g in groups:
        if g.isdigit():
            gid = int(g)
        else:
            row = next((r for r in table if len(r) >= 3 and r[0] == g), None)
            if row is None:
                raise ContainerStartError(
                    f"Unable to find group {g}: no matching entries in group file", 125
                )
            gid = int(row[2])
        if gid not in user.additional_gids:
            user.additional_gids.append(gid)


def tmpfs_options(options: str) -> list[str]:
    """--tmpfs /dst:OPTS: dockerd's defaults (noexec, nosuid, nodev) with OPTS over them."""
    out = ["noexec", "nosuid", "nodev"]
    for opt in filter(None, options.split(",")):
        opposite = {"exec": "noexec", "suid": "nosuid", "dev": "nodev"}.get(opt)
        if opposite in out:
            out.remove(opposite)
        out.append(opt)
    return out


def resources(*, memory: int = 0, nano_cpus: int = 0, pids_limit: int = 0) -> dict:
    """The linux.resources limits of -m (swap twice the memory, dockerd's default), --cpus
    (a CFS quota over a 100 ms period) and --pids-limit."""
    out: dict = {}
    if memory:
        out["memory"] = {"limit": memory, "swap": memory * 2}
    if nano_cpus:
        out["cpu"] = {"period": 100000, "quota": nano_cpus * 100000 // 10**9}
    if pids_limit:
        out["pids"] = {"limit": pids_limit}
    return out


def seccomp_supported(status: str = "/proc/self/status") -> bool:
    """The kernel has seccomp (moby's sysinfo: a ``Seccomp:`` line in /proc/self/status)."""
    try:
        with open(status) as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


def seccomp(requested: str, *, privileged: bool, bounding: list[str]) -> dict | None:
    """The spec's ``linux.seccomp`` as moby's WithSeccomp chooses it: none for
    ``seccomp=unconfined``; none for a privileged container unless a profile is named;
    Docker's default profile (``""`` or ``builtin``) filtered for the container's bounding
    capabilities, or the profile given (Docker's JSON text). Raises ContainerStartError
    (125) with moby's words for a profile it refuses."""
    if requested == "unconfined" or (privileged and not requested):
        return None
    if not seccomp_supported():
        if requested and requested != "builtin":
            raise ContainerStartError(
                "seccomp is not enabled in your kernel, cannot run a custom seccomp profile", 125
            )
        return None
    try:
        if requested in ("", "builtin"):
            return seccomp_profiles.default_profile(bounding)
        return seccomp_profiles.load_profile(requested, bounding)
    except seccomp_profiles.ProfileError as e:
        raise ContainerStartError(str(e), 125) from None


# containerd's HostDevices: what a privileged container gets of the host's /dev
_SKIPPED_DEV_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def host_devices(root: str = "/dev") -> list[dict]:
    """Every character and block device under /dev (not pts, shm, fd, mqueue, nor
    /dev/console), as the spec's linux.devices, for a privileged container."""
    out = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in _SKIPPED_DEV_DIRS:
                    out += host_devices(entry.path)
                continue
            if entry.name == "console":
                continue
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode):
            kind = "c"
        elif stat.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            continue
        out.append({
            "path": entry.path,
            "type": kind,
            "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid,
            "gid": st.st_gid,
        })
    return out


def _depth(path: str) -> int:
    return len([p for p in os.path.normpath(path).split("/") if p])


def runtime_spec(
    *,
    rootfs: str,
    args: list[str],
    env: list[str],
    cwd: str,
    user: ExecUser,
    hostname: str,
    tty: bool,
    network: str,
    cgroups_path: str,
    netns_path: str = "",
    etc_files: dict[str, str],
    mounts: list[dict] = (),
    stdin: bool = False,
    read_only: bool = False,
    capabilities: list[str] | None = None,
    tmpfs: dict[str, str] | None = None,
    resources: dict | None = None,
    shm_size: int = 0,
    rlimits: list[dict] | None = None,
    no_new_privileges: bool = False,
    seccomp: dict | None = None,
    apparmor_profile: str = "",
    privileged: bool = False,
) -> dict:
    """The OCI runtime spec (config.json) for one container.

    ``etc_files`` maps ``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf`` to files in
    the container's directory; they are bind-mounted as Docker does. ``mounts`` are volume
    and bind mounts (OCI mount dicts); like Docker, they are ordered by depth, after the
    defaults, so a volume at ``/dev/shm``-like depth overrides a default.

    Confinement: ``seccomp`` is the ``linux.seccomp`` section (see ``seccomp()``),
    ``apparmor_profile`` the process's profile ("" for none). ``privileged`` is moby's
    privileged container: the host's devices, /sys and the cgroup tree writable, no masked
    or read-only paths (its capabilities come in ``capabilities``).
    """
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if network != "host":  # a new namespace, or the one at netns_path
        namespaces.append({"type": "network", **({"path": netns_path} if netns_path else {})})
    all_mounts = default_mounts(shm_size)
    if privileged:  # moby's WithMounts: /sys and the cgroup tree not read-only
        for m in all_mounts:
            if m["destination"] in ("/sys", "/sys/fs/cgroup"):
                m["options"] = [o for o in m["options"] if o != "ro"]
    for dest in ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts"):
        if dest in etc_files:
            all_mounts.append(
                {
                    "destination": dest,
                    "type": "bind",
                    "source": etc_files[dest],
                    "options": ["rbind", "rprivate"],
                }
            )
    mounts = list(mounts) + [
        {"destination": dest, "type": "tmpfs", "source": "tmpfs",
         "options": tmpfs_options(options)}
        for dest, options in (tmpfs or {}).items()
    ]
    user_mounts = sorted(mounts, key=lambda m: _depth(m["destination"]))
    dests = {m["destination"] for m in user_mounts}
    all_mounts = [m for m in all_mounts if m["destination"] not in dests] + user_mounts
    caps = list(DEFAULT_CAPABILITIES if capabilities is None else capabilities)
    process = {
        "terminal": tty,
        "user": {"uid": user.uid, "gid": user.gid},
        "args": list(args),
        "env": list(env),
        "cwd": cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": no_new_privileges,
        "oomScoreAdj": 0,
    }
    if apparmor_profile:
        process["apparmorProfile"] = apparmor_profile
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)
    if rlimits:
        process["rlimits"] = list(rlimits)
    linux = {
        "resources": {"devices": DEFAULT_DEVICE_RULES, **(resources or {})},
        "cgroupsPath": cgroups_path,
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if privileged:
        linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
        linux["devices"] = host_devices()
        del linux["maskedPaths"], linux["readonlyPaths"]
    if seccomp is not None:
        linux["seccomp"] = seccomp
    return {
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": {"path": rootfs, "readonly": read_only},
        "hostname": hostname,
        "mounts": all_mounts,
        "linux": linux,
    }
