"""`dockweb build` against `docker build` (classic builder): same trees, config and history.

    cd /work/main && sudo /opt/dwvenv/bin/python -m benchmarks.compare_build [CASE ...] [--show]

Needs root and Debian's docker.io 20.10; not run in CI. A private dockerd
(benchmarks.common.private_dockerd) on a scratch data root, a docker-registry on 127.0.0.1
holding busybox_base (tests/support/images.py), pulled by both tools, and one fresh dockweb
store for the whole run. Each case writes a build context (every context file and directory
gets a fixed old mtime with a sub-second part), then builds it with
`DOCKER_BUILDKIT=0 docker build` and with `dockweb build`, and compares:

- every layer's changes (Docker: the overlay2 dirs named by `docker image inspect`;
  dockweb: $DOCKWEB_ROOT/layers/<chain>/diff) and the merged root (a read-only overlay of
  Docker's dirs; `dockweb image mount`), with benchmarks.compare_rootfs.snapshot: type,
  mode, owner, size, content hash, mtime (ns), xattrs, link target, hard-link groups,
  devices. Ignored, because it must differ: the mtime of anything stamped during the builds
  (files, directories and whiteouts a RUN, a copy-up or a created parent directory made);
  they compare as "extraction time" (any mtime from one second before the first build to the
  comparison). Everything from the context or a tar keeps its own mtime and is compared;
- the config fields Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes,
  Shell, StopSignal, OnBuild, Healthcheck;
- the number of layers (rootfs.diff_ids) and of history entries, and each entry's
  created_by and empty_layer (differences listed; COPY/ADD's `file:<hash>` compared too);
- for the rebuild case, which steps each tool took from the cache;
- the `Step N/M : ...`, `Successfully ...` and `[Warning]` lines of the output.

Cases of issue 20 (multi-stage and the rest of the classic builder): multistage (built
twice), target, copy_from_image (an image neither tool has), archives (gzip, bzip2, xz,
zstd), add_url (files served on 127.0.0.1 by this script), cache_from (build, push, rmi,
pull back, build without and with --cache-from), onbuild, stage_errors (each tool's exit
code and error text for eight failing multi-stage files). Both tools build with
--network=none.

Prints PASS or the differences per case; exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from benchmarks import common
from benchmarks.compare_build_io import docker_tree, dockweb_tree
from benchmarks.compare_rootfs import diff_trees, snapshot
from dockweb.runtime.digest import chain_ids
from tests.support import images as im

# Context mtimes: 2021-03-04 05:06:07.123456789 UTC, far from any build time.
CONTEXT_MTIME_NS = 1614834367_123456789
CONFIG_FIELDS = (
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "Shell",
    "StopSignal",
    "OnBuild",
    "Healthcheck",
)


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _ti(name: str, kind=tarfile.REGTYPE, *, data=b"", mode=0o644, uid=0, gid=0, mtime=1e9, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, mtime
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def local_tar() -> bytes:
    return _tar(
        [
            _ti("pkg/", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000, mtime=1_300_000_000),
            _ti("pkg/bin.sh", data=b"#!/bin/sh\necho hi\n", mode=0o755, mtime=1_300_000_001),
            _ti("pkg/conf", data=b"k=v\n", mode=0o600, uid=65534, gid=65534, mtime=1_300_000_002),
            _ti("pkg/link", tarfile.SYMTYPE, link="conf", mtime=1_300_000_003),
            _ti("pkg/hard", tarfile.LNKTYPE, link="pkg/conf", mtime=1_300_000_002),
            _ti("pkg/suid", data=b"s", mode=0o4755, mtime=1_300_000_004),
            _ti("pkg/shared/", tarfile.DIRTYPE, mode=0o2777, mtime=1_300_000_006),
            _ti("pkg/shared/w", data=b"w", mode=0o666, uid=1, gid=1, mtime=1_300_000_007),
            # a parent the tar does not name: created at extraction
            _ti("other/deep/f", data=b"deep\n", mtime=1_300_000_005),
        ]
    )


# name -> (files of the context: path -> bytes, or (bytes, mode), or "->target" symlink;
#          list of Dockerfiles built in order, each with the context changes made before it)
CASES: dict[str, dict] = {
    "run_files": {
        "context": {},
        "dockerfile": (
            "FROM {base}\n"
            "RUN mkdir -p /data/sub /data/empty && echo hello > /data/a.txt"
            " && printf abc > /data/sub/b && ln -s a.txt /data/link"
            " && ln -s /nowhere /data/dangling"
            " && ln /data/a.txt /data/hard && mkfifo /data/fifo && chmod 4750 /data/a.txt"
            " && chmod 700 /data/sub && chown 1000:1000 /data/sub/b && chown 65534:0 /data/empty\n"
            "RUN rm /etc/group && rm -r /var/log && echo more >> /data/a.txt && rm /data/link"
            " && chmod 1777 /data/empty && touch -d @1000000000 /data/sub/b\n"
            "RUN rm -r /data/sub && mkdir /data/sub && echo new > /data/sub/c\n"
        ),
    },
    "copy_chown": {
        "context": {
            ".dockerignore": b"*.log\n**/secret*\n!keep.log\nbuild\nDockerfile\n",
            "a.txt": b"a\n",
            "b.sh": (b"#!/bin/sh\n", 0o755),
            "private": (b"p\n", 0o600),
            "x.log": b"ignored\n",
            "keep.log": b"kept\n",
            "build/out": b"ignored\n",
            "sub/ok.txt": b"ok\n",
            "sub/secret.key": b"ignored\n",
            "sub/deeper/z": b"z\n",
            "sub/alink": "->ok.txt",
        },
        "dockerfile": (
            "FROM {base}\n"
            "COPY . /srv/\n"
            "COPY --chown=app:app sub/ /opt/sub/\n"
            "COPY --chown=1000 a.txt b.sh /dst/\n"
            "COPY --chown=65534:0 private /home/app/new/dir/private\n"
            "COPY a.txt /etc/passwd2\n"
        ),
    },
    "add_tar": {
        "context": {"pkg.tar": local_tar(), "pkg.tgz": None, "plain.txt": b"plain\n"},
        "dockerfile": (
            "FROM {base}\nADD pkg.tar /opt/\nADD pkg.tgz /gz/\nADD plain.txt /plain/\n"
            "ADD pkg.tar /copied.tar/x.tar\n"
        ),
    },
    "metadata": {
        "context": {},
        "dockerfile": (
            "FROM {base}\n"
            'ENV A=1 B="two words" PATH=/usr/local/bin:$PATH\n'
            "WORKDIR /work/dir\n"
            "WORKDIR sub\n"
            'LABEL org.example.a=one b="two three"\n'
            "EXPOSE 80 443/udp 8080/tcp\n"
            "VOLUME /vol /data\n"
            "USER app\n"
            "RUN touch /tmp/byapp && id > /tmp/id.txt\n"
            "USER 1000:1000\n"
            'ENTRYPOINT ["/bin/sh", "-c"]\n'
            'CMD ["echo $A"]\n'
            "STOPSIGNAL SIGTERM\n"
        ),
    },
}
# Health checks (issue 20): the HEALTHCHECK history text (Go's %q of the config: durations as
# Go prints them, retries as a quoted rune) and the config, for the forms people write.
CASES["healthcheck"] = {
    "context": {},
    "dockerfile": (
        "FROM {base}\n"
        "HEALTHCHECK CMD true\n"
        "HEALTHCHECK --interval=5s --timeout=3s --start-period=1m30s --retries=3 "
        'CMD ["/bin/sh", "-c", "exit 0"]\n'
        "HEALTHCHECK --interval=500ms CMD nc -z localhost 80 || exit 1\n"
        "HEALTHCHECK NONE\n"
        "HEALTHCHECK --interval=1h --retries=12 CMD echo ok\n"
    ),
}
# Multi-stage (issue 20): ARG before FROM used in FROM, a named stage, COPY --from by name and
# by index, .dockerignore with exceptions and **, ADD of a local tar; built twice (the second
# build must take the same steps from the cache); then the same file with --target.
MULTISTAGE = (
    "ARG BASE={base}\n"
    "ARG UNUSED_META\n"
    "FROM $BASE AS builder\n"
    "ARG V=1\n"
    'RUN mkdir -p /out/sub && echo "v$V" > /out/sub/f && chmod 640 /out/sub/f'
    " && chown 1000:1000 /out/sub/f && ln -s sub/f /out/link && mkdir /out/empty\n"
    "COPY a.txt keep.log /out/\n"
    "FROM {base}\n"
    "COPY --from=builder /out /app/\n"
    "COPY --from=0 /out/sub/f /single\n"
    "COPY --from=builder /out/link /followed\n"
    "ADD pkg.tar /opt/\n"
    'CMD ["cat", "/single"]\n'
)
MULTISTAGE_CONTEXT = {
    ".dockerignore": b"**/*.log\n!keep.log\nsecret/**\n",
    "a.txt": b"a\n",
    "keep.log": b"kept\n",
    "x.log": b"ignored\n",
    "deep/y.log": b"ignored\n",
    "secret/k": b"ignored\n",
    "pkg.tar": local_tar(),
}
CASES["multistage"] = {
    "context": MULTISTAGE_CONTEXT,
    "dockerfile": MULTISTAGE,
    "rebuild": True,
}
CASES["target"] = {
    "context": MULTISTAGE_CONTEXT,
    "dockerfile": MULTISTAGE,
    "args": ["--target", "builder", "--build-arg", "V=2"],
}
# COPY --from an image neither tool has: both pull it (TOOLS, pushed by main()).
CASES["copy_from_image"] = {
    "context": {},
    "dockerfile": (
        "FROM {base}\nCOPY --from={tools} /opt/ /tools/\nCOPY --from={tools} /opt/tool /tool\n"
        "COPY --from={tools} /opt/link /viaLink\n"
    ),
}
# ADD of a tar in every compression: gzip, bzip2 and xz are unpacked; zstd is not known to
# moby 20.10's DetectCompression, so that file is copied as it is.
CASES["archives"] = {
    "context": {"p.tar.gz": "gzip", "p.tar.bz2": "bzip2", "p.tar.xz": "xz", "p.tar.zst": "zstd"},
    "dockerfile": (
        "FROM {base}\nADD p.tar.gz /gz/\nADD p.tar.bz2 /bz2/\nADD p.tar.xz /xz/\n"
        "ADD p.tar.zst /zst/\nADD p.tar.gz p.tar.xz /both/\n"
    ),
}

# ONBUILD triggers of a base (here a stage): run as part of the FROM that uses it.
CASES["onbuild"] = {
    "context": {"a.txt": b"a\n"},
    "dockerfile": (
        "FROM {base} AS parent\nONBUILD RUN echo trig > /trig\nONBUILD COPY a.txt /a\n"
        "ONBUILD ENV T=1\nFROM parent\nRUN cat /trig /a && echo $T > /t\n"
    ),
    "rebuild": True,
}
# ADD of a URL on 127.0.0.1 (served by this script): dockerd downloads it itself, as dockweb
CASES["add_url"] = {
    "context": {},
    "dockerfile": (
        "FROM {base}\nADD {url}/file.txt /dl/\nADD {url}/p.tar.gz /dl/\n"
        "ADD {url}/file.txt /renamed\n"
    ),
    "rebuild": True,
}


@contextlib.contextmanager
def file_server(root: Path):
    """An HTTP server on 127.0.0.1 serving ``root`` (Last-Modified: the files' mtimes)."""
    import functools
    import http.server
    import threading

    root.mkdir(parents=True, exist_ok=True)
    (root / "file.txt").write_bytes(b"remote file\n")
    (root / "p.tar.gz").write_bytes(compressed_tar("gzip"))
    for f in root.iterdir():
        os.utime(f, (1_400_000_000, 1_400_000_000))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def tools_image() -> im.Image:
    """The image COPY --from takes files of: owners with and without names on this host."""
    return im.Image(
        [
            im.busybox_layer(),
            im.Layer(
                [
                    im.dir_("opt", mode=0o750, uid=1000, gid=1000),
                    im.file("opt/tool", b"tool\n", mode=0o755, uid=7, gid=7),
                    im.file("opt/data", b"d\n", mode=0o600, uid=4242, gid=4242),
                    im.symlink("opt/link", "tool"),
                    im.dir_("opt/sub", mode=0o700),
                    im.file("opt/sub/x", b"x\n"),
                ]
            ),
        ],
        config={"Cmd": ["sh"]},
    )


def compressed_tar(kind: str) -> bytes:
    import bz2
    import gzip
    import lzma

    raw = _tar([_ti("z/f", data=f"{kind}\n".encode(), mode=0o640, uid=3, mtime=1_300_000_020)])
    if kind == "gzip":
        return gzip.compress(raw, mtime=0)
    if kind == "bzip2":
        return bz2.compress(raw)
    if kind == "xz":
        return lzma.compress(raw)
    return subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True).stdout


