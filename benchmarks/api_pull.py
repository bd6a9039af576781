"""Pull through the Engine API: `docker pull` against dockweb's socket and against dockerd's.

    cd /work/main && sudo .venv/bin/python -m benchmarks.api_pull [--runs 5]

The same client binary (Debian's /usr/bin/docker 20.10), the same image (benchmarks/pull.py's
six layers, over 100 MB compressed and thousands of files, cached under --cache), the same
docker-registry on 127.0.0.1. Each pull is cold, onto a new ext4 filesystem of its own
(`common.scratch_ext4`): Docker through a private dockerd whose data root is that
filesystem (`common.private_dockerd`; the system's dockerd is left alone), dockweb through
`dockweb system service` with DOCKWEB_ROOT and DOCKWEB_DATA there. Each daemon is started
and answers `docker version` before the clock starts; only the `docker pull` command is
timed, from fork to exit. An untimed pull of each comes first, then the runs alternate
(Docker first in odd runs). Prints each run with the daemon's CPU seconds during it
(dockerd with its unpigz children; the dockweb service), the medians, their ratio
dockweb/docker and the service's peak RSS (VmHWM). On a busy machine the CPU seconds are
the steadier comparison.

Not run in CI: it needs root, loop devices, dockerd, minutes, and about 1.5 GB of disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

import psutil

from benchmarks import common
from benchmarks.pull import build_image
from tests.support import images as im


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its waited-for children (dockerd's unpigz), user + system."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return t.user + t.system + t.children_user + t.children_system


def peak_rss(pid: int) -> int:
    """VmHWM of a live process, in bytes (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pull_docker(fs_dir: Path, ref: str) -> tuple[common.Timing, float]:
    """A cold `docker pull` through a private dockerd on a new ext4 filesystem (as
    benchmarks/pull.py's); also the daemon's CPU seconds during the pull."""
    with common.scratch_ext4(fs_dir) as mnt:
        with common.private_dockerd(mnt / "docker", common.DOCKERD_LOG) as client:
            pid = int((common.PRIVATE_DOCKER_RUN / "docker.pid").read_text())
            os.sync()
            before = cpu_seconds(pid)
            t = common.run_timed(client.command("pull", ref))
            cpu = cpu_seconds(pid) - before
    if t.returncode != 0:
        raise RuntimeError(f"docker pull {ref} failed: {t.stderr.strip()}")
    return t, cpu


def pull_dockweb_api(fs_dir: Path, ref: str, log_path: Path) -> tuple[common.Timing, float, int]:
    """A cold `docker pull` through dockweb's socket, its store and database on a new ext4
    filesystem. Returns the timing, the service's CPU seconds during the pull and its peak
    RSS."""
    with common.scratch_ext4(fs_dir) as mnt:
        (mnt / "root").mkdir()
        (mnt / "data").mkdir()
        env = common.DockwebEnv(mnt / "root", mnt / "data")
        try:
            with common.dockweb_service(env, mnt / "docker.sock", log_path) as (client, pid):
                os.sync()
                before = cpu_seconds(pid)
                t = common.run_timed([*client, "pull", ref])
                cpu = cpu_seconds(pid) - before
                rss = peak_rss(pid)
        finally:
            common.unmount_all(mnt / "root")
    if t.returncode != 0:
        raise RuntimeError(f"docker pull {ref} through dockweb failed: {t.stderr.strip()}")
    return t, cpu, rss


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that the finally blocks unmount and stop the daemons


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path("/var/cache/dockweb-bench"))
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the untimed first pull of each"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    args.cache.mkdir(parents=True, exist_ok=True)
    image, meta = build_image(args.cache)
    compressed = sum(m["size"] for m in meta["layers"])
    entries = sum(m["entries"] for m in meta["layers"])
    print(
        f"image: {len(image.layers)} layers, {common.mib(compressed)} compressed, "
        f"{entries} tar entries; client {common.DOCKER_CLI}"
    )
    work = Path(tempfile.mkdtemp(prefix="dockweb-bench-", dir=common.SCRATCH))
    service_log = common.SCRATCH / "dockweb-bench-service.log"
    times: dict[str, list[float]] = {"docker": [], "dockweb": []}
    cpus: dict[str, list[float]] = {"docker": [], "dockweb": []}
    rss: list[int] = []
    count = 0

    def fresh() -> Path:
        nonlocal count
        count += 1
        return work / f"fs-{count}"

    def one(tool: str, ref: str) -> tuple[float, float]:
        if tool == "docker":
            t, cpu = pull_docker(fresh(), ref)
            return t.seconds, cpu
        t, cpu, peak = pull_dockweb_api(fresh(), ref, service_log)
        rss.append(peak)
        return t.seconds, cpu

    try:
        with common.registry(work / "registry") as reg:
            ref = f"{reg.host}/bench:1"
            common.log(f"pushing to {ref}")
            im.push_image(reg.host, "bench", "1", image)
            if not args.no_warmup:
                for tool in ("docker", "dockweb"):
                    seconds, _ = one(tool, ref)
                    print(f"warm-up: {tool:7} {seconds:7.2f} s (not counted)", flush=True)
            rss.clear()
            for run in range(1, args.runs + 1):
                order = ("docker", "dockweb") if run % 2 else ("dockweb", "docker")
                for tool in order:
                    seconds, cpu = one(tool, ref)
                    times[tool].append(seconds)
                    cpus[tool].append(cpu)
                    print(
                        f"run {run}: {tool:7} {seconds:7.2f} s, daemon CPU {cpu:6.2f} s",
                        flush=True,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    docker_median = statistics.median(times["docker"])
    dockweb_median = statistics.median(times["dockweb"])
    print(f"docker (dockerd's socket) median {docker_median:.2f} s")
    print(f"dockweb (dockweb's socket) median {dockweb_median:.2f} s")
    if rss:
        print(f"dockweb service peak RSS {common.mib(max(rss))}")
    print(
        f"daemon CPU medians: dockerd {statistics.median(cpus['docker']):.2f} s, "
        f"dockweb service {statistics.median(cpus['dockweb']):.2f} s"
    )
    print(f"median ratio dockweb/docker {dockweb_median / docker_median:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
