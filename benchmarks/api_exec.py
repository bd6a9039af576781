"""Exec latency through the Engine API: `docker exec CONTAINER true` with the same docker
client (Debian's 20.10, /usr/bin/docker) against dockweb's socket (`dockweb system service`)
and against dockerd's.

    cd /work/main && sudo .venv/bin/python -m benchmarks.api_exec [--runs 20]
        [--docker-host unix:///run/dw-ref/docker.sock]

busybox pushed to a docker-registry on 127.0.0.1 and pulled into both: a private dockerd
(as benchmarks/api_run.py; its data root in the benchmark's scratch directory), or with
`--docker-host` a dockerd that is running already (the image and container made there are
removed at the end), and a fresh dockweb store and database served by `dockweb system
service` on a socket of the benchmark's own (a long-lived process, as it is used). In each,
one container runs `sleep` (`docker run -d`); then a few untimed execs of each and
alternating timed ones (dockerd first in odd runs). Each is the whole `docker exec` command
(create, start with the attach, inspect), wall-clock. Prints each one's median and p90 and
the median ratio dockweb/dockerd.

Not run in CI: it needs root and dockerd.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import common
from benchmarks.api_run import alternate, print_summary
from benchmarks.run import _stop_on_sigterm
from tests.support import images as im

NAME = "bench-api-exec"


@contextlib.contextmanager
def _dockerd(host: str | None, work: Path):
    """A docker client's command prefix: for ``host``, or for a private dockerd."""
    if host:
        yield [common.DOCKER_CLI, "-H", host]
        return
    with common.private_dockerd(work / "docker", common.DOCKERD_LOG) as client:
        yield client.command()


def _run(cmd: list[str], *, check: bool = True) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="untimed execs of each")
    parser.add_argument("--docker-host", help="a running dockerd to use (default: a private one)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    work = Path(tempfile.mkdtemp(prefix="dockweb-bench-api-exec-", dir=common.SCRATCH))
    sock_dir = Path(tempfile.mkdtemp(prefix="dwa-"))  # a socket's path is at most 107 bytes
    store = common.DockwebEnv(work / "root", work / "data")
    store.root.mkdir()
    store.data.mkdir()
    times: dict[str, list[float]] = {"dockerd": [], "dockweb": []}
    docker = ref = None
    try:
        with (
            common.registry(work / "registry") as reg,
            _dockerd(args.docker_host, work) as docker,
            common.dockweb_service(store, sock_dir / "docker.sock", work / "service.log") as (
                dockweb,
                _pid,
            ),
        ):
            ref = f"{reg.host}/{NAME}:1"
            common.log(f"pushing busybox to {ref}")
            im.push_image(reg.host, NAME, "1", im.busybox_base())
            _run([*docker, "pull", "-q", ref])
            _run([*docker, "run", "-d", "--network", "none", "--name", NAME, ref, "sleep", "3600"])
            _run([*dockweb, "pull", "-q", ref])
            _run([*dockweb, "run", "-d", "--name", NAME, ref, "sleep", "3600"])
            commands = {
                "dockerd": [*docker, "exec", NAME, "true"],
                "dockweb": [*dockweb, "exec", NAME, "true"],
            }
            alternate(commands, times, runs=args.runs, warmup=args.warmup)
            _run([*dockweb, "rm", "-f", NAME])
            _run([*docker, "rm", "-f", NAME])
            _run([*docker, "rmi", ref])
            docker = None
    finally:
        if docker is not None and args.docker_host:  # what an error left on that dockerd
            _run([*docker, "rm", "-f", NAME], check=False)
            if ref:
                _run([*docker, "rmi", ref], check=False)
        common.unmount_all(store.root)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(sock_dir, ignore_errors=True)

    print_summary(times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
