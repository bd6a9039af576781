"""Multi-stage builds and the rest of the classic builder's options, on real busybox images
through a real registry: stages, COPY --from (stage name, index, image pulled when missing),
--target, ARG scoping, the cache per stage, --cache-from, archives in each compression,
ADD of a loopback URL, --network, and the CLI's --iidfile/-q/--label/--pull."""

from __future__ import annotations

import bz2
import email.utils
import gzip
import http.server
import io
import lzma
import os
import tarfile
import threading

import pytest

from dockweb.runtime.build import BuildOptions, build
from dockweb.runtime.errors import BuildError, ImageNotFound
from dockweb.runtime.imageio import push
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store
from tests.support import images as im

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds run containers: needs root")


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory):
    store = Store(str(tmp_path_factory.mktemp("multistage") / "store"))
    im.push_image(registry.host, "ms/busybox", "1", im.busybox_base())
    pull(store, RegistryClient(), f"{registry.host}/ms/busybox:1")
    store.tag(f"{registry.host}/ms/busybox:1", "busybox:latest")
    return store


def _build(store, manager, dockerfile, context=None, *, registry=None, **kw):
    lines: list[str] = []
    stages: list[str] = []

    def fetch(ref, out):
        pull(store, RegistryClient(), ref)
        out(f"pulled {ref}\n")

    result = build(
        store,
        manager,
        BuildOptions(dockerfile=dockerfile, context_dir=str(context) if context else None, **kw),
        on_output=lines.append,
        on_stage=stages.append,
        pull=fetch if registry else None,
    )
    return result, "".join(lines), stages


def _read(store, image_id, path):
    root = store.mount_image(image_id)
    try:
        full = os.path.join(root, path.lstrip("/"))
        st = os.lstat(full)
        data = open(full, "rb").read() if os.path.isfile(full) else None
        return data, st
    finally:
        store.unmount_image(image_id)


def _exists(store, image_id, path):
    root = store.mount_image(image_id)
    try:
        return os.path.lexists(os.path.join(root, path.lstrip("/")))
    finally:
        store.unmount_image(image_id)


MULTI = (
    "ARG BASE=busybox\n"
    "ARG GREETING\n"
    "FROM $BASE AS builder\n"
    "ARG GREETING=hello\n"
    "ARG STAGE1_ONLY=one\n"
    'RUN mkdir -p /out && echo "$GREETING from builder" > /out/msg && chmod 640 /out/msg'
    " && chown 1000:1000 /out/msg\n"
    "FROM busybox\n"
    "ARG GREETING\n"
    'RUN echo "[$GREETING][$STAGE1_ONLY]" > /scoped\n'
    "COPY --from=builder /out/msg /app/msg\n"
    "COPY --from=0 /out /copied/\n"
    'CMD ["cat", "/app/msg"]\n'
)


