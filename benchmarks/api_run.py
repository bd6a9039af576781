"""Run latency through the Engine API: `docker run --rm IMG true` with the same docker client
(Debian's 20.10, /usr/bin/docker) against dockweb's socket (`dockweb system service`) and
against dockerd's.

    cd /work/main && sudo .venv/bin/python -m benchmarks.api_run [--runs 20]

Set up as benchmarks/run.py: busybox pushed to a docker-registry on 127.0.0.1, two new ext4
filesystems, a private dockerd with its data root on the first, dockweb's store and database
on the second, the image pulled into both. Then `dockweb system service` on a socket of the
benchmark's own (a long-lived process, as it is used), a few untimed runs of each, and
alternating timed runs (dockerd first in odd runs). Each run is the whole `docker` command,
wall-clock. Prints each one's median and p90 and the median ratio dockweb/dockerd.

Not run in CI: it needs root, loop devices and dockerd.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common
from benchmarks.run import _stop_on_sigterm, p90, timed
from tests.support import images as im


def wait_for_socket(path: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("dockweb system service exited")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"dockweb system service did not answer on {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    work = Path(tempfile.mkdtemp(prefix="dockweb-bench-api-run-", dir=common.SCRATCH))
    sock_dir = tempfile.mkdtemp(prefix="dwa-")  # short: a socket's path is at most 107 bytes
    sock = os.path.join(sock_dir, "docker.sock")
    times: dict[str, list[float]] = {"dockerd": [], "dockweb": []}
    service = None
    try:
        with (
            common.registry(work / "registry") as reg,
            common.scratch_ext4(work / "fs-docker") as docker_fs,
            common.scratch_ext4(work / "fs-dockweb") as dockweb_fs,
            common.private_dockerd(docker_fs / "docker", common.DOCKERD_LOG) as client,
        ):
            ref = f"{reg.host}/bench-api-run:1"
            common.log(f"pushing busybox to {ref}")
            im.push_image(reg.host, "bench-api-run", "1", im.busybox_base())
            (dockweb_fs / "root").mkdir()
            (dockweb_fs / "data").mkdir()
            store = common.DockwebEnv(dockweb_fs / "root", dockweb_fs / "data")
            env = store.env()
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            client.run("pull", "-q", ref)
            store.run("pull", "-q", ref)
            with open(work / "service.log", "ab") as log:
                service = subprocess.Popen(
                    store.command("system", "service", f"unix://{sock}"),
                    cwd=common.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            wait_for_socket(sock, service)
            commands = {
                "dockerd": client.command("run", "--rm", "--network", "none", ref, "true"),
                "dockweb": [common.DOCKER_CLI, "-H", f"unix://{sock}", "run", "--rm", ref, "true"],
            }
            alternate(commands, times, runs=args.runs, warmup=args.warmup)
            left = store.run("ps", "-aq").stdout.split()
            if left:
                raise RuntimeError(f"dockweb left {len(left)} container(s) after run --rm")
            service.send_signal(signal.SIGTERM)
            service.wait(30)
            service = None
            common.unmount_all(dockweb_fs / "root")
    finally:
        if service is not None and service.poll() is None:
            service.kill()
            service.wait()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(sock_dir, ignore_errors=True)

    print_summary(times)
    return 0


def alternate(
    commands: dict[str, list[str]], times: dict[str, list[float]], *, runs: int, warmup: int
) -> None:
    """``warmup`` untimed runs of each command, then ``runs`` timed ones into ``times``,
    alternating (the first command first in odd runs), each printed as it ends."""
    tools = list(commands)
    for _ in range(warmup):
        for tool in tools:
            timed(commands[tool])
    for run in range(1, runs + 1):
        for tool in tools if run % 2 else tools[::-1]:
            seconds = timed(commands[tool])
            times[tool].append(seconds)
            print(f"run {run:2}: {tool:7} {seconds * 1000:7.0f} ms", flush=True)


def print_summary(times: dict[str, list[float]]) -> None:
    """Each tool's median, p90, min and max, and the median ratio dockweb/dockerd."""
    for tool, t in times.items():
        print(
            f"{tool:7} median {statistics.median(t) * 1000:5.0f} ms, p90 {p90(t) * 1000:5.0f} ms,"
            f" min {min(t) * 1000:5.0f} ms, max {max(t) * 1000:5.0f} ms ({len(t)} runs)"
        )
    ratio = statistics.median(times["dockweb"]) / statistics.median(times["dockerd"])
    print(f"median ratio dockweb/dockerd {ratio:.2f}")


if __name__ == "__main__":
    sys.exit(main())
