"""What pull.py and compare_rootfs.py share: a registry, dockerd, the dockweb CLI, timing.

Run the scripts from the repository root as modules (`python -m benchmarks.pull`), so that
`tests.support` imports. Both need root (dockerd, overlay mounts).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.support.registry import RegistryServer

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKER_ROOT = Path("/var/lib/docker")
# Scratch on the disk, not in a tmpfs /tmp: stores hold hundreds of megabytes.
SCRATCH = Path(os.environ.get("DOCKWEB_BENCH_SCRATCH", "/var/tmp"))
# Outside the runs' scratch dirs, so that it survives them when dockerd fails.
DOCKERD_LOG = SCRATCH / "dockweb-bench-dockerd.log"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def registry(workdir: Path):
    """A plain-HTTP docker-registry on 127.0.0.1 (Docker treats it as insecure: no TLS)."""
    server = RegistryServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def docker(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def _docker_up() -> bool:
    return subprocess.run(["docker", "version"], capture_output=True).returncode == 0


@contextmanager
def dockerd(log_path: Path):
    """Use the running dockerd, or start one for the duration and stop it after."""
    if _docker_up():
        yield
        return
    log(f"starting dockerd (log: {log_path})")
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            ["dockerd", "--bridge=none", "--iptables=false", "--ip-forward=false"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not _docker_up():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not come up; see {log_path}")
            time.sleep(0.2)
        driver = docker("info", "--format", "{{.Driver}}").stdout.strip()
        if driver != "overlay2":
            raise RuntimeError(f"dockerd uses the {driver} storage driver; overlay2 is needed")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def docker_has_layer(chain_id: str) -> bool:
    """Whether Docker's layer store (overlay2 layerdb) holds the layer with this ChainID."""
    algo, _, hexpart = chain_id.partition(":")
    return (DOCKER_ROOT / "image/overlay2/layerdb" / algo / hexpart).exists()


def docker_forget(ref: str, chain_ids: list[str]) -> None:
    """Remove `ref` from Docker and check that none of its layers remains (a cold pull next)."""
    docker("rmi", "-f", ref, check=False)
    left = [c for c in chain_ids if docker_has_layer(c)]
    if left:
        raise RuntimeError(
            f"Docker still holds {len(left)} layer(s) of {ref} after rmi (another image or a "
            f"container uses them): {left[0]}; remove those, then rerun"
        )


def dockweb_cli_ready() -> bool:
    return (REPO_ROOT / "dockweb/cli/__main__.py").exists()


@dataclass
class DockwebEnv:
    """A fresh, empty dockweb store and database, removed by `cleanup`."""

    root: Path
    data: Path

    @classmethod
    def fresh(cls) -> DockwebEnv:
        base = Path(tempfile.mkdtemp(prefix="dockweb-bench-", dir=SCRATCH))
        (base / "root").mkdir()
        (base / "data").mkdir()
        return cls(base / "root", base / "data")

    def env(self) -> dict[str, str]:
        return dict(os.environ, DOCKWEB_ROOT=str(self.root), DOCKWEB_DATA=str(self.data))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "dockweb.cli", *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            self.command(*args), cwd=REPO_ROOT, env=self.env(), capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"dockweb {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def cleanup(self) -> None:
        mounts = self.root / "mounts"
        if mounts.is_dir():
            for merged in mounts.glob("*/merged"):
                subprocess.run(["umount", str(merged)], capture_output=True)
        shutil.rmtree(self.root.parent, ignore_errors=True)


@dataclass
class Timing:
    seconds: float
    returncode: int
    peak_rss_tree: int  # bytes: highest sum of RSS over the process and its children, sampled
    max_rss_wait4: int  # bytes: the kernel's ru_maxrss for the child (largest single process)
    stderr: str


def run_timed(cmd: list[str], *, env: dict | None = None, cwd: Path | None = None) -> Timing:
    """Run `cmd` to completion, measuring wall time and peak memory.

    The process tree is sampled every 20 ms with psutil, so short spikes can be missed;
    `max_rss_wait4` is exact but counts one process at a time.
    """
    err = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                break
            peak = max(peak, total)
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, rusage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    sampler.join()
    err.seek(0)
    stderr = err.read().decode(errors="replace")
    err.close()
    return Timing(seconds, proc.returncode, peak, rusage.ru_maxrss * 1024, stderr)


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