def test_a_multi_stage_build_copies_between_stages_as_the_classic_builder(store, manager):
    result, out, stages = _build(store, manager, MULTI)
    lines = out.splitlines()
    # two meta ARGs, then 4 + 6 steps: every step counted, the totals as moby's
    assert lines[0] == "Step 1/12 : ARG BASE=busybox"
    assert lines[1] == "Step 2/12 : ARG GREETING"
    assert lines[2] == "Step 3/12 : FROM $BASE AS builder"
    base_id = store.lookup("busybox").id
    assert lines[3] == f" ---> {base_id[7:19]}"
    assert "Step 6/12 : RUN mkdir -p /out" in out
    assert "Step 7/12 : FROM busybox" in out
    assert "Step 10/12 : COPY --from=builder /out/msg /app/msg" in out
    assert "Step 11/12 : COPY --from=0 /out /copied/" in out
    assert lines[-1] == f"Successfully built {result.image_id[7:19]}"
    # a container for each RUN and metadata step (3 ARGs, CMD), none for COPY
    assert out.count(" ---> Running in ") == 6
    assert out.count("Removing intermediate container ") == 6
    # each stage's image is announced as it ends (dockerd's aux ID), the last is the result
    assert len(stages) == 2 and stages[-1] == result.image_id
    builder_image = stages[0]
    assert store.get_image(builder_image).parent  # an intermediate image, kept
    # ARG before FROM only in FROM; a stage's own ARG default; no leak between stages
    data, _ = _read(store, result.image_id, "/scoped")
    assert data == b"[][]\n"
    data, st = _read(store, result.image_id, "/app/msg")
    assert data == b"hello from builder\n"
    # COPY --from without --chown keeps mode and owners (moby's preserveOwnership)
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 1000, 1000)
    data, st = _read(store, result.image_id, "/copied/msg")
    assert data == b"hello from builder\n" and st.st_uid == 1000
    # with --chown the files are the named owner's
    chowned, _, _ = _build(
        store, manager, MULTI + "COPY --chown=app:app --from=builder /out /chowned/\n"
    )
    assert _read(store, chowned.image_id, "/chowned/msg")[1].st_uid == 1000
    assert _read(store, chowned.image_id, "/chowned")[1].st_uid == 1000
    # the final image holds only its own stage's history
    history = [h["created_by"] for h in store.get_image(result.image_id).config["history"]]
    assert not any("mkdir -p /out" in h for h in history)
    copies = [h for h in history if "COPY" in h]
    assert copies[0].startswith("/bin/sh -c #(nop) COPY file:") and copies[0].endswith(
        " in /app/msg "
    )
    assert copies[1].startswith("/bin/sh -c #(nop) COPY dir:")
    # the second build takes every step from the cache, stage by stage
    again, out2, _ = _build(store, manager, MULTI)
    assert again.image_id == result.image_id
    assert out2.count(" ---> Using cache") == 8
    assert " ---> Running in " not in out2
    # a build arg changes the builder stage: its RUN and the COPYs after it rebuild, the
    # second stage's RUN (which declares GREETING too) also, with the new value
    third, out3, _ = _build(store, manager, MULTI, build_args={"GREETING": "bye"})
    assert third.image_id != result.image_id
    assert _read(store, third.image_id, "/app/msg")[0] == b"bye from builder\n"
    assert _read(store, third.image_id, "/scoped")[0] == b"[bye][]\n"


def test_meta_args_expand_earlier_ones_and_build_args_win(store, manager):
    dockerfile = (
        "ARG NAME=busy\nARG IMAGE=${NAME}box\nFROM $IMAGE\nARG IMAGE\nRUN echo $IMAGE > /i\n"
    )
    result, _out, _ = _build(store, manager, dockerfile)
    assert _read(store, result.image_id, "/i")[0] == b"busybox\n"
    with pytest.raises(ImageNotFound, match="nothingbox:latest"):
        _build(store, manager, dockerfile, build_args={"NAME": "nothing"})


def test_target_stops_after_the_named_stage(store, manager):
    result, out, stages = _build(store, manager, MULTI, target="BUILDER")
    assert "Step 1/6 : ARG BASE=busybox" in out
    assert "Step 6/6 : RUN mkdir" in out
    assert "COPY" not in out
    assert stages == [result.image_id]
    assert _exists(store, result.image_id, "/out/msg")
    with pytest.raises(BuildError, match="failed to reach build target nope in Dockerfile"):
        _build(store, manager, MULTI, target="nope")


def test_from_a_stage_and_labels_go_to_the_last_stage(store, manager):
    dockerfile = (
        "FROM busybox AS base\nRUN echo base > /base\nFROM base AS next\nRUN cat /base > /next\n"
    )
    result, out, stages = _build(store, manager, dockerfile, labels={"b": "2", "a": "1 $x"})
    # FROM <stage> starts from that stage's last image
    assert f"Step 3/6 : FROM base AS next\n ---> {stages[0][7:19]}" in out
    assert f" ---> {stages[0][7:19]}\nStep 4/6 : RUN cat /base > /next" in out
    assert _read(store, result.image_id, "/next")[0] == b"base\n"
    assert "Step 5/6 : LABEL a=1 $x" in out and "Step 6/6 : LABEL b=2" in out
    assert store.get_image(result.image_id).config["config"]["Labels"] == {"a": "1 $x", "b": "2"}


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM busybox AS 1st\n", 'invalid name for build stage: "1st"'),
        ("FROM busybox AS a\nFROM busybox AS A\n", "a stage name already used"),
        (
            "FROM busybox\nCOPY --from=0 /bin/sh /x\n",
            "invalid from flag value 0: refers to current build stage",
        ),
        (
            "FROM busybox\nFROM busybox\nCOPY --from=5 /bin/sh /x\n",
            "invalid from flag value 5: index out of bounds",
        ),
        (
            "FROM busybox\nFROM busybox\nCOPY --from=0 /nope /x\n",
            "COPY failed: stat nope: file does not exist",
        ),
        ("FROM busybox\nFROM busybox\nADD --from=0 /bin/sh /x\n", "Unknown flag: from"),
    ],
)
def test_stage_errors_are_the_classic_builders(store, manager, dockerfile, message):
    with pytest.raises(BuildError, match=message.replace("$", r"\$")):
        _build(store, manager, dockerfile)


