"""Pull every corpus image with Docker and with dockweb; compare the file trees entry by entry.

    cd /work/main && sudo /opt/dwvenv/bin/python -m benchmarks.compare_rootfs [NAME ...]
        [--docker-only] [--dump NAME]

For each item of tests/support/images.py's corpus: push it to a docker-registry on
127.0.0.1, `docker pull` it and `dockweb pull` it (one fresh dockweb store for the run), then
compare, layer by layer and for the merged root: path, type, permission bits (with setuid,
setgid, sticky), uid, gid, size, content hash, mtime (ns), xattrs (overlay's
trusted.overlay.* included, so opaque directories count), symlink target, hard-link groups
and device numbers (whiteouts are 0/0 character devices in overlay form).

Docker's layers are the overlay2 dirs named by `docker image inspect` (GraphDriver.Data
LowerDir and UpperDir), its merged root a read-only overlay of them mounted here; dockweb's
are $DOCKWEB_ROOT/layers/<chain-hex>/diff and the path `dockweb image mount REF` prints.
When both refuse an image, that agrees; when one does, that is a difference.

Prints the differences; exits 1 if there are any, 2 if the dockweb half could not run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks import common
from tests.support import images as im

KINDS = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
    stat.S_IFSOCK: "socket",
}


@dataclass(frozen=True)
class Node:
    kind: str
    mode: str  # octal permission bits with setuid/setgid/sticky
    uid: int
    gid: int
    size: int | None  # files and symlinks: directory sizes depend on the filesystem
    sha256: str | None
    # None for the tree's root; EXTRACTION_TIME for entries stamped when the pull wrote them
    # (whiteout devices, parent directories the tar does not name).
    mtime_ns: int | str | None
    xattrs: tuple[tuple[str, bytes], ...]
    target: bytes | None
    rdev: tuple[int, int] | None
    hardlinks: tuple[bytes, ...] | None  # every path of the tree sharing this inode


EXTRACTION_TIME = "extraction time"


def snapshot(root: Path, since_ns: int) -> dict[bytes, Node]:
    """Every entry under `root` (symlinks not followed), keyed by path relative to it.

    An mtime between `since_ns` and now is reported as EXTRACTION_TIME.
    """
    now_ns = time.time_ns()
    root_b = os.fsencode(root)
    stats: dict[bytes, os.stat_result] = {b"/": os.lstat(root_b)}
    for dirpath, dirnames, filenames in os.walk(root_b):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            stats[b"/" + os.path.relpath(full, root_b)] = os.lstat(full)
    by_inode: dict[tuple[int, int], list[bytes]] = {}
    for path, st in stats.items():
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            by_inode.setdefault((st.st_dev, st.st_ino), []).append(path)
    nodes = {}
    for path, st in stats.items():
        full = root_b + path if path != b"/" else root_b
        kind = KINDS[stat.S_IFMT(st.st_mode)]
        group = by_inode.get((st.st_dev, st.st_ino))
        nodes[path] = Node(
            kind=kind,
            mode=oct(stat.S_IMODE(st.st_mode)),
            uid=st.st_uid,
            gid=st.st_gid,
            size=st.st_size if kind in ("file", "symlink") else None,
            sha256=_hash(full) if kind == "file" else None,
            mtime_ns=None
            if path == b"/"
            else EXTRACTION_TIME
            if since_ns <= st.st_mtime_ns <= now_ns
            else st.st_mtime_ns,
            xattrs=tuple(
                sorted(
                    (n, os.getxattr(full, n, follow_symlinks=False))
                    for n in os.listxattr(full, follow_symlinks=False)
                )
            ),
            target=os.readlink(full) if kind == "symlink" else None,
            rdev=(os.major(st.st_rdev), os.minor(st.st_rdev))
            if kind in ("char", "block")
            else None,
            hardlinks=tuple(sorted(group)) if group and len(group) > 1 else None,
        )
    return nodes


def _hash(path: bytes) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:16]


def diff_trees(docker: dict[bytes, Node], dockweb: dict[bytes, Node], where: str) -> list[str]:
    out = []
    for path in sorted(docker.keys() | dockweb.keys()):
        shown = path.decode(errors="backslashreplace")
        a, b = docker.get(path), dockweb.get(path)
        if b is None:
            out.append(f"{where} {shown}: only in docker ({a.kind})")
        elif a is None:
            out.append(f"{where} {shown}: only in dockweb ({b.kind})")
        else:
            for field in Node.__dataclass_fields__:
                va, vb = getattr(a, field), getattr(b, field)
                if va != vb:
                    out.append(f"{where} {shown}: {field} docker={va!r} dockweb={vb!r}")
    return out


def describe(nodes: dict[bytes, Node]) -> str:
    return "\n".join(
        f"  {p.decode(errors='backslashreplace')} {n.kind} {n.mode} {n.uid}:{n.gid}"
        + (f" size={n.size}" if n.size is not None else "")
        + (f" mtime={n.mtime_ns}" if n.mtime_ns is not None else "")
        + (f" -> {n.target.decode(errors='backslashreplace')}" if n.target is not None else "")
        + (f" dev={n.rdev[0]},{n.rdev[1]}" if n.rdev else "")
        + (f" xattrs={dict(n.xattrs)}" if n.xattrs else "")
        + (f" links={len(n.hardlinks)}" if n.hardlinks else "")
        for p, n in sorted(nodes.items())
    )


@contextmanager
def overlay_ro(layers_bottom_up: list[Path], workdir: Path):
    """The merged view of `layers`, as a read-only overlay (one layer: the dir itself)."""
    if len(layers_bottom_up) == 1:
        yield layers_bottom_up[0]
        return
    target = Path(tempfile.mkdtemp(prefix="merged-", dir=workdir))
    lower = ":".join(str(p) for p in reversed(layers_bottom_up))
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lower}", str(target)],
        check=True,
    )
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)
        target.rmdir()


@dataclass
class Pulled:
    error: str | None = None
    layers: list[dict[bytes, Node]] | None = None
    merged: dict[bytes, Node] | None = None


def pull_docker(ref: str, workdir: Path) -> Pulled:
    common.docker("rmi", "-f", ref, check=False)
    since_ns = time.time_ns()
    proc = common.docker("pull", ref, check=False)
    if proc.returncode != 0:
        return Pulled(error=proc.stderr.strip())
    info = json.loads(common.docker("image", "inspect", ref).stdout)[0]
    data = info["GraphDriver"]["Data"]
    lower = data.get("LowerDir", "")
    dirs = [Path(p) for p in reversed(lower.split(":")) if p] + [Path(data["UpperDir"])]
    layers = [snapshot(d, since_ns) for d in dirs]
    with overlay_ro(dirs, workdir) as merged:
        return Pulled(layers=layers, merged=snapshot(merged, since_ns))


def pull_dockweb(store: common.DockwebEnv, ref: str, chain_ids: list[str]) -> Pulled:
    since_ns = time.time_ns()
    proc = store.run("pull", ref, check=False)
    if proc.returncode != 0:
        return Pulled(error=proc.stderr.strip())
    layers = [
        snapshot(store.root / "layers" / c.removeprefix("sha256:") / "diff", since_ns)
        for c in chain_ids
    ]
    mount = store.run("image", "mount", ref)
    return Pulled(layers=layers, merged=snapshot(Path(mount.stdout.strip()), since_ns))


# Names the hostile corpus items write; finding one outside a layer means an escape.
ESCAPE_NAMES = {b"escaped-dotdot", b"abs-evil", b"evil-symlink", b"evil-abs", b"evil-hardlink"}
HOST_PLACES = (Path("/"), Path("/tmp"), Path("/etc"), Path("/abs"), Path("/var/tmp"))


def escapes(store: common.DockwebEnv) -> list[str]:
    """Hostile names found on the host or in the store outside a layer's diff dir."""
    found = [
        str(place / os.fsdecode(n))
        for place in HOST_PLACES
        for n in ESCAPE_NAMES
        if os.path.lexists(place / os.fsdecode(n))
    ]
    base = os.fsencode(store.root.parent)
    for dirpath, dirnames, filenames in os.walk(base):
        if dirpath.endswith(b"/diff") or b"/mounts/" in dirpath:
            dirnames.clear()  # inside a layer (or a mount of layers): that is where they belong
            continue
        found += [
            os.fsdecode(os.path.join(dirpath, n)) for n in filenames + dirnames if n in ESCAPE_NAMES
        ]
    return found


