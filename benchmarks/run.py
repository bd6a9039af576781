"""Run latency: `docker run --rm --network none IMG true` against `dockweb run --rm IMG true`.

    cd /work/main && sudo /opt/dwvenv/bin/python -m benchmarks.run [--runs 20]

Pushes busybox (tests/support/images.py busybox_base) to a docker-registry on 127.0.0.1,
makes two new ext4 filesystems (`common.scratch_ext4`), one per tool: a private dockerd
(`common.private_dockerd`, the system's dockerd and /var/lib/docker left alone) with its data
root on the first, dockweb's DOCKWEB_ROOT and DOCKWEB_DATA on the second. Pulls the image
into both, runs each command a few times untimed (page cache, first-use work such as
dockweb's database creation), then alternates timed runs, Docker first in odd runs. Each
run is the whole command, wall-clock, from fork to exit, as a person at a shell feels it;
stdout and stderr go to a pipe that is read to the end. dockweb is timed twice: as it runs
by default, through its resident runner (dockweb/cli/runner.py, on a socket of the
benchmark's own, started by the warm-up as a first `dockweb run` starts it), and directly
(DOCKWEB_RUNNER=0: every command imports the CLI and the runtime itself). Prints each
one's median and p90, both median ratios against Docker, and the runner's memory.

Not run in CI: it needs root, loop devices and dockerd.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common
from dockweb.cli import runner
from tests.support import images as im


def timed(cmd: list[str], env: dict | None = None) -> float:
    """Wall time of `cmd`, which must exit 0 and print nothing (`true` prints nothing)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=common.REPO_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or proc.stdout or proc.stderr:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}"
        )
    return seconds


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that the finally blocks unmount and stop dockerd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each tool")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if not common.dockweb_cli_ready():
        print("dockweb CLI not there (dockweb/cli/__main__.py)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="dockweb-bench-run-", dir=common.SCRATCH))
    # a short directory of its own: a socket's path is at most 107 bytes
    sock = os.path.join(tempfile.mkdtemp(prefix="dwb-"), "runner.sock")
    times: dict[str, list[float]] = {"docker": [], "dockweb": [], "direct": []}
    memory = ""
    try:
        with (
            common.registry(work / "registry") as reg,
            common.scratch_ext4(work / "fs-docker") as docker_fs,
            common.scratch_ext4(work / "fs-dockweb") as dockweb_fs,
            common.private_dockerd(docker_fs / "docker", common.DOCKERD_LOG) as client,
        ):
            ref = f"{reg.host}/bench-run:1"
            common.log(f"pushing busybox to {ref}")
            im.push_image(reg.host, "bench-run", "1", im.busybox_base())
            (dockweb_fs / "root").mkdir()
            (dockweb_fs / "data").mkdir()
            store = common.DockwebEnv(dockweb_fs / "root", dockweb_fs / "data")
            env = store.env()
            # As installed: modules compiled once (the warm-up writes __pycache__), not at
            # every start, should the calling shell say otherwise.
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env.pop("DOCKWEB_RUNNER", None)
            env["DOCKWEB_RUNNER_SOCKET"] = sock
            client.run("pull", "-q", ref)
            store.run("pull", "-q", ref)
            dockweb_run = store.command("run", "--rm", ref, "true")
            commands = {
                "docker": (client.command("run", "--rm", "--network", "none", ref, "true"), None),
                "dockweb": (dockweb_run, env),
                "direct": (dockweb_run, {**env, "DOCKWEB_RUNNER": "0"}),
            }
            tools = list(commands)
            timed(*commands["dockweb"])  # no runner yet: runs directly and starts one
            wait_for_runner(sock)
            for _ in range(args.warmup):
                for tool in tools:
                    timed(*commands[tool])
            for run in range(1, args.runs + 1):
                # Docker first in odd runs, dockweb first in even ones.
                for tool in tools if run % 2 else tools[::-1]:
                    seconds = timed(*commands[tool])
                    times[tool].append(seconds)
                    print(f"run {run:2}: {tool:7} {seconds * 1000:7.0f} ms", flush=True)
            left = store.run("ps", "-aq").stdout.split()
            if left:
                raise RuntimeError(f"dockweb left {len(left)} container(s) after run --rm")
            memory = runner_memory(sock)
            common.unmount_all(dockweb_fs / "root")
    finally:
        runner.stop(sock)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(os.path.dirname(sock), ignore_errors=True)

    for tool in tools:
        t = times[tool]
        print(
            f"{tool:7} median {statistics.median(t) * 1000:5.0f} ms, p90 {p90(t) * 1000:5.0f} ms,"
            f" min {min(t) * 1000:5.0f} ms, max {max(t) * 1000:5.0f} ms ({len(t)} runs)"
        )
    docker = statistics.median(times["docker"])
    print(f"runner memory: {memory}")
    print(f"median ratio direct/docker {statistics.median(times['direct']) / docker:.2f}")
    print(f"median ratio dockweb/docker {statistics.median(times['dockweb']) / docker:.2f}")
    return 0


def wait_for_runner(sock: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (os.path.exists(sock) and runner.holder(sock)):
        if time.monotonic() >= deadline:
            raise RuntimeError(f"no dockweb runner on {sock} after {timeout:.0f}s (see {sock}.log)")
        time.sleep(0.05)


def runner_memory(sock: str) -> str:
    """The runner's resident and unique memory, as psutil reads them."""
    import psutil

    info = psutil.Process(runner.holder(sock)).memory_full_info()
    return f"RSS {info.rss / 2**20:.1f} MiB, USS {info.uss / 2**20:.1f} MiB"


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
