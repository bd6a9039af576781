"""Classic `docker build` on real busybox images pulled through a real registry: file trees,
layers, history, the cache, .dockerignore, errors, removal of intermediate images."""

from __future__ import annotations

import functools
import io
import os
import tarfile

import pytest

from dockweb.runtime import layerfs
from dockweb.runtime.build import BuildOptions, build
from dockweb.runtime.buildcontext import BuildContext, PatternMatcher
from dockweb.runtime.dockerfile import parse_dockerfile
from dockweb.runtime.errors import BuildError, Conflict
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store
from tests.support import images as im

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds run containers: needs root")


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory):
    store = Store(str(tmp_path_factory.mktemp("build") / "store"))
    im.push_image(registry.host, "build/busybox", "1", im.busybox_base())
    pull(store, RegistryClient(), f"{registry.host}/build/busybox:1")
    store.tag(f"{registry.host}/build/busybox:1", "busybox:latest")
    return store


def _build(store, manager, dockerfile, context=None, **kw):
    lines: list[str] = []
    result = build(
        store,
        manager,
        BuildOptions(dockerfile=dockerfile, context_dir=str(context) if context else None, **kw),
        on_output=lines.append,
    )
    return result, "".join(lines)


def _files(store, image_id):
    root = store.mount_image(image_id)
    try:
        out = {}
        for dirpath, _dirnames, filenames in os.walk(root):
            for name in filenames:
                full = os.path.join(dirpath, name)
                if not os.path.islink(full):
                    out["/" + os.path.relpath(full, root)] = full
        return {
            k: open(v, "rb").read() if os.path.getsize(v) < 4096 else b"" for k, v in out.items()
        }
    finally:
        store.unmount_image(image_id)


def test_it_builds_an_image_with_classic_output_files_and_history(store, manager, tmp_path):
    (tmp_path / "hello.txt").write_text("hello\n")
    dockerfile = (
        "FROM busybox\n"
        "ENV A=b\n"
        "RUN echo hi && echo built > /built.txt\n"
        "COPY hello.txt /app/\n"
        'CMD ["sh"]\n'
    )
    result, out = _build(store, manager, dockerfile, tmp_path, tags=["built:1", "built:2"])
    lines = out.splitlines()
    assert lines[0] == "Step 1/5 : FROM busybox"
    assert lines[1].startswith(" ---> ") and len(lines[1]) == 18
    assert lines[2] == "Step 2/5 : ENV A=b"
    assert lines[3].startswith(" ---> Running in ")
    assert lines[4] == f"Removing intermediate container {lines[3][-12:]}"
    assert lines[6] == "Step 3/5 : RUN echo hi && echo built > /built.txt"
    assert lines[8] == "hi"
    assert lines[9].startswith("Removing intermediate container ")
    assert lines[11] == "Step 4/5 : COPY hello.txt /app/"
    assert not lines[12].startswith(" ---> Running in")  # COPY runs no container
    assert lines[-3] == f"Successfully built {result.image_id[7:19]}"
    assert lines[-2:] == ["Successfully tagged built:1", "Successfully tagged built:2"]

    files = _files(store, result.image_id)
    assert files["/built.txt"] == b"built\n"
    assert files["/app/hello.txt"] == b"hello\n"
    rec = store.get_image(result.image_id)
    assert len(rec.layers) == 3  # busybox, RUN, COPY
    assert rec.config["config"]["Env"][-1] == "A=b"
    assert rec.config["config"]["Cmd"] == ["sh"]
    history = rec.config["history"][-4:]
    assert [h["created_by"] for h in history] == [
        "/bin/sh -c #(nop)  ENV A=b",
        "/bin/sh -c echo hi && echo built > /built.txt",
        history[2]["created_by"],
        '/bin/sh -c #(nop)  CMD ["sh"]',
    ]
    assert history[2]["created_by"].startswith("/bin/sh -c #(nop) COPY file:")
    assert history[2]["created_by"].endswith(" in /app/ ")
    assert [bool(h.get("empty_layer")) for h in history] == [True, False, False, True]
    # every step is an image whose parent is the step before
    chain = []
    cur = rec
    while cur.parent:
        chain.append(cur.id)
        cur = store.get_image(cur.parent)
    assert len(chain) == 4 and cur.id == store.lookup("busybox").id