def test_copy_from_an_image_pulls_it_when_missing(store, manager, registry):
    extra = im.Layer([im.dir_("opt"), im.file("opt/tool", b"tool v1\n", mode=0o751, uid=7)])
    im.push_image(registry.host, "ms/tools", "1", im._image(extra))
    ref = f"{registry.host}/ms/tools:1"
    dockerfile = f"FROM {registry.host}/ms/busybox:1\nCOPY --from={ref} /opt/tool /usr/bin/tool\n"
    result, out, _ = _build(store, manager, dockerfile, registry=registry)
    assert f"pulled {ref}" in out  # the image was missing: pulled during the step
    data, st = _read(store, result.image_id, "/usr/bin/tool")
    assert data == b"tool v1\n" and st.st_mode & 0o777 == 0o751 and st.st_uid == 7
    # present now: no second pull, the step cached
    _again, out2, _ = _build(store, manager, dockerfile, registry=registry)
    assert "pulled" not in out2 and out2.count(" ---> Using cache") == 1
    # --pull pulls it again even though the store has it
    _third, out3, _ = _build(store, manager, dockerfile, registry=registry, pull=True)
    assert out3.count("pulled") == 2  # FROM busybox's reference and the COPY --from image


def _tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid = len(data), 0o640, 1_300_000_000, 42
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_add_unpacks_plain_gzip_bzip2_and_xz_tars_but_not_zstd(store, manager, tmp_path):
    raw = _tar([("f.txt", b"inside\n")])
    (tmp_path / "p.tar").write_bytes(raw)
    (tmp_path / "p.tar.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "p.tar.bz2").write_bytes(bz2.compress(raw))
    (tmp_path / "p.tar.xz").write_bytes(lzma.compress(raw))
    # zstd's magic: moby 20.10's DetectCompression does not know it, so the file is copied
    zstd = b"\x28\xb5\x2f\xfd" + b"\x00" * 20
    (tmp_path / "p.tar.zst").write_bytes(zstd)
    dockerfile = "FROM busybox\n" + "".join(
        f"ADD {name} /{kind}/\n"
        for name, kind in (
            ("p.tar", "plain"),
            ("p.tar.gz", "gz"),
            ("p.tar.bz2", "bz2"),
            ("p.tar.xz", "xz"),
            ("p.tar.zst", "zst"),
        )
    )
    result, _out, _ = _build(store, manager, dockerfile, tmp_path)
    for kind in ("plain", "gz", "bz2", "xz"):
        data, st = _read(store, result.image_id, f"/{kind}/f.txt")
        assert data == b"inside\n", kind
        assert (st.st_mode & 0o777, st.st_uid, int(st.st_mtime)) == (0o640, 42, 1_300_000_000)
    assert _read(store, result.image_id, "/zst/p.tar.zst")[0] == zstd
    assert not _exists(store, result.image_id, "/zst/f.txt")


class _Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/missing":
            self.send_error(404)
            return
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", "http://192.0.2.1/x")
            self.end_headers()
            return
        body = b"downloaded\n" if self.path != "/a.tar" else _tar([("t", b"x")])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", email.utils.formatdate(1_400_000_000, usegmt=True))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_files():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_add_of_a_loopback_url_is_fetched_by_the_builder(store, manager, http_files):
    dockerfile = (
        f"FROM busybox\nADD {http_files}/file.txt /dl/\nADD {http_files}/a.tar /dl/\n"
        f"ADD {http_files}/file.txt /named\n"
    )
    result, _out, _ = _build(store, manager, dockerfile)
    data, st = _read(store, result.image_id, "/dl/file.txt")
    # dockerd's download: mode 0600, Last-Modified as mtime, owned by root
    assert data == b"downloaded\n"
    assert (st.st_mode & 0o777, st.st_uid, int(st.st_mtime)) == (0o600, 0, 1_400_000_000)
    assert _exists(store, result.image_id, "/dl/a.tar")  # a remote archive is not unpacked
    assert _read(store, result.image_id, "/named")[0] == b"downloaded\n"
    history = [h["created_by"] for h in store.get_image(result.image_id).config["history"]]
    # the remote file's sum without the file: prefix, as moby's copier writes it
    assert history[-3].startswith("/bin/sh -c #(nop) ADD ") and " in /dl/ " in history[-3]
    assert "file:" not in history[-3]
    _again, out2, _ = _build(store, manager, dockerfile)
    assert out2.count(" ---> Using cache") == 3
    with pytest.raises(BuildError, match="failed to GET .*/missing with status 404"):
        _build(store, manager, f"FROM busybox\nADD {http_files}/missing /x\n")
    with pytest.raises(BuildError, match="only from loopback"):
        _build(store, manager, "FROM busybox\nADD http://192.0.2.1/x /x\n")
    with pytest.raises(BuildError, match="redirects to http://192.0.2.1/x, which is not on"):
        _build(store, manager, f"FROM busybox\nADD {http_files}/away /x\n")
    with pytest.raises(BuildError, match="source can't be a URL for COPY"):
        _build(store, manager, f"FROM busybox\nCOPY {http_files}/file.txt /x\n")


def test_cache_from_uses_a_pulled_image_without_its_parents(store, manager, registry, tmp_path):
    dockerfile = "FROM busybox\nRUN echo one > /one\nENV X=1\nRUN echo two > /two\n"
    first, _out, _ = _build(store, manager, dockerfile, tags=[f"{registry.host}/ms/cached:1"])
    push(store, RegistryClient(), f"{registry.host}/ms/cached:1")
    # a second store, as another machine: the busybox base and the pushed image, pulled,
    # none of the intermediate images that make the local cache
    other = Store(str(tmp_path / "other"))
    pull(other, RegistryClient(), f"{registry.host}/ms/busybox:1")
    other.tag(f"{registry.host}/ms/busybox:1", "busybox:latest")
    pull(other, RegistryClient(), f"{registry.host}/ms/cached:1")
    from tests.support.containers import managed

    gen = managed(other)
    other_manager = next(gen)
    try:
        _plain, out_plain, _ = _build(other, other_manager, dockerfile)
        assert " ---> Using cache" not in out_plain  # no parents: no local cache
        cached, out, _ = _build(
            other, other_manager, dockerfile, cache_from=[f"{registry.host}/ms/cached:1"]
        )
        assert out.count(" ---> Using cache") == 3 and " ---> Running in " not in out
        assert cached.image_id == first.image_id  # the last step is the source itself
        # an image given that does not exist is skipped, as dockerd's
        _build(other, other_manager, dockerfile, cache_from=["nothing:here"])
    finally:
        next(gen, None)  # its cleanup: remove the containers it made


def test_network_is_passed_to_the_run_containers(store, manager):
    dockerfile = "FROM busybox\nRUN ls /sys/class/net > /nets\n"
    none, _, _ = _build(store, manager, dockerfile, no_cache=True, network="none")
    assert _read(store, none.image_id, "/nets")[0] == b"lo\n"
    default, _, _ = _build(store, manager, dockerfile, no_cache=True)  # dockerd's: bridge
    assert _read(store, default.image_id, "/nets")[0].split() == [b"eth0", b"lo"]
    host, _, _ = _build(store, manager, dockerfile, no_cache=True, network="host")
    assert sorted(_read(store, host.image_id, "/nets")[0].split()) == sorted(
        n.encode() for n in os.listdir("/sys/class/net")
    )
    # bridge: the default bridge network the runtime has, as docker build --network bridge
    bridge, _, _ = _build(store, manager, dockerfile, no_cache=True, network="bridge")
    assert _read(store, bridge.image_id, "/nets")[0].split() == [b"eth0", b"lo"]


def test_the_cli_writes_the_iidfile_quiet_labels_and_target(dockweb, registry, tmp_path):
    im.push_image(registry.host, "ms/cli", "1", im.busybox_base())
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {registry.host}/ms/cli:1 AS one\nRUN echo 1 > /one\nFROM one\nRUN echo 2 > /two\n"
    )
    iid = tmp_path / "iid"
    iid.write_text("stale")
    out = dockweb(
        "build", "-q", "--iidfile", str(iid), "--label", "k=v", "--label", "bare", str(ctx)
    ).stdout
    image_id = iid.read_text()
    assert image_id.startswith("sha256:") and out == image_id + "\n"
    labels = dockweb("inspect", "-f", "{{json .Config.Labels}}", image_id).stdout
    assert labels.strip() == '{"bare":"","k":"v"}'
    out = dockweb("build", "--target", "one", "--network", "none", str(ctx)).stdout
    assert "Step 2/2 : RUN echo 1 > /one" in out and "Using cache" in out
    bad = dockweb("build", "--network", "container:x", str(ctx), check=False)
    assert bad.returncode == 1 and 'network mode "container:x" not supported' in bad.stderr
    for flag in (["--squash"], ["--platform", "linux/arm64"], ["-m", "64m"], ["--secret", "x"]):
        refused = dockweb("build", *flag, str(ctx), check=False)
        assert refused.returncode == 125, flag
        assert refused.stderr.startswith("dockweb build does not support --"), refused.stderr
    failed = dockweb("build", "--iidfile", str(iid), "--target", "nope", str(ctx), check=False)
    assert failed.returncode == 1 and not iid.exists()  # no stale ID after a failure


