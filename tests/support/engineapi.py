"""The Engine API as its clients meet it: ``dockweb system service`` started on a socket of
the test's own, with a store and database of its own, driven by Debian's docker CLI
(``/usr/bin/docker``, 20.10), docker-py and docker-compose."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.cli import cli_env, run_dockweb, spawn_dockweb

DOCKER = "/usr/bin/docker"  # Debian's docker.io client (20.10), never another on PATH
COMPOSE = "/usr/bin/docker-compose"  # Debian's docker-compose 1.29


class EngineApi:
    """A running ``dockweb system service`` under ``base`` (store/, data/, docker.sock)."""

    def __init__(self, base: Path, **env: str):
        self.base = Path(base)
        self.env = cli_env(self.base, **env)
        self.socket = self.base / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.config = self.base / "docker-config"
        self.config.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.log = self.base / "service.log"

    def start(self, *extra: str, timeout: float = 60) -> EngineApi:
        with open(self.log, "ab") as log:
            self.proc = spawn_dockweb(
                self.env,
                "system",
                "service",
                *extra,
                self.host,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dockweb system service exited:\n{self.log.read_text()}")
            if self.answers():
                return self
            time.sleep(0.05)
        raise AssertionError(f"dockweb system service did not answer:\n{self.log.read_text()}")

    def answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(str(self.socket))
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        """The service stopped, and every container left on its store removed."""
        self.stop()
        ids = self.dockweb("ps", "-aq").stdout.split()
        if ids:
            self.dockweb("rm", "-f", "-v", *ids)

    # -- clients -----------------------------------------------------------------------

    def client_env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DOCKER_") and k != "COMPOSE_PROJECT_NAME"
        }
        env.update(DOCKER_HOST=self.host, DOCKER_CONFIG=str(self.config), **extra)
        return env

    def docker(
        self, *args: str, check: bool = False, timeout: float = 120, **kw: Any
    ) -> subprocess.CompletedProcess:
        """``/usr/bin/docker <args>`` against the service; stdout and stderr captured as
        text unless ``text=False``."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        env = kw.pop("env", None) or self.client_env()
        proc = subprocess.run([DOCKER, *args], env=env, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def compose(
        self,
        project_dir: Path,
        *args: str,
        check: bool = False,
        timeout: float = 180,
        env: dict[str, str] | None = None,
        **kw: Any,
    ) -> subprocess.CompletedProcess:
        """``/usr/bin/docker-compose <args>`` in ``project_dir``; ``env`` (default
        ``client_env()``) for a variant (COMPOSE_DOCKER_CLI_BUILD, PATH)."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        proc = subprocess.run(
            [COMPOSE, *args],
            cwd=project_dir,
            env=env or self.client_env(),
            timeout=timeout,
            **kw,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def client(self, **kw: Any):
        """A docker-py client (``docker.DockerClient``) on the service."""
        import docker

        kw.setdefault("version", "auto")
        kw.setdefault("timeout", 120)
        return docker.DockerClient(base_url=self.host, **kw)

    def dockweb(self, *args: str, check: bool = False, **kw: Any) -> subprocess.CompletedProcess:
        """``dockweb <args>`` on the same store and database."""
        return run_dockweb(self.env, *args, check=check, **kw)

    def pulled_busybox(self, registry, repo: str) -> str:
        """The test busybox image pushed to ``registry`` as ``repo:1`` and pulled into the
        service's store with ``dockweb pull``; its reference."""
        from tests.support import images as im

        im.push_image(registry.host, repo, "1", im.busybox_base())
        ref = f"{registry.host}/{repo}:1"
        self.dockweb("pull", "-q", ref, check=True)
        return ref


def engine_api(base: Path, **env: str):
    """A started EngineApi under ``base``; stopped and cleaned when the generator ends
    (``yield from`` it in a fixture)."""
    api = EngineApi(base, **env).start()
    try:
        yield api
    finally:
        api.cleanup()
        unmount_under(str(base) + "/")


def unmount_under(base: str) -> None:
    """Detach (lazily) every mount under the path prefix ``base``, deepest first."""
    try:
        with open("/proc/self/mountinfo") as f:
            targets = [line.split()[4] for line in f]
    except OSError:
        return
    for target in sorted((t for t in targets if t.startswith(base)), reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


class _UnixConnection(__import__("http.client").client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("docker", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def request(
    api: EngineApi,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
):
    """One raw request to the service: (status, headers as a dict of lower-case names,
    body bytes)."""
    conn = _UnixConnection(str(api.socket), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()
