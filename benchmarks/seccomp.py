"""The cost of Docker's default seccomp profile on `dockweb run --rm IMG true`.

    cd /work/main && sudo .venv/bin/python -m benchmarks.seccomp [--runs 15]

Pushes busybox (tests/support/images.py busybox_base) to a docker-registry on 127.0.0.1,
pulls it into a fresh store, then alternates timed runs of `dockweb run --rm IMG true` with
the default profile and with `--security-opt seccomp=unconfined` (same code path, no
profile built, no filter compiled or installed), each through the resident runner as
`dockweb run` goes by default. Also times, in this process, what the runtime adds to a
start: building the profile's `linux.seccomp` for the default capabilities (and the first
time, reading the profile's file). Prints medians and the difference.

Not run in CI: it needs root and overlay mounts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import common
from dockweb.cli import runner
from tests.support import images as im


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=common.REPO_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or proc.stdout or proc.stderr:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return seconds


def profile_cost(n: int = 200) -> tuple[float, float]:
    """Seconds to build linux.seccomp: the first time (file read and parsed) and then."""
    from dockweb.runtime import oci, seccomp

    seccomp._default_config.cache_clear()
    start = time.perf_counter()
    oci.seccomp("", privileged=False, bounding=oci.DEFAULT_CAPABILITIES)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        oci.seccomp("", privileged=False, bounding=oci.DEFAULT_CAPABILITIES)
    return first, (time.perf_counter() - start) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dockweb-bench-seccomp-", dir=common.SCRATCH))
    sock = os.path.join(tempfile.mkdtemp(prefix="dwb-"), "runner.sock")
    store = common.DockwebEnv(work / "root", work / "data")
    store.root.mkdir()
    store.data.mkdir()
    times: dict[str, list[float]] = {"default": [], "unconfined": []}
    try:
        with common.registry(work / "registry") as reg:
            ref = f"{reg.host}/bench-seccomp:1"
            im.push_image(reg.host, "bench-seccomp", "1", im.busybox_base())
            env = store.env()
            env.pop("DOCKWEB_RUNNER", None)
            env["DOCKWEB_RUNNER_SOCKET"] = sock
            store.run("pull", "-q", ref)
            commands = {
                "default": store.command("run", "--rm", ref, "true"),
                "unconfined": store.command(
                    "run", "--rm", "--security-opt", "seccomp=unconfined", ref, "true"
                ),
            }
            for _ in range(args.warmup):
                for cmd in commands.values():
                    timed(cmd, env)
            for run in range(1, args.runs + 1):
                order = list(commands) if run % 2 else list(commands)[::-1]
                for name in order:
                    seconds = timed(commands[name], env)
                    times[name].append(seconds)
                    print(f"run {run:2}: {name:10} {seconds * 1000:6.1f} ms", flush=True)
            common.unmount_all(store.root)
    finally:
        runner.stop(sock)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(os.path.dirname(sock), ignore_errors=True)
    for name, t in times.items():
        print(
            f"{name:10} median {statistics.median(t) * 1000:6.1f} ms, min {min(t) * 1000:6.1f}"
            f" ms, max {max(t) * 1000:6.1f} ms ({len(t)} runs)"
        )
    diff = statistics.median(times["default"]) - statistics.median(times["unconfined"])
    print(f"median difference (default - unconfined): {diff * 1000:+.1f} ms")
    first, then = profile_cost()
    print(
        f"building linux.seccomp in Python: first {first * 1000:.2f} ms, then {then * 1000:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