REBUILD = "cache_rebuild"
# --cache-from: each tool builds, pushes, removes the image (and so its intermediate images),
# pulls it back, then builds the same Dockerfile without and with --cache-from it.
CACHE_FROM = "cache_from"
CACHE_FROM_DOCKERFILE = (
    "FROM {base}\nRUN echo one > /one\nENV X=1\nCOPY a.txt /a\nRUN echo two > /two\n"
)
REBUILD_DOCKERFILE = (
    "FROM {base}\nRUN echo first > /first\nENV X=1\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b\n"
    "COPY b.txt /b.txt\n"
)


def write_context(ctx: Path, files: dict) -> None:
    ctx.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = ctx / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel == "pkg.tgz":
            content = _tar([_ti("gzdir/f", data=b"gz\n", mtime=1_300_000_010)], gz=True)
        if content in ("gzip", "bzip2", "xz", "zstd"):
            content = compressed_tar(content)
        if isinstance(content, str) and content.startswith("->"):
            if path.is_symlink():
                path.unlink()
            os.symlink(content[2:], path)
            continue
        data, mode = content if isinstance(content, tuple) else (content, 0o644)
        path.write_bytes(data)
        path.chmod(mode)
    stamp(ctx)


def stamp(ctx: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(ctx):
        for name in dirnames + filenames:
            os.utime(
                os.path.join(dirpath, name),
                ns=(CONTEXT_MTIME_NS, CONTEXT_MTIME_NS),
                follow_symlinks=False,
            )
    os.utime(ctx, ns=(CONTEXT_MTIME_NS, CONTEXT_MTIME_NS))


class Side:
    """One tool's build results: image ID, raw config, layer trees, merged tree, output."""

    def __init__(self):
        self.image_id = ""
        self.config: dict = {}
        self.layers: list = []
        self.merged: dict = {}
        self.output = ""


def docker_build(
    docker: common.PrivateDocker, ctx: Path, tag: str, data_root: Path, args=()
) -> Side:
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    proc = subprocess.run(
        docker.command("build", "--network=none", *args, "-t", tag, str(ctx)),
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker build failed: {proc.stdout[-2000:]}{proc.stderr.strip()}")
    side = Side()
    side.output = proc.stdout
    info = json.loads(docker.run("image", "inspect", tag).stdout)[0]
    side.image_id = info["Id"]
    hexid = side.image_id.removeprefix("sha256:")
    side.config = json.loads(
        (data_root / "image/overlay2/imagedb/content/sha256" / hexid).read_bytes()
    )
    return side


def docker_trees(docker, tag: str, workdir: Path, since: int, side: Side) -> None:
    info = json.loads(docker.run("image", "inspect", tag).stdout)[0]
    data = info["GraphDriver"]["Data"]
    lower = data.get("LowerDir", "")
    dirs = [Path(p) for p in reversed(lower.split(":")) if p] + [Path(data["UpperDir"])]
    side.layers = [snapshot(d, since) for d in dirs]
    _, side.merged = docker_tree(docker, tag, workdir, since)


def dockweb_build(store: common.DockwebEnv, ctx: Path, tag: str, args=()) -> Side:
    proc = store.run("build", "--network=none", *args, "-t", tag, str(ctx), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dockweb build failed: {proc.stdout[-2000:]}{proc.stderr.strip()}")
    side = Side()
    side.output = proc.stdout
    side.image_id = store.run("images", "--no-trunc", "-q", tag).stdout.split()[0]
    hexid = side.image_id.removeprefix("sha256:")
    side.config = json.loads((store.root / "images" / hexid / "config.json").read_bytes())
    return side


def dockweb_trees(store: common.DockwebEnv, tag: str, since: int, side: Side) -> None:
    chains = chain_ids(side.config["rootfs"]["diff_ids"])
    side.layers = [
        snapshot(store.root / "layers" / c.removeprefix("sha256:") / "diff", since) for c in chains
    ]
    side.merged = dockweb_tree(store, tag, since)


def cache_steps(output: str) -> list[str]:
    """Per step, 'cache' or 'built', from the classic builder's output."""
    steps: list[str] = []
    for line in output.splitlines():
        if line.startswith("Step "):
            steps.append("built")
        elif line.strip() == "---> Using cache" and steps:
            steps[-1] = "cache"
    return steps


def step_lines(output: str) -> list[str]:
    """The classic builder's ``Step N/M : ...`` and ``# Executing N build triggers`` lines
    and the ends of the build."""
    keep = ("Step ", "Successfully ", "[Warning]", "# Executing ")
    return [line for line in output.splitlines() if line.startswith(keep)]


def compare(name: str, d: Side, w: Side, show: bool) -> list[str]:
    out: list[str] = []
    sd, sw = step_lines(d.output), step_lines(w.output)
    # image IDs differ (times); compare the lines with them cut
    sd = [line.split(" built ")[0] for line in sd]
    sw = [line.split(" built ")[0] for line in sw]
    if sd != sw:
        out.append(f"{name} output lines: docker={sd} dockweb={sw}")
    dc, wc = d.config.get("config") or {}, w.config.get("config") or {}
    for field in CONFIG_FIELDS:
        if dc.get(field) != wc.get(field):
            out.append(f"{name} config {field}: docker={dc.get(field)!r} dockweb={wc.get(field)!r}")
    nd, nw = len(d.config["rootfs"]["diff_ids"]), len(w.config["rootfs"]["diff_ids"])
    if nd != nw:
        out.append(f"{name}: {nd} layers in docker, {nw} in dockweb")
    hd, hw = d.config.get("history", []), w.config.get("history", [])
    if len(hd) != len(hw):
        out.append(f"{name}: {len(hd)} history entries in docker, {len(hw)} in dockweb")
    for i, (a, b) in enumerate(zip(hd, hw, strict=False)):
        if a.get("created_by") != b.get("created_by"):
            out.append(
                f"{name} history {i} created_by: docker={a.get('created_by')!r} "
                f"dockweb={b.get('created_by')!r}"
            )
        if bool(a.get("empty_layer")) != bool(b.get("empty_layer")):
            out.append(
                f"{name} history {i} ({a.get('created_by')!r}) empty_layer: "
                f"docker={bool(a.get('empty_layer'))} dockweb={bool(b.get('empty_layer'))}"
            )
    if show:
        for i, h in enumerate(hd):
            empty = bool(h.get("empty_layer"))
            print(f"    docker  history {i}: {h.get('created_by')!r} empty={empty}")
        for i, h in enumerate(hw):
            empty = bool(h.get("empty_layer"))
            print(f"    dockweb history {i}: {h.get('created_by')!r} empty={empty}")
    if len(d.layers) == len(w.layers):
        for n, (a, b) in enumerate(zip(d.layers, w.layers, strict=True)):
            out += diff_trees(a, b, f"{name} layer {n}")
    out += diff_trees(d.merged, w.merged, f"{name} merged")
    return out


# Multi-stage mistakes: each tool's error text (stderr) and exit code must be the same.
ERRORS = "stage_errors"
ERROR_DOCKERFILES = {
    "current stage": "FROM {base}\nCOPY --from=0 /bin/sh /x\n",
    "index out of bounds": "FROM {base}\nFROM {base}\nCOPY --from=5 /bin/sh /x\n",
    "negative index": "FROM {base}\nFROM {base}\nCOPY --from=-1 /bin/sh /x\n",
    "bad stage name": "FROM {base} AS 1st\n",
    "duplicate name": "FROM {base} AS a\nFROM {base} AS A\n",
    "missing path": "FROM {base}\nFROM {base}\nCOPY --from=0 /nope /x\n",
    "ADD --from": "FROM {base}\nFROM {base}\nADD --from=0 /bin/sh /x\n",
    "unknown target": "FROM {base} AS a\n",
}


def run_errors(base, docker, store, work) -> list[str]:
    problems = []
    for label, text in ERROR_DOCKERFILES.items():
        ctx = work / "ctx" / ERRORS / label.replace(" ", "-")
        ctx.mkdir(parents=True, exist_ok=True)
        (ctx / "Dockerfile").write_text(text.format(base=base))
        args = ["--target", "nope"] if label == "unknown target" else []
        env = dict(os.environ, DOCKER_BUILDKIT="0")
        d = subprocess.run(
            docker.command("build", "--network=none", *args, str(ctx)),
            capture_output=True,
            text=True,
            env=env,
        )
        w = store.run("build", "--network=none", *args, str(ctx), check=False)
        seen = ((d.returncode, d.stderr.strip()), (w.returncode, w.stderr.strip()))
        print(f"  {label}: docker {seen[0]}")
        if seen[0] != seen[1]:
            problems.append(f"{ERRORS} {label}: docker={seen[0]} dockweb={seen[1]}")
    return problems


def cache_from_round(tool: str, run, build_fn, ctx: Path, ref: str) -> tuple[list, list, bool]:
    """Build, push, remove, pull back, build without and with --cache-from: the steps each
    of the last two builds took from the cache, and whether the last gave the first's ID."""
    first = build_fn(ctx, ref, [])
    run("push", ref)
    run("rmi", ref)
    run("pull", "-q" if tool == "dockweb" else "--quiet", ref)
    plain = build_fn(ctx, ref + "-plain", [])
    cached = build_fn(ctx, ref, ["--cache-from", ref])
    return cache_steps(plain.output), cache_steps(cached.output), cached.image_id == first.image_id


def run_cache_from(base, docker, data_root, store, work, registry_host) -> list[str]:
    ctx = work / "ctx" / CACHE_FROM
    write_context(ctx, {"a.txt": b"a\n"})
    (ctx / "Dockerfile").write_text(CACHE_FROM_DOCKERFILE.format(base=base))
    stamp(ctx)
    problems = []
    results = {}
    for tool in ("docker", "dockweb"):
        ref = f"{registry_host}/cmpbuild/cf-{tool}:1"
        if tool == "docker":
            results[tool] = cache_from_round(
                tool, docker.run, lambda c, t, a: docker_build(docker, c, t, data_root, a), ctx, ref
            )
        else:
            results[tool] = cache_from_round(
                tool, store.run, lambda c, t, a: dockweb_build(store, c, t, a), ctx, ref
            )
        plain, cached, same = results[tool]
        print(f"  {CACHE_FROM} {tool:7}: without {plain} with --cache-from {cached} same ID {same}")
    if results["docker"] != results["dockweb"]:
        problems.append(f"{CACHE_FROM}: docker={results['docker']} dockweb={results['dockweb']}")
    # multi-stage, local cache present: with --cache-from the final image, a step of the
    # first stage is no ancestor of it (rebuilt), the last stage's steps are (cached)
    (ctx / "Dockerfile").write_text(
        f"FROM {base} AS builder\nRUN echo built > /b\nFROM {base}\n"
        "COPY --from=builder /b /b\nENV Y=2\n"
    )
    stamp(ctx)
    steps = {}
    for tool, build_fn in (
        ("docker", lambda a: docker_build(docker, ctx, "cmpbuild/cf-ms:1", data_root, a)),
        ("dockweb", lambda a: dockweb_build(store, ctx, "cmpbuild/cf-ms:1", a)),
    ):
        first = build_fn([])
        again = build_fn(["--cache-from", "cmpbuild/cf-ms:1"])
        steps[tool] = (cache_steps(again.output), again.image_id == first.image_id)
        print(f"  {CACHE_FROM} multi-stage {tool:7}: {steps[tool]}")
    if steps["docker"] != steps["dockweb"]:
        problems.append(f"{CACHE_FROM} multi-stage: {steps}")
    return problems


def run_case(name, base, docker, data_root, store, work, show, tools="", url="") -> list[str]:
    ctx = work / "ctx" / name
    tag = f"cmpbuild/{name.replace('_', '-')}:1"
    problems: list[str] = []
    since = (time.time_ns() // 1_000_000_000 - 1) * 1_000_000_000
    if name == ERRORS:
        return run_errors(base, docker, store, work)
    if name == CACHE_FROM:
        return run_cache_from(base, docker, data_root, store, work, tools.split("/")[0])
    if name == REBUILD:
        files = {"a.txt": b"one\n", "b.txt": b"b\n"}
        write_context(ctx, files)
        (ctx / "Dockerfile").write_text(REBUILD_DOCKERFILE.format(base=base))
        stamp(ctx)
        rounds = [("first", None), ("again", None), ("a.txt changed", b"two\n")]
        d = w = None
        for label, change in rounds:
            if change is not None:
                (ctx / "a.txt").write_bytes(change)
                stamp(ctx)
            d = docker_build(docker, ctx, tag, data_root)
            w = dockweb_build(store, ctx, tag)
            sd, sw = cache_steps(d.output), cache_steps(w.output)
            print(f"  {name} {label}: docker  {sd}\n  {name} {label}: dockweb {sw}")
            if sd != sw:
                problems.append(f"{name} {label}: cache use docker={sd} dockweb={sw}")
    else:
        case = CASES[name]
        args = case.get("args", [])
        write_context(ctx, case["context"])
        (ctx / "Dockerfile").write_text(case["dockerfile"].format(base=base, tools=tools, url=url))
        stamp(ctx)
        d = docker_build(docker, ctx, tag, data_root, args)
        w = dockweb_build(store, ctx, tag, args)
        if case.get("rebuild"):
            d2 = docker_build(docker, ctx, tag, data_root, args)
            w2 = dockweb_build(store, ctx, tag, args)
            sd, sw = cache_steps(d2.output), cache_steps(w2.output)
            print(f"  {name} again: docker  {sd}\n  {name} again: dockweb {sw}")
            if sd != sw:
                problems.append(f"{name} again: cache use docker={sd} dockweb={sw}")
            if (d2.image_id == d.image_id) != (w2.image_id == w.image_id):
                problems.append(f"{name} again: same image docker/dockweb differ")
    docker_trees(docker, tag, work, since, d)
    dockweb_trees(store, tag, since, w)
    return problems + compare(name, d, w, show)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "cases", nargs="*", help=f"default: {', '.join([*CASES, REBUILD, CACHE_FROM, ERRORS])}"
    )
    parser.add_argument("--show", action="store_true", help="print both histories")
    args = parser.parse_args()
    names = args.cases or [*CASES, REBUILD, CACHE_FROM, ERRORS]
    unknown = [n for n in names if n not in CASES and n not in (REBUILD, CACHE_FROM, ERRORS)]
    if unknown:
        parser.error(f"unknown cases: {unknown}")
    work = Path(tempfile.mkdtemp(prefix="dockweb-build-", dir=common.SCRATCH))
    data_root = work / "docker"
    problems: list[str] = []
    store = common.DockwebEnv.fresh()
    try:
        with (
            common.registry(work / "registry") as reg,
            common.private_dockerd(data_root, common.DOCKERD_LOG) as docker,
            file_server(work / "served") as url,
        ):
            base = f"{reg.host}/cmpbuild/busybox:1"
            im.push_image(reg.host, "cmpbuild/busybox", "1", im.busybox_base())
            im.push_image(reg.host, "cmpbuild/tools", "1", tools_image())
            tools = f"{reg.host}/cmpbuild/tools:1"
            docker.run("pull", "-q", base)
            store.run("pull", "-q", base)
            for name in names:
                try:
                    found = run_case(
                        name, base, docker, data_root, store, work, args.show, tools, url
                    )
                except RuntimeError as err:
                    found = [f"{name}: {err}"]
                print(f"{name:16} {'PASS' if not found else f'{len(found)} differences'}")
                for line in found:
                    print("  " + line)
                problems += found
    finally:
        store.cleanup()
        common.unmount_all(work)
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
