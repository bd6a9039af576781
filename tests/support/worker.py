"""A real Celery worker process, and a slow link to a registry, for tests that watch a pull.

``CeleryWorker`` runs ``celery -A dockweb.celery worker`` as a child process with its own
environment: the database file, the store root, the data directory and the broker URL it is
given, so that it shares the test database (a SQLite *file*, see ``TEST`` in
dockweb/settings.py) and the store with the test, exactly as the dashboard's worker shares
them with the web server. ``start()`` returns once the worker has run its start-up repair
(``worker_ready``) and consumes its queues; ``stop()`` asks for a warm shutdown and kills it
if that takes too long. Its output goes to ``log_path``, which errors quote.

``ThrottledProxy`` forwards GET and HEAD requests to a registry and sends response bodies
at a bounded rate per connection, so that a pull of a few tens of megabytes from a local
registry lasts seconds and its progress can be watched (over loopback it would end before a
page polled once). Pushing goes to the registry directly.

``RedisServer`` is a private redis-server for the benchmarks (scripts/test starts the tests').

All are context managers. Nothing here needs Django set up (``dockweb.jobs.queues`` names
the queues): the benchmarks use them too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from dockweb.jobs.queues import LANES, all_queues, queue_name
from tests.support.proxy import LoopbackProxy, ProxyHandler

REPO_ROOT = Path(__file__).resolve().parent.parent.parent

# every lane's queue: one worker that runs every kind of work (scripts/run starts one per
# lane instead: lane_workers)
DEFAULT_QUEUES = all_queues()


class WorkerError(RuntimeError):
    """The worker did not start, or exited while it was needed."""


class CeleryWorker:
    """``celery -A dockweb.celery worker`` on ``db_path``, ``store_root`` and ``broker_url``."""

    def __init__(
        self,
        *,
        db_path: Path | str,
        store_root: Path | str,
        data_dir: Path | str,
        broker_url: str,
        log_path: Path | str,
        queues: tuple[str, ...] = DEFAULT_QUEUES,
        pool: str = "threads",
        concurrency: int = 2,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.db_path = Path(db_path).resolve()
        self.store_root = Path(store_root).resolve()
        self.data_dir = Path(data_dir).resolve()
        self.broker_url = broker_url
        self.log_path = Path(log_path)
        self.queues = queues
        self.pool = pool
        self.concurrency = concurrency
        self.extra_env = extra_env or {}
        self.name = f"dockweb-test-{uuid.uuid4().hex[:8]}@%h"
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "celery", "-A", "dockweb.celery", "worker"]
        cmd += [f"--pool={self.pool}"]
        if self.pool != "solo":
            cmd += ["-c", str(self.concurrency)]
        cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        # -l INFO: start() waits for the "ready." line
        cmd += ["-Q", ",".join(self.queues), "-n", self.name, "-l", "INFO"]
        return cmd

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "dockweb.settings",
                # sqlite:////abs/path: the same file the test (or the benchmark) uses
                "DATABASE_URL": f"sqlite:///{self.db_path}",
                "DOCKWEB_DATA": str(self.data_dir),
                "DOCKWEB_ROOT": str(self.store_root),
                "CELERY_BROKER_URL": self.broker_url,
                "CELERY_TASK_ALWAYS_EAGER": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 30.0) -> CeleryWorker:
        """Start the worker; return once it logged ``ready.`` (its start-up repair done)."""
        if not self.db_path.exists():
            raise WorkerError(f"start worker: database {self.db_path} does not exist")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(
            self.command(),
            cwd=REPO_ROOT,
            env=self.environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the test run reaches it through stop() only
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._close_log()
                raise WorkerError(
                    f"start worker: exited with status {code}; its log "
                    f"({self.log_path}):\n{self.log_text()[-4000:]}"
                )
            if " ready." in self.log_text():
                return self
            time.sleep(0.05)
        self.stop()
        raise WorkerError(
            f"start worker: not ready within {timeout:.0f} s; its log ({self.log_path}):\n"
            f"{self.log_text()[-4000:]}"
        )

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the worker to exit by itself (a crash, in the crash-safety tests); its
        exit status (negative: the signal that killed it)."""
        proc, self._proc = self._proc, None
        try:
            return proc.wait(timeout=timeout) if proc is not None else 0
        finally:
            self._close_log()

    def assert_alive(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise WorkerError(f"worker is not running; its log:\n{self.log_text()[-4000:]}")

    def stop(self, timeout: float = 15.0) -> None:
        """Warm shutdown (SIGTERM: running tasks finish), then SIGKILL after ``timeout``.

        Idempotent.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def lane_workers(concurrency: int = 2, **options) -> list[CeleryWorker]:
    """One worker per lane (pulls, builds, quick, consoles), as scripts/run starts them,
    each on its own queue with ``concurrency`` slots; ``options`` as CeleryWorker's
    (``log_path`` gets the lane's name appended). Start and stop them yourself."""
    log_path = Path(options.pop("log_path"))
    return [
        CeleryWorker(
            queues=(queue_name(lane.name),),
            concurrency=concurrency,
            log_path=log_path.with_name(f"{log_path.stem}-{lane.name}{log_path.suffix}"),
            **options,
        )
        for lane in LANES
    ]


class _ThrottledHandler(ProxyHandler):
    proxy: ThrottledProxy

    def _forward(self, method: str) -> None:
        proxy = self.proxy
        proxy.requests += 1
        resp = self._upstream(method)
        if resp is None:
            return
        try:
            length = resp.headers.get("Content-Length")
            body = None
            if length is None and method != "HEAD":
                body = resp.read()  # chunked upstream: small JSON documents only
                length = str(len(body))
            self._send_head(resp, length)
            if method == "HEAD":
                return
            if body is not None:
                self.wfile.write(body)
                return
            started, sent = time.monotonic(), 0
            for data in resp.stream(proxy.chunk, decode_content=False):
                self.wfile.write(data)
                sent += len(data)
                ahead = sent / proxy.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a cancelled pull)
        finally:
            resp.release_conn()


class ThrottledProxy(LoopbackProxy):
    """An HTTP proxy to ``upstream`` (``host:port``) whose response bodies flow at ``rate``
    bytes per second per connection. GET and HEAD only; listens on 127.0.0.1 (a loopback
    registry is plain HTTP to dockweb, as to Docker)."""

    Handler = _ThrottledHandler
    thread_name = "throttled-proxy"

    def __init__(self, upstream: str, rate: int, chunk: int = 64 << 10) -> None:
        super().__init__(upstream, chunk)
        self.rate = rate
        self.requests = 0


class RedisServer:
    """A private ``redis-server`` on a free loopback port, nothing saved (for benchmarks;
    scripts/test starts the tests' own). ``url`` is its ``redis://`` URL."""

    def __init__(self, workdir: Path | str) -> None:
        self.workdir = Path(workdir)
        self.port = 0
        self.url = ""
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> RedisServer:
        import socket

        import redis

        self.workdir.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {self._proc.returncode}")
            try:
                redis.Redis.from_url(self.url).ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
