"""Pull benchmark: `docker pull` against `dockweb pull` and the dashboard's Pull, same image.

    cd /work/main && sudo .venv/bin/python -m benchmarks.pull [--runs 5] [--cycles 10]
    cd /work/main && sudo .venv/bin/python -m benchmarks.pull --lab [--runs 5]

Builds (once; cached under --cache) an image of six layers, over 200 MB compressed and
about 20,000 files: a debootstrap --variant=minbase bookworm root, a tree of 12,000 small
source files, incompressible data, medium-sized semi-compressible files, more incompressible
data and a small config layer. Pushes it to a docker-registry on 127.0.0.1 (its blobs stay
on the normal disk, in the page cache), with a second tag whose top layer differs (for the
warm pull: every base layer already present).

Default mode, real use: everything on the machine's own filesystem (under
$DOCKWEB_BENCH_SCRATCH, /var/tmp by default), in one store per tool that lives through the
whole run, as a person's store would:
- a private dockerd (overlay2) with its data root there, started for the run (the system's
  dockerd and /var/lib/docker are left alone), and one dockweb store and database;
- `--cycles` untimed pull+remove cycles of the image by each tool first (10 by default), so
  that both stores have lived through pulls and removals;
- then `--runs` rounds, the order alternating between rounds, of: `docker pull` then
  `docker rmi`; `dockweb pull` then `dockweb rmi` (the CLI); and the dashboard's path:
  POST /api/pulls/ as a signed-in operator, run by a real Celery worker on the same store,
  polled every 10 ms until the pull row is done (`pull_page.page_pull`), then removed
  through the worker; and
  Debian's docker 20.10 client against `dockweb system service` on the same store
  (`docker -H unix://... pull`, the Engine API door). Only the pull is timed;
- warm pulls: with the first tag present, pulling the second (only its top layer is new)
  by each path, `--runs` times, removing it in between.
Prints every run, the medians, the ratios to docker, and dockweb's peak memory (the CLI's
process tree; the worker's RSS during the page pulls, the service's during the timed runs);
then `dockweb pull` against each mode
of tests/support/hostile_registry.py (huge or endless manifests, indexes, token answers,
error bodies and blobs, a stalled blob) with the kernel's peak RSS of the CLI and its error.

`--lab` keeps the older laboratory condition: every cold pull onto a new ext4 filesystem of
its own (a 4 GiB sparse image on a loop device, see `common.scratch_ext4`), CLI only.

Not run in CI: it needs root, minutes, and a few GB of disk.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from benchmarks import common, pull_page
from tests.support import hostile_registry as hr
from tests.support import images as im
from tests.support import peakrss
from tests.support.worker import CeleryWorker, RedisServer

IMAGE_VERSION = "v2"  # bump when the recipe below changes, to rebuild the cache
MIRROR = "http://deb.debian.org/debian"
WORDS = (
    "def class return import from self value items index result error config request "
    "response handler layer digest manifest registry store mount image container status "
    "progress event stream buffer chunk size offset name path mode owner group time"
).split()


def ensure_rootfs(cache: Path) -> Path:
    """A debootstrap minbase bookworm root, made once (a few minutes) and kept in `cache`."""
    rootfs = cache / "bookworm-minbase"
    if rootfs.is_dir():
        return rootfs
    tmp = cache / "bookworm-minbase.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    common.log(f"debootstrap --variant=minbase bookworm into {tmp} (once)")
    subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(tmp), MIRROR],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tmp.rename(rootfs)
    return rootfs


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, im.MTIME
    tar.addfile(info, _Bytes(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, im.MTIME
    tar.addfile(info)


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk


# Left by debootstrap, removed by every Debian image build: package archives and lists.
ROOTFS_SKIP = ("var/cache/apt/archives/", "var/lib/apt/lists/", "var/cache/apt/")


def fill_rootfs(rootfs: Path):
    """The debootstrap root as the official debian image has it: apt caches emptied."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        skip = any(info.name.startswith(p) and info.isreg() for p in ROOTFS_SKIP)
        return None if skip else info

    def fill(tar: tarfile.TarFile) -> None:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name, recursive=True, filter=keep)

    return fill


