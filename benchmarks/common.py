"""What the benchmarks share: a registry, dockerd, the dockweb CLI, timing, scratch filesystems,
and for the dashboard's: Django on a scratch database, the worker and a web server.

Run the scripts from the repository root as modules (`python -m benchmarks.pull`), so that
`tests.support` imports. They need root (dockerd, overlay and loop mounts).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import urllib3

from tests.support import images as im
from tests.support.registry import RegistryServer, free_port
from tests.support.worker import CeleryWorker, ThrottledProxy

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKER_ROOT = Path("/var/lib/docker")
# Scratch on the disk, not in a tmpfs /tmp: stores hold hundreds of megabytes.
SCRATCH = Path(os.environ.get("DOCKWEB_BENCH_SCRATCH", "/var/tmp"))
# Outside the runs' scratch dirs, so that it survives them when dockerd fails.
DOCKERD_LOG = SCRATCH / "dockweb-bench-dockerd.log"
# Debian's 20.10 client and daemon; /usr/local/bin/docker may be a newer client.
DOCKER_CLI = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
# The private dockerd's socket, exec root and pid file (never the system's /run/docker).
PRIVATE_DOCKER_RUN = Path("/run/dockweb-bench")
SCRATCH_FS_SIZE = 4 << 30


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
        stop_process(proc)


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
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


@contextmanager
def dockweb_service(env: DockwebEnv, socket: Path, log_path: Path):
    """``dockweb system service`` on ``socket`` with ``env``'s store and database, answering
    ``docker version`` (Django and the server loaded) before it is handed out; stopped after.
    Yields the docker client's command prefix for it (Debian's 20.10 client) and its pid."""
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            env.command("system", "service", f"unix://{socket}"),
            env=env.env(),
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = [DOCKER_CLI, "-H", f"unix://{socket}"]
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*client, "version"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockweb system service did not come up; see {log_path}")
            time.sleep(0.05)
        yield client, proc.pid
    finally:
        stop_process(proc)


@dataclass
class Timing:
    seconds: float
    returncode: int
    peak_rss_tree: int  # bytes: highest sum of RSS over the process and its children, sampled
    max_rss_wait4: int  # bytes: the kernel's ru_maxrss for the child (largest single process)
    stderr: str


class PeakRss:
    """Samples the RSS of a process and its children every 20 ms while in use (short spikes
    can be missed); ``peak`` is the highest sum seen (pages a fork shares are counted in
    each process), ``peak_single`` the highest RSS of any one of them (the process doing
    the work: a Celery pool's child, the service without its spawner)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.peak_single = pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        rss = p.memory_info().rss
                    except psutil.NoSuchProcess:
                        continue
                    total += rss
                    self.peak_single = max(self.peak_single, rss)
            except psutil.NoSuchProcess:
                break
            self.peak = max(self.peak, total)
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_timed(cmd: list[str], *, env: dict | None = None, cwd: Path | None = None) -> Timing:
    """Run `cmd` to completion, measuring wall time and peak memory.

    The process tree is sampled every 20 ms with psutil, so short spikes can be missed;
    `max_rss_wait4` is exact but counts one process at a time.
    """
    err = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
    with PeakRss(proc.pid) as sampler:
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        except BaseException:
            # Interrupted: the command must not outlive us (it holds files on mounts we undo).
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak = sampler.peak
    err.seek(0)
    stderr = err.read().decode(errors="replace")
    err.close()
    return Timing(seconds, proc.returncode, peak, rusage.ru_maxrss * 1024, stderr)


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first (from /proc/self/mountinfo)."""
    prefix = str(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # The mount point is field 5, with spaces and the like octal-escaped.
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=len, reverse=True)


def unmount_all(path: Path) -> list[str]:
    """Unmount everything at or below `path`; returns what stayed mounted (lazily detached).

    A busy mount gets a few retries, then `umount -l`, so that cleanup never hangs.
    """
    stuck = []
    for point in _mounts_under(path):
        for _ in range(10):
            if subprocess.run(["umount", point], capture_output=True).returncode == 0:
                break
            time.sleep(0.3)
        else:
            subprocess.run(["umount", "-l", point], capture_output=True)
            stuck.append(point)
    return stuck


@contextmanager
def scratch_ext4(base: Path, size: int = SCRATCH_FS_SIZE):
    """A new, empty ext4 filesystem mounted at `base`/mnt, gone after.

    Made on a sparse image file (`base`/fs.img, on the normal disk) through a loop device,
    with every inode table and the journal written at mkfs (no lazy init thread running
    during a measurement) and mounted without `discard`: new inodes come from untouched
    tables, unlike on a disk after mass deletions. Unmounts, detaches the loop device and
    deletes the image on the way out, also on errors and interrupts.
    """
    base.mkdir(parents=True, exist_ok=False)
    image = base / "fs.img"
    mnt = base / "mnt"
    mnt.mkdir()
    device = None
    try:
        with open(image, "wb") as f:
            f.truncate(size)
        device = _run(["losetup", "--find", "--show", "--direct-io=on", str(image)])
        _run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0,nodiscard",
                device,
            ]
        )
        _run(["mount", "-t", "ext4", "-o", "rw,relatime,nodiscard", device, str(mnt)])
        yield mnt
    finally:
        stuck = unmount_all(mnt)
        if device:
            subprocess.run(["losetup", "-d", device], capture_output=True)
        if stuck:
            log(f"{stuck[0]} was busy: detached lazily; {device} goes when it is released")
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class PrivateDocker:
    """A client for the private dockerd started by `private_dockerd`."""

    socket: Path

    def command(self, *args: str) -> list[str]:
        return [DOCKER_CLI, "-H", f"unix://{self.socket}", *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.command(*args), capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc


@contextmanager
def private_dockerd(data_root: Path, log_path: Path):
    """A dockerd of our own on `data_root` (overlay2), stopped and cleaned up after.

    Everything it owns is apart from a system dockerd: socket, exec root and pid file under
    /run/dockweb-bench, containerd namespaces, an empty config file; no bridge, no iptables.
    Started in its own session, so that a Ctrl-C reaches us first and we stop it in order.
    """
    run_dir = PRIVATE_DOCKER_RUN
    client = PrivateDocker(run_dir / "docker.sock")
    pidfile = run_dir / "docker.pid"
    if pidfile.exists():
        pid = pidfile.read_text().strip()
        if pid.isdigit() and psutil.pid_exists(int(pid)):
            raise RuntimeError(
                f"a benchmark dockerd is already running (pid {pid}, {pidfile}); "
                "stop it, or wait for the other benchmark to end"
            )
    unmount_all(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config = run_dir / "daemon.json"
    config.write_text("{}\n")
    cmd = [
        DOCKERD,
        f"--host=unix://{client.socket}",
        f"--data-root={data_root}",
        f"--exec-root={run_dir / 'exec'}",
        f"--pidfile={pidfile}",
        f"--config-file={config}",
        "--storage-driver=overlay2",
        "--containerd-namespace=dockweb-bench",
        "--containerd-plugins-namespace=dockweb-bench-plugins",
        "--bridge=none",
        "--iptables=false",
        "--ip-forward=false",
    ]
    with open(log_path, "ab") as out:
        out.write(f"\n=== {time.strftime('%F %T')} {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while client.run("version", check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private dockerd did not come up; see {log_path}")
            time.sleep(0.1)
        info = client.run("info", "--format", "{{.Driver}} {{.DockerRootDir}}").stdout.split()
        if info != ["overlay2", str(data_root)]:
            raise RuntimeError(f"private dockerd runs with {info}, not overlay2 on {data_root}")
        yield client
    finally:
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log("private dockerd did not stop in 30 s: killed")
            proc.kill()
            proc.wait()
        # dockerd stops the containerd it started; one left behind would hold the scratch fs.
        for child in children:
            try:
                child.wait(timeout=10)
            except psutil.TimeoutExpired:
                log(f"pid {child.pid} ({child.name()}) outlived the private dockerd: killed")
                child.kill()
            except psutil.NoSuchProcess:
                pass
        unmount_all(run_dir)
        unmount_all(data_root)
        shutil.rmtree(run_dir, ignore_errors=True)


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def percentile(values: list[float], p: float) -> float:
    """The `p`th percentile of `values`: the nearest rank, no interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# -- the dashboard's benchmarks: Django, the worker and a web server on a scratch dir -------


@contextmanager
def scratch_dir(prefix: str):
    """A new directory under SCRATCH, removed with everything in it on the way out."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=SCRATCH))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def setup_django(scratch: Path, broker_url: str | None = None) -> None:
    """Set Django up as production runs it (DEBUG off), on a fresh, migrated SQLite database.

    DOCKWEB_DATA is `scratch`/data (the database lives there), DOCKWEB_ROOT `scratch`/store;
    `broker_url` becomes CELERY_BROKER_URL. The environment is this process's and is
    inherited by the servers it starts. Once per process: Django reads it at setup.
    """
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "dockweb.settings",
            "DOCKWEB_DATA": str(scratch / "data"),
            "DOCKWEB_ROOT": str(scratch / "store"),
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("DATABASE_URL", None)
    if broker_url is not None:
        os.environ["CELERY_BROKER_URL"] = broker_url
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def signed_in_client():
    """Django's test Client, signed in as a new user "bench" (after `setup_django`)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_user("bench", password="bench-pass-1")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    return client


def random_image(scratch: Path, layers: int, layer_mb: int) -> im.Image:
    """Busybox plus `layers` layers of `layer_mb` MB of random data (blobs under `scratch`)."""
    blobs = [
        im.large_layer(layer_mb * 1_000_000, scratch / f"layer{i}.blob", seed=i)
        for i in range(layers)
    ]
    return im.Image([im.busybox_layer(), *blobs], config={"Cmd": ["sh"]})


@contextmanager
def slow_pulls(scratch: Path, broker_url: str, image: im.Image, repository: str, rate_mb: float):
    """A registry holding `image` as `repository`:latest, a proxy to it that sends each
    connection `rate_mb` MB/s, and the Celery worker on `setup_django`'s database and store.

    Yields (the image's reference through the proxy, the worker); all stop on the way out.
    """
    data = scratch / "data"
    with (
        RegistryServer(scratch / "registry") as registry,
        ThrottledProxy(registry.host, int(rate_mb * 1_000_000)) as proxy,
        CeleryWorker(
            db_path=data / "db.sqlite3",
            store_root=scratch / "store",
            data_dir=data,
            broker_url=broker_url,
            log_path=scratch / "worker.log",
        ) as worker,
    ):
        im.push_image(registry.host, repository, "latest", image)
        yield f"{proxy.host}/{repository}:latest", worker


def remove_image(reference: str) -> None:
    """Remove `reference` through the worker and wait for it (60 s at most)."""
    from images import services
    from images.models import Operation

    op = services.start_removal(reference)
    deadline = time.monotonic() + 60
    while op.is_active and time.monotonic() < deadline:
        time.sleep(0.1)
        op.refresh_from_db()
    if op.status != Operation.Status.DONE:
        raise RuntimeError(f"remove {reference}: {op.status}: {op.error}")


class WebServer(ABC):
    """The web app in a process of its own on a free loopback port, `url`; a context manager
    that returns once /login/ answers and stops the process after."""

    name = "server"

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._proc: subprocess.Popen | None = None

    @abstractmethod
    def command(self) -> list[str]:
        """The server's command line (gunicorn, runserver)."""

    def __enter__(self) -> WebServer:
        self._log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(
            self.command(), cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        http = urllib3.PoolManager(retries=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            try:
                http.request("GET", self.url + "/login/", timeout=1)
                return self
            except urllib3.exceptions.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer on {self.url} within 30 s")

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()


class Uvicorn(WebServer):
    """The web app as scripts/run serves it: ``uvicorn dockweb.asgi`` (uvloop, httptools,
    ``workers`` processes) on a free loopback port."""

    name = "uvicorn"

    def __init__(self, log_path: Path, workers: int = 2) -> None:
        super().__init__(log_path)
        self.workers = workers

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "dockweb.asgi:application",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--workers={self.workers}",
            "--loop=uvloop",
            "--http=httptools",
            "--no-proxy-headers",
            "--no-access-log",
            "--lifespan=off",
            "--timeout-keep-alive=75",  # longer than any think time: no close-vs-send race
            "--timeout-graceful-shutdown=3",
            "--log-level=warning",
        ]