def test_it_uses_the_cache_and_misses_after_a_change(store, manager, tmp_path):
    (tmp_path / "a.txt").write_text("one\n")
    dockerfile = "FROM busybox\nRUN echo first > /first\nCOPY a.txt /a.txt\nRUN cat /a.txt\n"
    first, _ = _build(store, manager, dockerfile, tmp_path)
    again, out = _build(store, manager, dockerfile, tmp_path)
    assert again.image_id == first.image_id
    assert out.count(" ---> Using cache") == 3
    assert "Running in" not in out

    (tmp_path / "a.txt").write_text("two\n")
    changed, out = _build(store, manager, dockerfile, tmp_path)
    assert changed.image_id != first.image_id
    assert out.count(" ---> Using cache") == 1  # the RUN before the COPY
    assert [s.cached for s in changed.steps] == [False, True, False, False]

    edited, out = _build(store, manager, dockerfile.replace("first", "other"), tmp_path)
    assert out.count(" ---> Using cache") == 0

    fresh, out = _build(store, manager, dockerfile, tmp_path, no_cache=True)
    assert "Using cache" not in out and fresh.image_id != changed.image_id


def test_it_applies_dockerignore_with_exceptions_and_double_stars(store, manager, tmp_path):
    (tmp_path / ".dockerignore").write_text("*.log\n**/secret*\n!keep.log\nbuild\n")
    for name in ("a.log", "keep.log", "main.txt", "sub/secret.key", "sub/ok.txt", "build/x"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    result, _ = _build(store, manager, "FROM busybox\nCOPY . /ctx/\n", tmp_path)
    files = {k for k in _files(store, result.image_id) if k.startswith("/ctx/")}
    assert files == {"/ctx/.dockerignore", "/ctx/keep.log", "/ctx/main.txt", "/ctx/sub/ok.txt"}
    with pytest.raises(BuildError, match="excluded by .dockerignore: stat a.log"):
        _build(store, manager, "FROM busybox\nCOPY a.log /\n", tmp_path)


def test_dockerignore_patterns_match_as_docker():
    m = PatternMatcher(["docs/**/*.md", "!docs/keep/*.md", "a?c", "tmp"])
    assert m.matches("docs/x/y/z.md") and m.matches("docs/z.md")
    assert not m.matches("docs/keep/k.md")
    assert m.matches("abc") and not m.matches("a/c")
    assert m.matches("tmp/deep/file")  # a matching parent directory excludes its content


def test_it_copies_with_chown_and_extracts_local_archives_with_add(store, manager, tmp_path):
    (tmp_path / "f.txt").write_text("x")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("inside/one.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"one"))
    (tmp_path / "arch.tar.gz").write_bytes(buf.getvalue())
    dockerfile = (
        "FROM busybox\nCOPY --chown=app f.txt /home/app/f.txt\nADD arch.tar.gz /opt/\n"
        "RUN stat -c '%u:%g' /home/app/f.txt && cat /opt/inside/one.txt\n"
    )
    _, out = _build(store, manager, dockerfile, tmp_path)
    assert "1000:1000\none" in out
    with pytest.raises(BuildError, match="only from loopback"):
        _build(store, manager, "FROM busybox\nADD https://192.0.2.1/x /x\n", tmp_path)


def test_it_keeps_a_deleted_file_in_the_earlier_layer(store, manager):
    dockerfile = (
        "FROM busybox\nRUN dd if=/dev/zero of=/big bs=1024 count=2048 2>/dev/null\nRUN rm /big\n"
    )
    result, _ = _build(store, manager, dockerfile)
    analysis = layerfs.analyze_image(store, result.image_id)
    writer, remover = analysis.layers[-2], analysis.layers[-1]
    assert writer.size >= 2 * 1024 * 1024
    assert writer.wasted_held == 2 * 1024 * 1024
    assert remover.deleted == 1 and remover.wasted_caused == 2 * 1024 * 1024
    assert "/big" not in _files(store, result.image_id)


@pytest.mark.parametrize(
    "dockerfile, message",
    [
        (
            "FROM busybox\nRUN true\nFOO bar\n",
            "dockerfile parse error line 3: unknown instruction: FOO",
        ),
        (
            "FROM busybox\n\n# c\nENV\n",
            "dockerfile parse error line 4: ENV requires at least one argument",
        ),
        (
            "FROM busybox\nCOPY onlyone\n",
            "dockerfile parse error line 2: COPY requires at least two arguments",
        ),
        ("RUN true\n", "No build stage in current context"),
        (
            "FROM busybox\nLABEL a=b c\n",
            'failed to parse Dockerfile: Syntax error - can\'t find = in "c"',
        ),
    ],
)
def test_it_reports_bad_dockerfiles_with_their_line(store, manager, dockerfile, message):
    with pytest.raises(BuildError) as err:
        _build(store, manager, dockerfile)
    assert str(err.value).startswith(message)


def test_it_reports_a_failing_run_with_its_exit_code(store, manager):
    with pytest.raises(BuildError) as err:
        _build(store, manager, "FROM busybox\nRUN exit 3\n")
    assert str(err.value) == "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    assert err.value.exit_code == 3 and err.value.line == 2


def test_it_joins_continuation_lines_and_skips_comments():
    insts, _ = parse_dockerfile("FROM x\nRUN a \\\n# note\n  b\nENV K=v\n")
    assert [(i.name, i.line, i.rest) for i in insts] == [
        ("FROM", 1, "x"),
        ("RUN", 2, "a   b"),
        ("ENV", 5, "K=v"),
    ]


def test_build_args_reach_run_and_prefix_its_history(store, manager):
    result, out = _build(
        store,
        manager,
        "FROM busybox\nARG WHO=nobody\nRUN echo hello $WHO\n",
        build_args={"WHO": "you"},
    )
    assert "hello you\n" in out
    rec = store.get_image(result.image_id)
    assert rec.config["history"][-1]["created_by"] == "|1 WHO=you /bin/sh -c echo hello $WHO"


def test_removing_a_built_image_deletes_its_untagged_parents(store, manager):
    result, _ = _build(
        store, manager, "FROM busybox\nENV X=1\nRUN echo x > /x\nLABEL l=v\n", tags=["prune:me"]
    )
    rec = store.get_image(result.image_id)
    parents = []
    cur = rec
    while cur.parent and cur.parent != store.lookup("busybox").id:
        parents.append(cur.parent)
        cur = store.get_image(cur.parent)
    assert len(parents) == 2
    with pytest.raises(Conflict, match="image has dependent child images"):
        store.remove(parents[0][7:19])
    records = store.remove("prune:me")
    deleted = [
        v
        for k, v in records
        if k == "Deleted" and v.startswith("sha256:") and store.has_image(v) is False
    ]
    assert records[0] == ("Untagged", "prune:me")
    assert result.image_id in deleted and all(p in deleted for p in parents)
    assert store.has_image(store.lookup("busybox").id)


# -- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def dockweb(dockweb):
    """conftest's, with more time: a build runs containers."""
    return functools.partial(dockweb, timeout=180)


def test_the_cli_builds_hides_intermediates_commits_and_prunes_parents(dockweb, registry, tmp_path):
    im.push_image(registry.host, "build/cli", "1", im.busybox_base())
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {registry.host}/build/cli:1\nENV A=b\nRUN echo hi > /hi\n"
    )
    out = dockweb("build", "-t", "cli:one", str(ctx)).stdout
    assert out.startswith("Sending build context to Docker daemon  ")
    assert "Pulling from build/cli" in out  # FROM pulls a missing image
    assert "Step 3/3 : RUN echo hi > /hi" in out
    assert out.endswith("Successfully tagged cli:one\n")

    quiet = dockweb("build", "-q", str(ctx)).stdout.strip()
    assert quiet.startswith("sha256:")
    listed = dockweb("images", "-q").stdout.split()
    listed_all = dockweb("images", "-a", "-q").stdout.split()
    assert len(listed) == 2 and len(listed_all) == 3  # base and the build; + the ENV step

    history = dockweb("history", "--no-trunc", "cli:one").stdout
    assert "/bin/sh -c #(nop)  ENV A=b" in history and "/bin/sh -c echo hi > /hi" in history

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Dockerfile").write_text("FROM scratch\nFOO bar\n")
    proc = dockweb("build", str(bad), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "Error response from daemon: dockerfile parse error line 2: unknown instruction: FOO"
    )
    (bad / "Dockerfile").write_text(f"FROM {registry.host}/build/cli:1\nRUN exit 7\n")
    proc = dockweb("build", "--force-rm", str(bad), check=False)
    assert proc.returncode == 7
    assert proc.stderr.strip() == "The command '/bin/sh -c exit 7' returned a non-zero code: 7"

    cid = dockweb("create", "cli:one", "sh", "-c", "echo c > /c").stdout.strip()
    committed = dockweb("commit", cid, "cli:committed").stdout.strip()
    assert committed.startswith("sha256:") and len(committed) == 71
    dockweb("rm", cid)

    removed = dockweb("rmi", "cli:one").stdout.splitlines()
    assert removed[0] == "Untagged: cli:one"
    assert len(removed) == 1  # cli:committed is its child: nothing deleted yet
    dockweb("rmi", "cli:committed")
    assert len(dockweb("images", "-a", "-q").stdout.split()) == 1


def _stat_tree(store, image_id, paths):
    root = store.mount_image(image_id)
    try:
        out = {}
        for p in paths:
            st = os.lstat(root + p)
            out[p] = (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid, st.st_mtime_ns)
        return out
    finally:
        store.unmount_image(image_id)


def test_it_extracts_a_local_tar_keeping_modes_owners_and_symlink_times(store, manager, tmp_path):
    def info(name, kind=tarfile.REGTYPE, mode=0o644, uid=0, mtime=1_300_000_000, link=""):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = kind, mode, uid, uid, mtime, link
        ti.size = 1 if kind == tarfile.REGTYPE else 0
        return ti

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti in (
            info("pkg/", tarfile.DIRTYPE, 0o750, 1000),
            info("pkg/suid", mode=0o4755),
            info("pkg/shared/", tarfile.DIRTYPE, 0o2777, mtime=1_300_000_006),
            info("pkg/shared/w", mode=0o666, uid=1),
            info("pkg/link", tarfile.SYMTYPE, 0o777, mtime=1_300_000_003, link="suid"),
        ):
            tar.addfile(ti, io.BytesIO(b"x") if ti.isreg() else None)
    (tmp_path / "pkg.tar").write_bytes(buf.getvalue())
    result, _ = _build(store, manager, "FROM busybox\nADD pkg.tar /opt/\n", tmp_path)
    got = _stat_tree(
        store,
        result.image_id,
        ["/opt", "/opt/pkg", "/opt/pkg/suid", "/opt/pkg/shared", "/opt/pkg/shared/w"],
    )
    assert got["/opt"][:3] == ("0o755", 0, 0)
    assert got["/opt/pkg"] == ("0o750", 1000, 1000, 1_300_000_000 * 10**9)
    assert got["/opt/pkg/suid"][:3] == ("0o4755", 0, 0)
    assert got["/opt/pkg/shared"] == ("0o2777", 0, 0, 1_300_000_006 * 10**9)
    assert got["/opt/pkg/shared/w"][:3] == ("0o666", 1, 1)
    root = store.mount_image(result.image_id)
    try:
        assert os.lstat(root + "/opt/pkg/link").st_mtime_ns == 1_300_000_003 * 10**9
    finally:
        store.unmount_image(result.image_id)


def test_it_reads_an_ignored_dockerfile_but_leaves_it_out_of_the_context(store, manager, tmp_path):
    (tmp_path / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY . /srv/\n")
    (tmp_path / "a.txt").write_text("a")
    result, _ = _build(store, manager, "FROM busybox\nCOPY . /srv/\n", tmp_path)
    assert {k for k in _files(store, result.image_id) if k.startswith("/srv/")} == {"/srv/a.txt"}


def test_it_gives_new_parents_of_a_chowned_directory_copy_to_root(store, manager, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/f").write_text("f")
    (tmp_path / "one").write_text("1")
    dockerfile = (
        "FROM busybox\nCOPY --chown=app:app sub/ /opt/sub/\n"
        "COPY --chown=app:app one /new/parent/one\n"
    )
    result, _ = _build(store, manager, dockerfile, tmp_path)
    got = _stat_tree(store, result.image_id, ["/opt", "/opt/sub", "/opt/sub/f", "/new/parent"])
    assert got["/opt"][1:3] == (0, 0)  # copyDirectory: MkdirAll as root
    assert got["/opt/sub"][1:3] == got["/opt/sub/f"][1:3] == (1000, 1000)
    assert got["/new/parent"][1:3] == (1000, 1000)  # copyFile: MkdirAllAndChownNew


def test_it_writes_chown_into_copy_history_and_misses_the_cache_on_another(
    store, manager, tmp_path
):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/f").write_text("f")
    first, _ = _build(
        store, manager, "FROM busybox\nCOPY --chown=app:app sub/ /opt/sub/\n", tmp_path
    )
    created_by = store.get_image(first.image_id).config["history"][-1]["created_by"]
    assert created_by.startswith("/bin/sh -c #(nop) COPY --chown=app:appdir:")
    assert created_by.endswith(" in /opt/sub/ ")
    other, out = _build(store, manager, "FROM busybox\nCOPY --chown=0:0 sub/ /opt/sub/\n", tmp_path)
    assert "Using cache" not in out and other.image_id != first.image_id
    assert _stat_tree(store, other.image_id, ["/opt/sub/f"])["/opt/sub/f"][1:3] == (0, 0)


def test_it_writes_workdir_and_expose_history_as_docker(store, manager):
    result, _ = _build(store, manager, "FROM busybox\nWORKDIR /w\nEXPOSE 80 443/udp 8080/tcp\n")
    history = store.get_image(result.image_id).config["history"][-2:]
    assert [h["created_by"] for h in history] == [
        "/bin/sh -c #(nop) WORKDIR /w",
        "/bin/sh -c #(nop)  EXPOSE 443/udp 80 8080/tcp",
    ]
    ports = store.get_image(result.image_id).config["config"]["ExposedPorts"]
    assert set(ports) == {"80/tcp", "443/udp", "8080/tcp"}


def test_a_run_after_user_has_the_users_groups(store, manager):
    dockerfile = "FROM busybox\nRUN echo wheel:x:10:root,app >> /etc/group\nUSER app\nRUN id\n"
    _, out = _build(store, manager, dockerfile)
    assert "uid=1000(app) gid=1000(app) groups=10(wheel),1000(app)\n" in out


def test_copy_source_hashes_are_dockers_tarsums(tmp_path):
    # expected values: Docker 20.10's classic builder on these very files
    # (benchmarks/compare_build.py, cases add_tar and copy_chown)
    files = {"plain.txt": b"plain\n", "sub/ok.txt": b"ok\n", "sub/deeper/z": b"z\n"}
    files["sub/secret.key"] = b"ignored\n"
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
        (tmp_path / rel).chmod(0o644)
    for d in ("sub", "sub/deeper"):
        (tmp_path / d).chmod(0o755)
    (tmp_path / "sub/alink").symlink_to("ok.txt")
    (tmp_path / ".dockerignore").write_text("**/secret*\n")
    context = BuildContext(str(tmp_path))
    assert context.hash("plain.txt") == (
        "file:cb524f869f72f4b775589cbadd80f6e6d97ffff6c7f86282a7b00adb970b2641"
    )
    assert context.hash("sub") == (
        "dir:edba44e1280789f517e5393a5e699a89ffc4b87b01a48abc5ffa09092c6dbdbd"
    )
    # a symlink hashes as the file it points to, as archiveContext.Hash follows it
    assert context.hash("sub/alink") == context.hash("sub/ok.txt")