def fill_small_files(count: int, seed: int):
    """A source tree: `count` files of 100 B to 6 KB of text, 50 per directory."""

    def fill(tar: tarfile.TarFile) -> None:
        rng = random.Random(seed)
        _add_dir(tar, "app")
        for d in range(count // 50):
            if d % 20 == 0:
                _add_dir(tar, f"app/pkg{d // 20:02d}")
            _add_dir(tar, f"app/pkg{d // 20:02d}/mod{d:04d}")
            for f in range(50):
                lines = rng.randint(3, 150)
                text = "\n".join(
                    " ".join(rng.choices(WORDS, k=rng.randint(2, 8))) for _ in range(lines)
                )
                _add(tar, f"app/pkg{d // 20:02d}/mod{d:04d}/file{f:02d}.py", text.encode())

    return fill


def fill_medium_files(count: int, seed: int):
    """`count` files of 8 to 128 KB, half random bytes and half zeros (libraries-like)."""

    def fill(tar: tarfile.TarFile) -> None:
        rng = random.Random(seed)
        _add_dir(tar, "lib")
        _add_dir(tar, "lib/app")
        for n in range(count):
            size = rng.randint(8, 128) << 10
            data = rng.randbytes(size // 2) + bytes(size - size // 2)
            _add(tar, f"lib/app/lib{n:04d}.so", data, 0o755)

    return fill


def fill_config(tar: tarfile.TarFile) -> None:
    _add_dir(tar, "etc")
    _add_dir(tar, "etc/app")
    for n in range(20):
        _add(tar, f"etc/app/conf{n:02d}.ini", f"[section]\nkey{n} = value\n".encode())


def count_entries(blob: Path) -> int:
    with tarfile.open(blob, mode="r|gz") as tar:
        return sum(1 for _ in tar)


def build_image(cache: Path) -> tuple[im.Image, dict]:
    """The benchmark image, from cache when its layers are there (checked by size)."""
    workdir = cache / f"image-{IMAGE_VERSION}"
    meta_path = workdir / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        layers = [
            im.Layer.from_file(
                workdir / m["file"],
                diff_id=m["diff_id"],
                digest=m["digest"],
                size=m["size"],
                compression=m["compression"],
            )
            for m in meta["layers"]
        ]
        if all((workdir / m["file"]).stat().st_size == m["size"] for m in meta["layers"]):
            return _image(layers), meta
    rootfs = ensure_rootfs(cache)
    workdir.mkdir(parents=True, exist_ok=True)
    recipe = [
        ("base", fill_rootfs(rootfs)),
        ("small-files", fill_small_files(12_000, seed=1)),
        ("random-96m", None),
        ("medium-files", fill_medium_files(600, seed=3)),
        ("random-48m", None),
        ("config", fill_config),
    ]
    layers, meta_layers = [], []
    for n, (name, fill) in enumerate(recipe):
        path = workdir / f"{n}-{name}.tar.gz"
        common.log(f"building layer {n} ({name})")
        if name.startswith("random-"):
            size = int(name.removeprefix("random-").removesuffix("m")) << 20
            layer = im.large_layer(size, path, seed=n, directory=f"data/{name}")
        else:
            layer = im.Layer.stream(path, fill)
        files = count_entries(path)
        layers.append(layer)
        meta_layers.append(
            {
                "file": path.name,
                "diff_id": layer.diff_id,
                "digest": layer.digest,
                "size": layer.size,
                "compression": layer.compression,
                "tar_size": layer.tar_size,
                "entries": files,
            }
        )
    meta = {"layers": meta_layers}
    meta_path.write_text(json.dumps(meta, indent=2))
    return _image(layers), meta


def _image(layers: list[im.Layer]) -> im.Image:
    return im.Image(layers, {"Cmd": ["/bin/bash"], "WorkingDir": "/app"})


def median_ratio(docker_times: list[float], dockweb_times: list[float]) -> float:
    return statistics.median(dockweb_times) / statistics.median(docker_times)


def pull_docker(fs_dir: Path, ref: str) -> common.Timing:
    """A cold `docker pull` by a private dockerd whose data root is a new ext4 filesystem."""
    with common.scratch_ext4(fs_dir) as mnt:
        with common.private_dockerd(mnt / "docker", common.DOCKERD_LOG) as client:
            os.sync()  # earlier runs' writeback and discards must not land in this one
            t = common.run_timed(client.command("pull", ref))
    if t.returncode != 0:
        raise RuntimeError(f"docker pull {ref} failed: {t.stderr.strip()}")
    return t


def pull_dockweb(fs_dir: Path, ref: str) -> common.Timing:
    """A cold `dockweb pull` into an empty store and database on a new ext4 filesystem."""
    with common.scratch_ext4(fs_dir) as mnt:
        (mnt / "root").mkdir()
        (mnt / "data").mkdir()
        store = common.DockwebEnv(mnt / "root", mnt / "data")
        try:
            os.sync()
            t = common.run_timed(store.command("pull", ref), env=store.env(), cwd=common.REPO_ROOT)
        finally:
            # Its overlay mounts, if any; the filesystem itself goes with scratch_ext4.
            common.unmount_all(mnt / "root")
    if t.returncode != 0:
        raise RuntimeError(f"dockweb pull {ref} failed: {t.stderr.strip()}")
    return t


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that the finally blocks unmount and stop dockerd


def lab_main(args: argparse.Namespace) -> int:
    """The laboratory condition: each cold pull on a new ext4 filesystem, CLI only."""
    image, meta = build_image(args.cache)
    compressed = sum(m["size"] for m in meta["layers"])
    uncompressed = sum(m["tar_size"] for m in meta["layers"])
    entries = sum(m["entries"] for m in meta["layers"])
    print(
        f"image: {len(image.layers)} layers, {common.mib(compressed)} compressed, "
        f"{common.mib(uncompressed)} as tar, {entries} tar entries"
    )
    tools = []
    if not args.dockweb_only:
        tools.append("docker")
    if not args.docker_only:
        if common.dockweb_cli_ready():
            tools.append("dockweb")
        else:
            print("dockweb CLI not there yet (dockweb/cli/__main__.py): dockweb half skipped")
    pull = {"docker": pull_docker, "dockweb": pull_dockweb}

    work = Path(tempfile.mkdtemp(prefix="dockweb-bench-", dir=common.SCRATCH))
    results: dict[str, list[common.Timing]] = {"docker": [], "dockweb": []}
    try:
        with common.registry(work / "registry") as reg:
            ref = f"{reg.host}/bench:1"
            common.log(f"pushing to {ref}")
            im.push_image(reg.host, "bench", "1", image)
            fs_count = 0

            def fresh_dir() -> Path:
                nonlocal fs_count
                fs_count += 1
                return work / f"fs-{fs_count}"

            if not args.no_warmup:
                # Pages of the registry's blobs, the binaries and dockweb's modules.
                for tool in tools:
                    t = pull[tool](fresh_dir(), ref)
                    print(f"warm-up: {tool:7} {t.seconds:7.2f} s (not counted)", flush=True)
            for run in range(1, args.runs + 1):
                # Docker first in odd runs, dockweb first in even ones: neither always
                # follows the other's cleanup.
                for tool in tools if run % 2 else tools[::-1]:
                    t = pull[tool](fresh_dir(), ref)
                    results[tool].append(t)
                    line = f"run {run}: {tool:7} {t.seconds:7.2f} s"
                    if tool == "dockweb":
                        line += (
                            f", peak RSS {common.mib(t.peak_rss_tree)} (tree, sampled), "
                            f"{common.mib(t.max_rss_wait4)} (largest process)"
                        )
                    print(line, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    docker_times = [t.seconds for t in results["docker"]]
    dockweb_times = [t.seconds for t in results["dockweb"]]
    if docker_times:
        print(f"docker median {statistics.median(docker_times):.2f} s")
    if dockweb_times:
        print(f"dockweb median {statistics.median(dockweb_times):.2f} s")
        peak = max(t.peak_rss_tree for t in results["dockweb"])
        print(f"dockweb peak RSS {common.mib(peak)}")
    if docker_times and dockweb_times:
        print(f"median ratio dockweb/docker {median_ratio(docker_times, dockweb_times):.2f}")
    return 0


def warm_variant(image: im.Image) -> im.Image:
    """``image`` with another top layer: pulling it finds every base layer present."""
    top = im.Layer([im.dir_("etc"), im.file("etc/bench-variant", b"2\n")])
    return im.Image([*image.layers[:-1], top], {"Cmd": ["/bin/bash"], "WorkingDir": "/app"})


HOSTILE_SIZE = 1536 << 20  # what the "huge" modes announce and send: 1.5 GB


def hostile_rss(env: common.DockwebEnv) -> list[tuple[str, int, int, str]]:
    """`dockweb pull` from each of tests.support.hostile_registry's misbehaving registries
    (realm-elsewhere aside: a credentials check, not a memory one). Each row: the mode, the
    exit code, the CLI's peak RSS (the kernel's ru_maxrss, via tests/support/peakrss.py),
    the last line it printed on stderr."""
    rows = []
    for mode in hr.MODES:
        if mode == "realm-elsewhere":
            continue
        size = {"size": HOSTILE_SIZE} if mode in ("manifest-huge", "blob-longer") else {}
        with hr.HostileRegistry(mode, **size) as server, tempfile.TemporaryFile() as err:
            code, rss = peakrss.run(
                env.command("pull", f"{server.host}/{hr.REPO}:{hr.TAG}"),
                cwd=common.REPO_ROOT,
                env={**env.env(), "DOCKWEB_PULL_SERVICE": "0"},
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=300,
            )
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
        rows.append((mode, code, rss, lines[-1] if lines else ""))
    return rows


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s" if values else "     -"


def lived_main(args: argparse.Namespace) -> int:
    """Real use: the machine's own filesystem, stores that live through the whole run."""
    image, meta = build_image(args.cache)
    variant = warm_variant(image)
    compressed = sum(m["size"] for m in meta["layers"])
    entries = sum(m["entries"] for m in meta["layers"])
    print(
        f"image: {len(image.layers)} layers, {common.mib(compressed)} compressed, "
        f"{entries} tar entries; stores on {common.SCRATCH} (the machine's filesystem)"
    )
    tools = ("docker", "cli", "thin", "page", "socket")
    times: dict[str, list[float]] = {k: [] for k in tools}
    warm: dict[str, list[float]] = {k: [] for k in tools}
    cli_peak = 0
    with common.scratch_dir("dockweb-bench-lived-") as scratch:
        with RedisServer(scratch / "redis") as redis_server:
            common.setup_django(scratch, redis_server.url)
            env = common.DockwebEnv(scratch / "store", scratch / "data")
            client = pull_page.operator_client()
            with (
                common.registry(scratch / "registry") as reg,
                common.private_dockerd(scratch / "docker", common.DOCKERD_LOG) as docker,
                CeleryWorker(
                    db_path=scratch / "data" / "db.sqlite3",
                    store_root=scratch / "store",
                    data_dir=scratch / "data",
                    broker_url=redis_server.url,
                    log_path=scratch / "worker.log",
                ) as worker,
                common.dockweb_service(env, scratch / "api.sock", scratch / "service.log") as (
                    api,
                    service_pid,
                ),
            ):
                ref, ref2 = f"{reg.host}/bench:1", f"{reg.host}/bench:2"
                common.log(f"pushing {ref} and {ref2}")
                im.push_image(reg.host, "bench", "1", image)
                im.push_image(reg.host, "bench", "2", variant)

                def docker_pull(r: str) -> float:
                    t = common.run_timed(docker.command("pull", r))
                    if t.returncode:
                        raise RuntimeError(f"docker pull {r}: {t.stderr.strip()}")
                    return t.seconds

                direct_env = {**env.env(), "DOCKWEB_PULL_SERVICE": "0"}
                thin_env = {**env.env(), "DOCKWEB_API_SOCKET": f"unix://{scratch / 'api.sock'}"}

                def cli_pull(r: str, environ: dict = direct_env) -> float:
                    nonlocal cli_peak
                    t = common.run_timed(env.command("pull", r), env=environ, cwd=common.REPO_ROOT)
                    if t.returncode:
                        raise RuntimeError(f"dockweb pull {r}: {t.stderr.strip()}")
                    cli_peak = max(cli_peak, t.peak_rss_tree)
                    return t.seconds

                def socket_pull(r: str) -> float:
                    t = common.run_timed([*api, "pull", r])
                    if t.returncode:
                        raise RuntimeError(f"docker pull {r} through dockweb: {t.stderr.strip()}")
                    return t.seconds

                def socket_remove(r: str) -> None:
                    subprocess.run([*api, "rmi", r], capture_output=True, check=True)

                pull = {"docker": docker_pull, "cli": cli_pull}
                pull["page"] = lambda r: pull_page.page_pull(client, r)
                pull["thin"] = lambda r: cli_pull(r, thin_env)
                pull["socket"] = socket_pull
                remove = {
                    "docker": lambda r: docker.run("rmi", r),
                    "cli": lambda r: env.run("rmi", r),
                    "thin": lambda r: env.run("rmi", r),
                    "page": common.remove_image,
                    "socket": socket_remove,
                }
                for cycle in range(1, args.cycles + 1):
                    for tool in ("docker", "cli"):
                        seconds = pull[tool](ref)
                        remove[tool](ref)
                        common.log(f"aging cycle {cycle}: {tool} {seconds:.2f} s")
                with (
                    common.PeakRss(worker.pid) as worker_rss,
                    common.PeakRss(service_pid) as service_rss,
                ):
                    for run in range(1, args.runs + 1):
                        order = list(tools)
                        for tool in order if run % 2 else order[::-1]:
                            seconds = pull[tool](ref)
                            remove[tool](ref)
                            times[tool].append(seconds)
                            print(f"run {run}: {tool:6} {seconds:6.2f} s", flush=True)
                    docker_pull(ref)
                    cli_pull(ref)
                    for run in range(1, args.runs + 1):
                        for tool in tools:
                            seconds = pull[tool](ref2)
                            remove[tool](ref2)
                            warm[tool].append(seconds)
                            print(f"warm {run}: {tool:6} {seconds:6.2f} s", flush=True)
                    remove["docker"](ref)
                    remove["cli"](ref)
                common.log("dockweb pull from hostile registries ...")
                hostile = hostile_rss(env)
    print(f"\ncold pulls on a store that has lived ({args.cycles} pull+remove cycles first):")
    labels = (
        ("docker", "docker pull"),
        ("cli", "dockweb pull, no service"),
        ("thin", "dockweb pull, service running"),
        ("page", "dashboard"),
        ("socket", "docker pull -H dockweb's socket"),
    )
    for tool, label in labels:
        line = f"  {label:32} median {_median(times[tool])}"
        if tool != "docker" and times[tool] and times["docker"]:
            line += f"   ratio {median_ratio(times['docker'], times[tool]):.2f}"
        print(line)
    print("warm pulls (every base layer present, only the top layer new):")
    for tool, label in labels:
        print(f"  {label:32} median {_median(warm[tool])}")
    print(f"dockweb pull peak RSS (process tree, sampled): {common.mib(cli_peak)}")
    for what, rss in (
        ("worker peak RSS during the dashboard's pulls", worker_rss),
        ("service peak RSS during the timed pulls", service_rss),
    ):
        print(
            f"{what}: {common.mib(rss.peak_single)} (one process),"
            f" {common.mib(rss.peak)} (with its children, summed)"
        )
    print("dockweb pull from hostile registries (peak RSS by the kernel, exit code, error):")
    for mode, code, rss, message in hostile:
        print(f"  {mode:17} {common.mib(rss):>10}  exit {code}  {message[:90]}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=10, help="untimed pull+remove cycles first")
    parser.add_argument("--cache", type=Path, default=Path("/var/cache/dockweb-bench"))
    parser.add_argument(
        "--lab", action="store_true", help="every cold pull on a fresh ext4 filesystem (CLI only)"
    )
    parser.add_argument("--docker-only", action="store_true", help="--lab: skip dockweb")
    parser.add_argument("--dockweb-only", action="store_true", help="--lab: skip docker")
    parser.add_argument(
        "--no-warmup", action="store_true", help="--lab: skip the untimed first pulls"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.lab:
        return lab_main(args)
    return lived_main(args)


if __name__ == "__main__":
    sys.exit(main())
