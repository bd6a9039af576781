"""``dockweb version`` and ``dockweb info`` (``system info``): docker's layouts and
``--format`` templates, with what this machine and store are."""

from __future__ import annotations

import sys

from django.conf import settings

from dockweb.docker.formatter import format_rows
from dockweb.docker.system import info_data as _info_data
from dockweb.docker.system import version_data
from dockweb.engine import get_manager, get_store
from dockweb.runtime.units import bytes_size


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
    """docker's types.Info for the configured store (``dockweb.docker.system``)."""
    return _info_data(
        get_store(),
        get_manager(),
        insecure_registries=settings.DOCKWEB_INSECURE_REGISTRIES,
    )


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
