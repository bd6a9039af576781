"""``docker version`` and ``docker info``: dockerd's ``types.Version``/``types.Info`` for
this machine and a store, for every door (the ``dockweb version``/``info`` commands, the
Engine API's ``GET /version`` and ``GET /info``). Plain Python: no Django."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
import threading
from base64 import b32encode
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

import psutil

from dockweb.runtime.containers import default_runtime

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}
# the Docker Engine release whose API dockweb serves (the Engine API's /version and /info)
ENGINE_VERSION = "20.10.24"
# what statfs's f_type is called in dockerd's "Backing Filesystem"
_BACKING_FS = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}


def dockweb_version() -> str:
    try:
        return version("dockweb")
    except PackageNotFoundError:
        return "0.0.0"


def runtime_version(runtime: str) -> tuple[str, str]:
    """(version, commit) from ``<runtime> --version``; empty when it does not answer."""
    try:
        out = subprocess.run([runtime, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "", ""
    lines = out.splitlines()
    first = lines[0].split()[-1] if lines and lines[0].split() else ""
    commit = ""
    for line in lines[1:]:
        if line.startswith("commit:"):
            commit = line.split(":", 1)[1].strip()
    return first, commit


def version_data() -> dict:
    """``dockweb version``'s data (its client is dockweb itself)."""
    arch = ARCH.get(platform.machine(), platform.machine())
    runtime = default_runtime()
    return {
        "Client": {
            "Version": dockweb_version(),
            "PythonVersion": platform.python_version(),
            "Os": "linux",
            "Arch": arch,
        },
        "Server": {
            "Version": dockweb_version(),
            "Os": "linux",
            "Arch": arch,
            "KernelVersion": platform.release(),
            "Components": [
                {"Name": "Engine", "Version": dockweb_version()},
                {"Name": runtime, "Version": runtime_version(runtime)[0]},
            ],
        },
    }


def _os_release() -> dict[str, str]:
    try:
        with open("/etc/os-release") as f:
            return {
                k: v.strip().strip('"')
                for k, _, v in (line.rstrip("\n").partition("=") for line in f)
                if k
            }
    except OSError:
        return {}


def _fs_type(path: str) -> str:
    """The file system type of the mount holding ``path`` (/proc/self/mountinfo)."""
    best, fstype = "", ""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                point = left.split()[4].replace("\\040", " ")
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, fstype = point, right.split()[0]
    except (OSError, IndexError):
        return ""
    return _BACKING_FS.get(fstype, fstype)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _cgroup_features() -> dict:
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    if v2:
        controllers = set(_read("/sys/fs/cgroup/cgroup.controllers").split())
        mem = "memory" in controllers
        return {
            "version": "2",
            "MemoryLimit": mem,
            "SwapLimit": mem and os.path.exists("/sys/fs/cgroup/init.scope/memory.swap.max"),
            "KernelMemory": False,
            "KernelMemoryTCP": False,
            "CpuCfsPeriod": "cpu" in controllers,
            "CpuCfsQuota": "cpu" in controllers,
            "CPUShares": "cpu" in controllers,
            "CPUSet": "cpuset" in controllers,
            "PidsLimit": "pids" in controllers,
            "OomKillDisable": False,
        }
    base = "/sys/fs/cgroup"

    def has(*parts: str) -> bool:
        return os.path.exists(os.path.join(base, *parts))

    return {
        "version": "1",
        "MemoryLimit": has("memory"),
        "SwapLimit": has("memory", "memory.memsw.limit_in_bytes"),
        "KernelMemory": has("memory", "memory.kmem.limit_in_bytes"),
        "KernelMemoryTCP": has("memory", "memory.kmem.tcp.limit_in_bytes"),
        "CpuCfsPeriod": has("cpu", "cpu.cfs_period_us"),
        "CpuCfsQuota": has("cpu", "cpu.cfs_quota_us"),
        "CPUShares": has("cpu", "cpu.shares"),
        "CPUSet": has("cpuset"),
        "PidsLimit": has("pids"),
        "OomKillDisable": has("memory", "memory.oom_control"),
    }


