"""How fast the layer explorer is on an image of 50,000 files: the analysis and its pages.

    python -m benchmarks.layer_explorer [--runs 20] [--files 50000]

Builds, with tests.support.images (streamed to disk), an image of four layers shaped like a
real build, pushes it to a local registry and pulls it into a fresh store:

- layer 1: ``--files`` x 0.6 small files (0-4 KB) in /usr/lib/pkgNNN/ (100 a directory)
  and 2,000 in /usr/share/doc/;
- layer 2: ``--files`` x 0.3 files in one directory, /usr/share/big/, and an 8 MB
  /opt/cache/blob;
- layer 3: overwrites the first 2,000 files of layer 1, deletes /opt/cache/blob and the
  last ten pkg directories (whiteouts), makes /usr/share/doc opaque with 10 files of its
  own, adds ``--files`` x 0.06 files;
- layer 4: 50 config files.

Then measures, page cache warm (the pull just wrote the layers):

1. ``layerfs.analyze_image`` (the walk and the merge), ``--runs`` times;
2. ``services.analyze_image(refresh=True)``: walk, cache file, database rows, as the
   worker does after a pull;
3. with Django's test client, logged in, DOCKWEB_ROOT pointing at an empty directory and
   ``services.get_store`` refusing (the pages read the database only), ``--runs`` times
   each: the image page (explorer summary), the largest layer's file list (htmx partial,
   first 500 rows), the file tree at /usr/share/big (the largest directory), the same
   filtered by name, and the file tree's root.

Prints median, p95 and max per figure. Bounds: analysis median < 1 s, every page's median
< 1 s; exit status 1 when one is exceeded. Run as root (unpacking sets owners).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tarfile
import time
from pathlib import Path

from benchmarks import common
from benchmarks.common import log, percentile
from tests.support import images as im
from tests.support.registry import RegistryServer

BOUND_S = 1.0


def figures(seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"median {statistics.median(ms):7.1f} ms  p95 {percentile(ms, 95):7.1f} ms  "
        f"max {max(ms):7.1f} ms  (n={len(ms)})"
    )


def _add_dir(tar: tarfile.TarFile, path: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(path)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, im.MTIME
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, path: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime = len(data), mode, im.MTIME
    tar.addfile(info, _Bytes(data))


def _add_whiteout(tar: tarfile.TarFile, path: str) -> None:
    parent, _, name = path.rpartition("/")
    _add_file(tar, f"{parent}/.wh.{name}", b"", 0o600)


class _Bytes:
    """A minimal file object for tarfile.addfile, cheaper than io.BytesIO per member."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk = self.data[self.pos : end]
        self.pos += len(chunk)
        return chunk


def build_image(scratch: Path, files: int) -> tuple[im.Image, dict]:
    rng = random.Random(1)
    pool = rng.randbytes(1 << 16)

    def data(n: int) -> bytes:
        start = rng.randrange(0, len(pool) - n)
        return pool[start : start + n]

    n_lib = int(files * 0.6)
    n_big = int(files * 0.3)
    n_new = int(files * 0.06)
    lib_dirs = (n_lib + 99) // 100
    lib_paths = [f"usr/lib/pkg{i // 100:03d}/lib{i:05d}.so" for i in range(n_lib)]

    def base(tar: tarfile.TarFile) -> None:
        for d in ("etc", "usr", "usr/lib", "usr/share", "usr/share/doc", "opt"):
            _add_dir(tar, d)
        for i, path in enumerate(lib_paths):
            if i % 100 == 0:
                _add_dir(tar, path.rpartition("/")[0])
            _add_file(tar, path, data(rng.randrange(0, 4096)))
        for i in range(2000):
            _add_file(tar, f"usr/share/doc/README{i:04d}", data(rng.randrange(200, 2000)))

    def big(tar: tarfile.TarFile) -> None:
        for d in ("usr", "usr/share", "usr/share/big", "opt", "opt/cache"):
            _add_dir(tar, d)
        for i in range(n_big):
            _add_file(tar, f"usr/share/big/f{i:06d}", data(rng.randrange(0, 2048)))
        _add_file(tar, "opt/cache/blob", rng.randbytes(8_000_000))

    def rework(tar: tarfile.TarFile) -> None:
        for d in ("usr", "usr/lib", "usr/share", "opt", "opt/cache", "usr/local"):
            _add_dir(tar, d)
        for i, path in enumerate(lib_paths[:2000]):
            if i % 100 == 0:
                _add_dir(tar, path.rpartition("/")[0])
            _add_file(tar, path, data(rng.randrange(0, 4096)))
        for d in range(lib_dirs - 10, lib_dirs):
            _add_whiteout(tar, f"usr/lib/pkg{d:03d}")
        _add_whiteout(tar, "opt/cache/blob")
        _add_dir(tar, "usr/share/doc")
        _add_file(tar, "usr/share/doc/.wh..wh..opq", b"", 0o600)
        for i in range(10):
            _add_file(tar, f"usr/share/doc/NEW{i}", data(500))
        for i in range(n_new):
            if i % 200 == 0:
                _add_dir(tar, f"usr/local/d{i // 200:03d}")
            _add_file(tar, f"usr/local/d{i // 200:03d}/n{i:05d}", data(rng.randrange(0, 4096)))

    def config(tar: tarfile.TarFile) -> None:
        _add_dir(tar, "etc")
        for i in range(50):
            _add_file(tar, f"etc/app{i:02d}.conf", data(300))

    layers = [
        im.Layer.stream(scratch / f"layer{i}.blob", fill)
        for i, fill in enumerate((base, big, rework, config))
    ]
    history = [
        {"created": im.CREATED, "created_by": cmd}
        for cmd in (
            "ADD rootfs.tar.gz /",
            "RUN build-big-things",
            "RUN apt-get upgrade && rm -rf /opt/cache && rm -rf /usr/share/doc/*",
            "COPY etc/ /etc/",
        )
    ]
    shape = {"lib": n_lib, "big": n_big, "new": n_new}
    return im.Image(layers, {"Cmd": ["sh"]}, history=history), shape


