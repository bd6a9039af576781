"""``dockweb version`` and ``dockweb info`` (``system info``): docker's layouts and
``--format`` templates, with what this machine and store are."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

import psutil

from containers import services
from dockweb.docker.formatter import format_rows
from dockweb.runtime.containers import default_runtime
from dockweb.runtime.units import bytes_size
from images import services as image_services

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


def _dockweb_version() -> str:
    try:
        return version("dockweb")
    except PackageNotFoundError:
        return "0.0.0"


def _runtime_version(runtime: str) -> str:
    try:
        out = subprocess.run([runtime, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return ""
    first = out.splitlines()[0] if out else ""
    return first.split()[-1] if first else ""


def version_data() -> dict:
    arch = _ARCH.get(platform.machine(), platform.machine())
    runtime = default_runtime()
    return {
        "Client": {
            "Version": _dockweb_version(),
            "PythonVersion": platform.python_version(),
            "Os": "linux",
            "Arch": arch,
        },
        "Server": {
            "Version": _dockweb_version(),
            "Os": "linux",
            "Arch": arch,
            "KernelVersion": platform.release(),
            "Components": [
                {"Name": "Engine", "Version": _dockweb_version()},
                {"Name": runtime, "Version": _runtime_version(runtime)},
            ],
        },
    }


def cmd_version(args) -> int:
    data = version_data()
    if args.format:
        sys.stdout.write(format_rows([data], args.format, {}, type_name="types.Version"))
        return 0
    c, s = data["Client"], data["Server"]
    runtime = s["Components"][1]
    print(
        "Client:\n"
        f" Version:           {c['Version']}\n"
        f" Python version:    {c['PythonVersion']}\n"
        f" OS/Arch:           {c['Os']}/{c['Arch']}\n"
        "\n"
        "Server:\n"
        " Engine:\n"
        f"  Version:          {s['Version']}\n"
        f"  OS/Arch:          {s['Os']}/{s['Arch']}\n"
        f"  Kernel:           {s['KernelVersion']}\n"
        f" {runtime['Name']}:\n"
        f"  Version:          {runtime['Version']}"
    )
    return 0


def info_data() -> dict:
    """docker's types.Info for what dockweb has: containers by state, images, the store's
    driver and root, the runtimes, the kernel and the machine."""
    mgr = services.get_manager()
    states = [c.status.value for c in mgr.list(all=True)]
    running = sum(s in ("running", "restarting") for s in states)
    paused = states.count("paused")
    cgroup_v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    os_name = ""
    try:
        with open("/etc/os-release") as f:
            fields = dict(
                line.rstrip("\n").split("=", 1) for line in f if "=" in line
            )
        os_name = fields.get("PRETTY_NAME", "").strip('"')
    except OSError:
        pass
    return {
        "Containers": len(states),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(states) - running - paused,
        "Images": len(image_services.get_store().image_ids()),
        "Driver": "overlay",
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if cgroup_v2 else "1",
        "DefaultRuntime": default_runtime(),
        "Runtimes": sorted(r for r in ("runc", "crun") if shutil.which(r)),
        "KernelVersion": platform.release(),
        "OperatingSystem": os_name,
        "OSType": "linux",
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count() or 1,
        "MemTotal": psutil.virtual_memory().total,
        "Name": socket.gethostname(),
        "ServerVersion": _dockweb_version(),
        "DockerRootDir": str(mgr.root),
    }


def cmd_info(args) -> int:
    data = info_data()
    if args.format:
        sys.stdout.write(format_rows([data], args.format, {}, type_name="types.Info"))
        return 0
    print(
        "Server:\n"
        f" Containers: {data['Containers']}\n"
        f"  Running: {data['ContainersRunning']}\n"
        f"  Paused: {data['ContainersPaused']}\n"
        f"  Stopped: {data['ContainersStopped']}\n"
        f" Images: {data['Images']}\n"
        f" Server Version: {data['ServerVersion']}\n"
        f" Storage Driver: {data['Driver']}\n"
        f" Logging Driver: {data['LoggingDriver']}\n"
        f" Cgroup Driver: {data['CgroupDriver']}\n"
        f" Cgroup Version: {data['CgroupVersion']}\n"
        f" Runtimes: {' '.join(data['Runtimes'])}\n"
        f" Default Runtime: {data['DefaultRuntime']}\n"
        f" Kernel Version: {data['KernelVersion']}\n"
        f" Operating System: {data['OperatingSystem']}\n"
        f" OSType: {data['OSType']}\n"
        f" Architecture: {data['Architecture']}\n"
        f" CPUs: {data['NCPU']}\n"
        f" Total Memory: {bytes_size(data['MemTotal'])}\n"
        f" Name: {data['Name']}\n"
        f" Docker Root Dir: {data['DockerRootDir']}"
    )
    return 0