def engine_id(root: str) -> str:
    """A stable ID for the engine of a store, in dockerd's form (12 groups of 4 base32)."""
    digest = b32encode(hashlib.sha256(os.path.abspath(root).encode()).digest()).decode()
    return ":".join(digest[i : i + 4] for i in range(0, 48, 4))


def _runtimes() -> dict[str, dict]:
    return {name: {"path": name} for name in ("crun", "runc") if shutil.which(name)}


def info_data(
    store,
    manager,
    *,
    server_version: str | None = None,
    insecure_registries: list[str] | tuple[str, ...] = (),
    events_listeners: int = 0,
) -> dict:
    """dockerd's ``types.Info`` (API 1.41) for a store (``store``: the runtime's Store,
    ``manager``: its ContainerManager), with what this machine is."""
    states = [c.status.value for c in manager.list(all=True)]
    running = sum(s in ("running", "restarting") for s in states)
    paused = states.count("paused")
    cg = _cgroup_features()
    osr = _os_release()
    runtime = default_runtime()
    _rt_version, rt_commit = runtime_version(runtime)
    root = str(manager.root)
    try:
        nfd = len(os.listdir("/proc/self/fd"))
    except OSError:
        nfd = 0
    warnings = []
    if not cg["SwapLimit"]:
        warnings.append("WARNING: No swap limit support")
    return {
        "ID": engine_id(root),
        "Containers": len(states),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(states) - running - paused,
        "Images": len(store.image_ids()),
        "Driver": "overlay",
        "DriverStatus": [
            ["Backing Filesystem", _fs_type(root)],
            ["Supports d_type", "true"],
            ["Native Overlay Diff", "true"],
            ["userxattr", "false"],
        ],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": None,
            "Log": ["json-file"],
        },
        "MemoryLimit": cg["MemoryLimit"],
        "SwapLimit": cg["SwapLimit"],
        "KernelMemory": cg["KernelMemory"],
        "KernelMemoryTCP": cg["KernelMemoryTCP"],
        "CpuCfsPeriod": cg["CpuCfsPeriod"],
        "CpuCfsQuota": cg["CpuCfsQuota"],
        "CPUShares": cg["CPUShares"],
        "CPUSet": cg["CPUSet"],
        "PidsLimit": cg["PidsLimit"],
        "IPv4Forwarding": _read("/proc/sys/net/ipv4/ip_forward") == "1",
        "BridgeNfIptables": _read("/proc/sys/net/bridge/bridge-nf-call-iptables") == "1",
        "BridgeNfIp6tables": _read("/proc/sys/net/bridge/bridge-nf-call-ip6tables") == "1",
        "Debug": False,
        "NFd": nfd,
        "OomKillDisable": cg["OomKillDisable"],
        "NGoroutines": threading.active_count(),
        "SystemTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cg["version"],
        "NEventsListener": events_listeners,
        "KernelVersion": platform.release(),
        "OperatingSystem": osr.get("PRETTY_NAME", ""),
        "OSVersion": osr.get("VERSION_ID", ""),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {
                **{
                    host: {"Name": host, "Mirrors": [], "Secure": False, "Official": False}
                    for host in insecure_registries
                },
                "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True},
            },
            "Mirrors": [],
        },
        "NCPU": os.cpu_count() or 1,
        "MemTotal": psutil.virtual_memory().total,
        "GenericResources": None,
        "DockerRootDir": root,
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": socket.gethostname(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": server_version or dockweb_version(),
        "Runtimes": _runtimes(),
        "DefaultRuntime": runtime,
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": False,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": rt_commit, "Expected": rt_commit},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": [],
        "Warnings": warnings or None,
    }