def time_get(client, url: str, runs: int, headers: dict | None = None) -> tuple[list[float], int]:
    client.get(url, headers=headers or {})  # warm-up: templates compiled, connection open
    times = []
    size = 0
    for _ in range(runs):
        start = time.perf_counter()
        resp = client.get(url, headers=headers or {})
        times.append(time.perf_counter() - start)
        if resp.status_code != 200:
            raise RuntimeError(f"GET {url}: {resp.status_code}")
        size = len(resp.content)
    return times, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--files", type=int, default=50_000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        log("layer_explorer: run as root (unpacking layers sets their owners)")
        return 2

    with common.scratch_dir("dockweb-layer-explorer-") as scratch:
        common.setup_django(scratch)
        from django.conf import settings

        from dockweb.runtime import layerfs
        from images import services
        from images.models import Image

        log(f"building an image of about {args.files:,} files ...")
        start = time.perf_counter()
        image, shape = build_image(scratch, args.files)
        log(f"built in {time.perf_counter() - start:.1f} s")

        with RegistryServer(scratch / "registry") as registry:
            im.push_image(registry.host, "bench/explorer", "latest", image)
            start = time.perf_counter()
            services.pull_image(f"{registry.host}/bench/explorer:latest")
            pull_s = time.perf_counter() - start
        store = services.get_store()
        row = Image.objects.get(image_id=image.image_id)

        analysis = layerfs.analyze_image(store, image.image_id)
        entries = sum(la.entries for la in analysis.layers)
        print(
            f"image: {len(analysis.layers)} layers, {entries:,} entries in them, "
            f"{analysis.file_count:,} in the final image; largest directory "
            f"/usr/share/big: {shape['big']:,} entries"
        )
        print(
            f"efficiency {analysis.efficiency:.1f}%, {analysis.wasted_bytes / 1e6:.1f} MB "
            f"wasted of {analysis.total_bytes / 1e6:.1f} MB; per layer added/changed/deleted: "
            + ", ".join(f"{la.added}/{la.changed}/{la.deleted}" for la in analysis.layers)
        )
        print(f"pull (with the analysis after it): {pull_s:.2f} s\n")

        walks, cpu = [], []
        for _ in range(args.runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            layerfs.analyze_image(store, image.image_id)
            walks.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        cached = []
        for _ in range(5):
            start = time.perf_counter()
            layerfs.load_or_analyze(store, image.image_id)
            cached.append(time.perf_counter() - start)
        persist = []
        for _ in range(5):
            start = time.perf_counter()
            services.analyze_image(row, refresh=True)
            persist.append(time.perf_counter() - start)
        cache_mb = os.path.getsize(layerfs.cache_path(store, image.image_id)) / 1e6
        print(
            f"layerfs.analyze_image            {figures(walks)}  "
            f"(CPU {statistics.median(cpu) * 1000:.0f} ms)"
        )
        print(f"load_or_analyze, from the cache  {figures(cached)}  ({cache_mb:.1f} MB file)")
        print(f"services.analyze_image(refresh)  {figures(persist)}  (walk + cache + rows)")

        # The pages: no store in reach.
        empty = scratch / "empty"
        empty.mkdir()
        settings.DOCKWEB_ROOT = empty

        def refuse():
            raise AssertionError("a page read the store")

        services.get_store = refuse
        client = common.signed_in_client()
        hex_id = image.image_id[7:]
        largest = max(analysis.layers, key=lambda la: len(la.files)).position
        pages = [
            ("image page (explorer summary)", f"/images/{hex_id}/", None),
            (
                f"layer {largest + 1} files, htmx partial",
                f"/images/{hex_id}/layers/{largest}/",
                {"HX-Request": "true"},
            ),
            (
                "file tree /usr/share/big, page 1",
                f"/images/{hex_id}/files/?path=/usr/share/big",
                None,
            ),
            (
                "file tree /usr/share/big, filtered",
                f"/images/{hex_id}/files/?path=/usr/share/big&q=f0123",
                None,
            ),
            ("file tree /", f"/images/{hex_id}/files/?path=/", None),
        ]
        print()
        over = []
        for label, url, headers in pages:
            times, size = time_get(client, url, args.runs, headers)
            print(f"{label:34} {figures(times)}  {size / 1e3:.0f} kB")
            if statistics.median(times) >= BOUND_S:
                over.append(label)
        if statistics.median(walks) >= BOUND_S:
            over.append("analysis")
        print(f"\nbound {BOUND_S:.0f} s (median): " + (f"EXCEEDED by {over}" if over else "met"))
        return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