def test_onbuild_triggers_of_the_base_run_in_its_from_step(store, manager, tmp_path):
    (tmp_path / "a.txt").write_text("a\n")
    dockerfile = (
        "FROM busybox AS parent\nONBUILD RUN echo trig > /trig\nONBUILD COPY a.txt /a\n"
        "FROM parent\nRUN cat /trig /a\n"
    )
    result, out, stages = _build(store, manager, dockerfile, tmp_path)
    lines = out.splitlines()
    start = lines.index("Step 4/5 : FROM parent")
    assert lines[start + 1] == "# Executing 2 build triggers"
    assert lines[start + 2].startswith(" ---> Running in ")  # the RUN trigger
    step5 = lines.index("Step 5/5 : RUN cat /trig /a")
    assert lines[step5 - 1] == f" ---> {store.get_image(result.image_id).parent[7:19]}"
    assert lines[step5 + 2 : step5 + 4] == ["trig", "a"]
    image = store.get_image(result.image_id).config
    assert image["config"].get("OnBuild") is None  # the triggers are used up
    history = [h["created_by"] for h in image["history"]]
    assert history[-3] == "/bin/sh -c echo trig > /trig"
    assert history[-2].startswith("/bin/sh -c #(nop) COPY file:")


def test_a_run_step_downloads_from_a_server_on_the_host_through_host_gateway(store, manager):
    """The default bridge's gateway (host-gateway) is the host: a RUN step fetches a file
    from an HTTP server the test runs on the host's 0.0.0.0 (busybox's nc: its wget crashes
    when linked statically)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"payload-from-the-host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        dockerfile = (
            "FROM busybox\n"
            f"RUN printf 'GET /file HTTP/1.0\\r\\n\\r\\n' | nc -w 5 host.test {port} > /got"
            " && grep -q payload-from-the-host /got\n"
        )
        # docker build --add-host host.test:host-gateway
        result, _, _ = _build(
            store, manager, dockerfile, no_cache=True, extra_hosts=["host.test:host-gateway"]
        )
        assert b"payload-from-the-host" in _read(store, result.image_id, "/got")[0]
    finally:
        server.shutdown()
        server.server_close()


def test_a_healthcheck_takes_the_unset_fields_of_the_parents_as_dockerd_commits(
    store, manager
):
    """Each HEALTHCHECK's history is its own line; the image's config has the fields the
    line leaves unset from the parent image's (dockerd's commit merges them), as
    benchmarks/compare_build.py's healthcheck case checks against Docker."""
    dockerfile = (
        "FROM busybox\n"
        "HEALTHCHECK --interval=5s --timeout=3s --start-period=1m30s --retries=3 CMD true\n"
        "HEALTHCHECK NONE\n"
        "HEALTHCHECK --interval=1h --retries=12 CMD echo ok\n"
    )
    result, _, _ = _build(store, manager, dockerfile, no_cache=True)
    config = store.get_image(result.image_id).config
    assert config["config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "echo ok"],
        "Interval": 3_600_000_000_000,
        "Timeout": 3_000_000_000,
        "StartPeriod": 90_000_000_000,
        "Retries": 12,
    }
    last = config["history"][-1]["created_by"]
    assert last.endswith("""HEALTHCHECK &{["CMD-SHELL" "echo ok"] "1h0m0s" "0s" "0s" '\\f'}""")
