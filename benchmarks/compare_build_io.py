"""`dockweb save` -> `docker load` and `docker save` -> `dockweb load`: same image IDs, same trees.

    cd /work/main && sudo /opt/dwvenv/bin/python -m benchmarks.compare_build_io [NAME ...]

Needs root and Debian's docker.io 20.10 (/usr/bin/docker, /usr/sbin/dockerd); not run in CI.
A private dockerd (benchmarks.common.private_dockerd) on a scratch data root, a
docker-registry on 127.0.0.1, and fresh dockweb stores. For each corpus image (default: the
single-platform ones that both pull):

1. push it to the registry; `dockweb pull`, `dockweb save -o`, `docker load -i`; the ID
   Docker reports must be the image's, and its merged tree (the overlay2 dirs of
   `docker image inspect`) must equal the one `dockweb image mount` shows;
2. `docker pull`, `docker save -o`, `dockweb load -i` into another fresh store; same checks.

Trees are compared with benchmarks.compare_rootfs.snapshot (type, mode, owner, size,
content hash, mtime, xattrs, link target, hard-link groups, devices). Prints one line per
image and direction, then the differences; exits 1 if there are any.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common
from benchmarks.compare_rootfs import diff_trees, overlay_ro, snapshot
from tests.support import images as im

DEFAULT = [
    "busybox_base",
    "with_whiteouts",
    "with_opaque_dir",
    "with_hardlinks",
    "with_symlinks",
    "with_special_files",
    "with_long_names",
]


def docker_tree(docker: common.PrivateDocker, ref: str, workdir: Path, since_ns: int):
    info = json.loads(docker.run("image", "inspect", ref).stdout)[0]
    data = info["GraphDriver"]["Data"]
    lower = data.get("LowerDir", "")
    dirs = [Path(p) for p in reversed(lower.split(":")) if p] + [Path(data["UpperDir"])]
    with overlay_ro(dirs, workdir) as merged:
        return info["Id"], snapshot(merged, since_ns)


def dockweb_tree(store: common.DockwebEnv, ref: str, since_ns: int):
    path = store.run("image", "mount", ref).stdout.strip()
    try:
        return snapshot(Path(path), since_ns)
    finally:
        store.run("image", "unmount", ref, check=False)


def one(name: str, image: im.Image, reg, docker, workdir: Path) -> list[str]:
    problems: list[str] = []
    repo = "io/" + name.replace("_", "-")
    ref = f"{reg.host}/{repo}:1"
    im.push_image(reg.host, repo, "1", image)

    # dockweb save -> docker load
    since = time.time_ns()
    a = common.DockwebEnv.fresh()
    try:
        a.run("pull", "-q", ref)
        tar = workdir / f"{name}-dockweb.tar"
        started = time.perf_counter()
        a.run("save", "-o", str(tar), ref)
        save_s = time.perf_counter() - started
        docker.run("rmi", "-f", ref, check=False)
        started = time.perf_counter()
        out = docker.run("load", "-i", str(tar)).stdout.strip()
        load_s = time.perf_counter() - started
        docker_id, docker_nodes = docker_tree(docker, ref, workdir, since)
        ours = dockweb_tree(a, ref, since)
        same = docker_id == image.image_id
        diffs = diff_trees(docker_nodes, ours, f"{name} dockweb->docker")
        print(
            f"{name:20} dockweb save -> docker load: id {'same' if same else 'DIFFERENT'}, "
            f"tree {'same' if not diffs else f'{len(diffs)} differences'} "
            f"(save {save_s:.2f} s, docker load {load_s:.2f} s; docker said {out!r})"
        )
        if not same:
            problems.append(f"{name}: docker loaded {docker_id}, expected {image.image_id}")
        problems += diffs
    finally:
        a.cleanup()

    # docker save -> dockweb load
    since = time.time_ns()
    b = common.DockwebEnv.fresh()
    try:
        docker.run("rmi", "-f", ref, check=False)
        docker.run("pull", "-q", ref)
        tar = workdir / f"{name}-docker.tar"
        docker.run("save", "-o", str(tar), ref)
        started = time.perf_counter()
        out = b.run("load", "-i", str(tar)).stdout.strip()
        load_s = time.perf_counter() - started
        ids = b.run("images", "--no-trunc", "-q", ref).stdout.split()
        docker_id, docker_nodes = docker_tree(docker, ref, workdir, since)
        ours = dockweb_tree(b, ref, since)
        same = ids == [image.image_id]
        diffs = diff_trees(docker_nodes, ours, f"{name} docker->dockweb")
        print(
            f"{name:20} docker save -> dockweb load: id {'same' if same else 'DIFFERENT'}, "
            f"tree {'same' if not diffs else f'{len(diffs)} differences'} "
            f"(dockweb load {load_s:.2f} s; dockweb said {out!r})"
        )
        if not same:
            problems.append(f"{name}: dockweb loaded {ids}, expected {image.image_id}")
        problems += diffs
    finally:
        b.cleanup()
    return problems


def main() -> int:
    names = sys.argv[1:] or DEFAULT
    corpus = im.corpus()
    unknown = [n for n in names if n not in corpus or not isinstance(corpus[n], im.Image)]
    if unknown:
        print(f"not single-platform corpus images: {unknown}", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="dockweb-io-", dir=common.SCRATCH))
    problems: list[str] = []
    with (
        common.registry(base / "registry") as reg,
        common.private_dockerd(base / "docker", common.DOCKERD_LOG) as docker,
    ):
        for name in names:
            try:
                problems += one(name, corpus[name], reg, docker, base)
            except RuntimeError as err:
                problems.append(f"{name}: {err}")
                print(f"{name:20} failed: {err}")
    common.unmount_all(base)
    import shutil

    shutil.rmtree(base, ignore_errors=True)
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