def compare(name: str, docker: Pulled, dockweb: Pulled) -> list[str]:
    if docker.error or dockweb.error:
        if docker.error and dockweb.error:
            return []
        return [
            f"{name}: docker {'refused: ' + docker.error if docker.error else 'pulled it'}; "
            f"dockweb {'refused: ' + dockweb.error if dockweb.error else 'pulled it'}"
        ]
    out = []
    if len(docker.layers) != len(dockweb.layers):
        out.append(
            f"{name}: {len(docker.layers)} layers in docker, {len(dockweb.layers)} in dockweb"
        )
    for n, (a, b) in enumerate(zip(docker.layers, dockweb.layers, strict=False)):
        out += diff_trees(a, b, f"{name} layer {n}")
    return out + diff_trees(docker.merged, dockweb.merged, f"{name} merged")


def platform_image(item: im.Image | im.Index) -> im.Image:
    """The image a pull on linux/amd64 resolves to."""
    return item.images[0] if isinstance(item, im.Index) else item


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="corpus items (default: all)")
    parser.add_argument("--docker-only", action="store_true", help="pull with Docker only")
    parser.add_argument("--dump", action="store_true", help="print Docker's trees")
    args = parser.parse_args()

    items = im.corpus()
    names = args.names or list(items)
    unknown = set(names) - set(items)
    if unknown:
        parser.error(f"unknown corpus items: {', '.join(sorted(unknown))}")
    run_dockweb = not args.docker_only
    if run_dockweb and not common.dockweb_cli_ready():
        print("dockweb CLI not there yet (dockweb/cli/__main__.py): pulling with Docker only")
        run_dockweb = False

    differences: list[str] = []
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="compare-rootfs-", dir=common.SCRATCH))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        reg = stack.enter_context(common.registry(work / "registry"))
        stack.enter_context(common.dockerd(common.DOCKERD_LOG))
        store = common.DockwebEnv.fresh() if run_dockweb else None
        if store:
            stack.callback(store.cleanup)
        for name in names:
            item = items[name]
            ref = f"{reg.host}/corpus/{name}:v1"
            im.push(reg.host, f"corpus/{name}", "v1", item)
            image = platform_image(item)
            docker = pull_docker(ref, work)
            known = im.DOCKER_REFUSES.get(name)
            if docker.error:
                print(
                    f"{name}: docker refused{' (known: ' + known + ')' if known else ''}: "
                    f"{docker.error}"
                )
            else:
                counts = "+".join(str(len(t)) for t in docker.layers)
                print(f"{name}: docker pulled {len(docker.layers)} layers, {counts} entries")
                if known:
                    differences.append(f"{name}: docker pulled it, expected refusal ({known})")
                if args.dump:
                    for n, layer in enumerate(docker.layers):
                        print(f" layer {n}:\n{describe(layer)}")
            if store:
                dockweb = pull_dockweb(store, ref, image.chain_ids)
                found = compare(name, docker, dockweb)
                found += [f"{name}: ESCAPED the layer: {path}" for path in escapes(store)]
                if name == "oci_zstd" and docker.error and not dockweb.error:
                    found = []  # Docker 20.10 lacks zstd; newer engines pull it
                print(f"{name}: {'same' if not found else f'{len(found)} differences'}")
                differences += found
            common.docker("rmi", "-f", ref, check=False)
    for line in differences:
        print(line)
    if differences:
        return 1
    return 0 if run_dockweb else 2


if __name__ == "__main__":
    sys.exit(main())
