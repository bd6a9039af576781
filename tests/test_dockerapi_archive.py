"""The Engine API's container files and processes: ``docker cp`` both ways (archive GET,
HEAD, PUT), export, diff (changes), top and stats, driven by Debian's docker CLI, docker-py
and raw requests, with the answers dockerd 20.10 gives.

The docker CLI's ``cp``, ``diff``, ``top``, ``stats NAME`` and ``export`` need no other
endpoint than these (and ``_ping``); containers are made with the dockweb CLI on the same
store."""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
import stat
import subprocess
import tarfile

import pytest

from tests.support.engineapi import DOCKER, request

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

SETUP = (
    "mkdir -p /d/sub && echo a > /d/f && echo b > /d/sub/g && chmod 640 /d/f && "
    "ln -s /etc /d/link && ln -s /vol /v2 && echo x > /vol/x && "
    "mkdir /e && ln -s ../../.. /e/up && touch /ready"
)
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27


@pytest.fixture(scope="module")
def image(engine_api, registry):
    return engine_api.pulled_busybox(registry, "api-archive/busybox")


def _wait_ready(engine_api, name: str) -> None:
    for _ in range(200):
        if engine_api.dockweb("exec", name, "test", "-e", "/ready").returncode == 0:
            return
    raise AssertionError(f"{name} never got ready")


@pytest.fixture(scope="module")
def box(engine_api, image):
    """A running container with a tree, symlinks, a volume at /vol and a read-only bind
    mount at /ro."""
    bound = engine_api.base / "bound"
    bound.mkdir(exist_ok=True)
    engine_api.dockweb(
        "run", "-d", "--name", "box", "-v", "archive-vol:/vol", "-v", f"{bound}:/ro:ro",
        image, "sh", "-c", f"{SETUP} && exec sleep 1000", check=True,
    )
    _wait_ready(engine_api, "box")
    return "box"


def _exec(engine_api, name: str, *cmd: str) -> str:
    proc = engine_api.dockweb("exec", name, *cmd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name for m in tar]


def _raw_names(data: bytes) -> list[str]:
    """Entry names as they are in the headers (tarfile strips a directory's "/")."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            out.append(m.name + "/" if m.isdir() and m.name not in ("", "/") else m.name or "/")
    return out


# -- docker cp with the docker CLI -----------------------------------------------------------


def test_docker_cp_copies_files_directories_and_symlinks_out(engine_api, box, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    docker = engine_api.docker
    assert docker("cp", "box:/d/f", str(out / "file"), check=True).stdout == ""
    assert (out / "file").read_text() == "a\n"
    assert stat.S_IMODE((out / "file").stat().st_mode) == 0o640
    docker("cp", "box:/d", str(out / "tree"), check=True)  # absent: made
    docker("cp", "box:/d", str(out / "tree"), check=True)  # a directory: copied into
    assert (out / "tree" / "sub" / "g").read_text() == "b\n"
    assert (out / "tree" / "d" / "f").read_text() == "a\n"
    assert os.readlink(out / "tree" / "link") == "/etc"  # a symlink stays one
    docker("cp", "box:/d/.", str(out / "contents"), check=True)
    assert sorted(os.listdir(out / "contents")) == ["f", "link", "sub"]
    docker("cp", "box:/d/link", str(out / "link"), check=True)
    assert os.readlink(out / "link") == "/etc"
    docker("cp", "-L", "box:/d/link", str(out / "followed"), check=True)
    # the container's /etc, not the host's
    assert (out / "followed" / "hostname").read_text().strip() == _exec(
        engine_api, "box", "hostname"
    ).strip()
    docker("cp", "box:/v2/x", str(out / "x"), check=True)  # through a symlink into the volume
    assert (out / "x").read_text() == "x\n"
    # ../../.. stays the container's root
    docker("cp", "box:/e/up/d/sub/g", str(out / "g"), check=True)
    assert (out / "g").read_text() == "b\n"


def test_docker_cp_to_stdout_prints_dockerds_tar(engine_api, box):
    def tar_of(src: str) -> bytes:
        proc = engine_api.docker("cp", src, "-", text=False, check=True)
        return proc.stdout

    data = tar_of("box:/d")
    assert _raw_names(data) == ["d/", "d/f", "d/link", "d/sub/", "d/sub/g"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.getmember("d/f")
        assert (f.mode, f.uid, f.gid, tar.extractfile(f).read()) == (0o640, 0, 0, b"a\n")
        # the owners' names are the container's, as in dockerd's tars
        assert (f.uname, f.gname) == ("root", "root")
        assert tar.getmember("d/link").linkname == "/etc"
    # dir/.: the directory as "./" and its entries under it, as dockerd's
    assert _raw_names(tar_of("box:/d/.")) == ["./", "./f", "./link", "./sub/", "./sub/g"]
    # a trailing slash follows the symlink; the entries keep the name asked for
    names = _raw_names(tar_of("box:/d/link/"))
    assert names[0] == "link/" and "link/hostname" in names and "link/passwd" in names
    assert _raw_names(tar_of("box:/d/link")) == ["link"]
    names = _raw_names(tar_of("box:/"))
    assert names[0] == "/" and "/bin/busybox" in names and "/vol/x" in names


def test_docker_cp_copies_into_the_container(engine_api, box, tmp_path):
    src = tmp_path / "src"
    for rel, text in (("one", "1\n"), ("s/two", "2\n")):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    for path in (src, *src.rglob("*")):
        os.chown(path, 1234, 5678)
    docker = engine_api.docker
    assert docker("cp", str(src / "one"), "box:/tmp/", check=True).stdout == ""
    docker("cp", str(src / "one"), "box:/tmp/renamed", check=True)
    docker("cp", str(src), "box:/new", check=True)  # absent: made with the contents
    docker("cp", str(src) + "/.", "box:/d/sub", check=True)  # dir/.: the contents
    assert _exec(engine_api, "box", "cat", "/tmp/one", "/tmp/renamed", "/new/s/two",
                 "/d/sub/one") == "1\n1\n2\n1\n"
    # the owners come from the client's tar
    assert _exec(engine_api, "box", "stat", "-c", "%u:%g", "/new/s/two") == "1234:5678\n"
    # through the container's symlinks, resolved inside it
    docker("cp", str(src / "one"), "box:/d/link/planted", check=True)
    assert not os.path.exists("/etc/planted")
    assert _exec(engine_api, "box", "cat", "/etc/planted") == "1\n"
    docker("cp", str(src / "one"), "box:/v2/y", check=True)  # lands in the volume
    assert _exec(engine_api, "box", "cat", "/vol/y") == "1\n"
    # a tar on stdin
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("piped/p")
        info.size, info.uid = 3, 42
        tar.addfile(info, io.BytesIO(b"p!\n"))
    docker("cp", "-", "box:/tmp", input=buf.getvalue(), text=False, check=True)
    assert _exec(engine_api, "box", "stat", "-c", "%u %n", "/tmp/piped/p") == "42 /tmp/piped/p\n"
    assert _exec(engine_api, "box", "cat", "/tmp/piped/p") == "p!\n"


def test_docker_cp_archive_mode_owns_files_as_dockerd_does(engine_api, image, tmp_path):
    """``-a`` (copyUIDGID): everything owned by the container's user, looked up in the
    host's user database as dockerd's idtools.LookupUser does."""
    (tmp_path / "f").write_text("f\n")
    os.chown(tmp_path / "f", 1234, 5678)
    engine_api.dockweb("create", "--name", "as-daemon", "-u", "daemon", image, check=True)
    engine_api.dockweb("create", "--name", "as-nobody-known", "-u", "nosuchuser", image,
                       check=True)
    docker = engine_api.docker
    docker("cp", str(tmp_path / "f"), "as-daemon:/tmp/plain", check=True)
    docker("cp", "-a", str(tmp_path / "f"), "as-daemon:/tmp/archived", check=True)
    data = docker("cp", "as-daemon:/tmp", "-", text=False, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert (tar.getmember("tmp/plain").uid, tar.getmember("tmp/plain").gid) == (1234, 5678)
        archived = tar.getmember("tmp/archived")
        assert (archived.uid, archived.gid) == (1, 1)  # daemon, here and in Debian's passwd
        assert (archived.uname, archived.gname) == ("daemon", "daemon")
        plain = tar.getmember("tmp/plain")
        assert (plain.uname, plain.gname) == ("", "")  # not in the container's passwd
    proc = docker("cp", "-a", str(tmp_path / "f"), "as-nobody-known:/tmp/")
    assert (proc.returncode, proc.stderr) == (
        1,
        'Error response from daemon: getent unable to find entry "nosuchuser" in passwd '
        "database\n",
    )


def test_docker_cp_errors_as_docker_prints_them(engine_api, image, box, tmp_path):
    (tmp_path / "file").write_text("f\n")
    (tmp_path / "dir").mkdir()
    engine_api.dockweb(
        "create", "--name", "readonly", "--read-only", "-v", f"{tmp_path}:/ro:ro", image,
        check=True,
    )
    cases = [
        (["box:/nope", str(tmp_path / "x")], "Error: No such container:path: box:/nope\n"),
        (["nosuch:/d", str(tmp_path / "x")], "Error: No such container:path: nosuch:/d\n"),
        ([str(tmp_path / "dir"), "box:/d/f"], "cannot copy directory\n"),
        ([str(tmp_path / "file"), "box:/nope/x"], "Error: No such container:path: box:/nope\n"),
        ([str(tmp_path / "file"), "box:/nope/"], "no such directory\n"),
        ([str(tmp_path / "file"), "box:/ro/x"],
         "Error response from daemon: mounted volume is marked read-only\n"),
        ([str(tmp_path / "file"), "readonly:/tmp/x"],
         "Error response from daemon: container rootfs is marked read-only\n"),
        ([str(tmp_path / "file"), "readonly:/ro/x"],
         "Error response from daemon: mounted volume is marked read-only\n"),
        ([str(tmp_path / "absent"), "box:/tmp"],
         f"lstat {tmp_path / 'absent'}: no such file or directory\n"),
        (["box:/d", str(tmp_path / "file")], "cannot copy directory\n"),
        (["-", "box:/d/f"], 'destination "box:/d/f" must be a directory\n'),
    ]
    for args, message in cases:
        proc = engine_api.docker("cp", *args, input="")
        assert (proc.returncode, proc.stderr) == (1, message), args
    proc = engine_api.docker("cp", "box:/d/f/", str(tmp_path / "x"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error response from daemon: lstat /")
    assert proc.stderr.endswith("/d/f/: not a directory\n")
    assert (tmp_path / "file").read_text() == "f\n"


# -- export, diff, top, stats with the docker CLI ----------------------------------------------


def test_docker_export_writes_the_file_system_tar(engine_api, box, tmp_path):
    proc = subprocess.run(
        f"{DOCKER} export box | tar -t",
        shell=True, env=engine_api.client_env(), capture_output=True, text=True, check=True,
    )
    names = proc.stdout.splitlines()
    assert "bin/busybox" in names and "d/sub/g" in names and "d/link" in names
    assert not any(n.startswith("vol/x") for n in names)  # volumes are not in it
    engine_api.docker("export", "-o", str(tmp_path / "box.tar"), "box", check=True)
    with tarfile.open(tmp_path / "box.tar") as tar:
        assert tar.extractfile("d/f").read() == b"a\n"
        home = tar.getmember("home/app")
        assert (home.uid, home.uname, home.gname) == (1000, "app", "app")
    proc = engine_api.docker("export", "nosuch")
    assert (proc.returncode, proc.stderr) == (
        1, "Error response from daemon: No such container: nosuch\n"
    )


def test_docker_diff_lists_changes_as_docker(engine_api, image):
    engine_api.dockweb(
        "run", "--name", "changed", image, "sh", "-c",
        "mkdir /made && echo x > /made/f && rm /etc/group && echo y >> /etc/passwd",
        check=True,
    )
    out = engine_api.docker("diff", "changed", check=True).stdout
    # dockerd's order is its map's (it varies from call to call); dockweb's is the walk's
    assert sorted(out.splitlines()) == [
        "A /made", "A /made/f", "C /etc", "C /etc/passwd", "D /etc/group"
    ]
    engine_api.dockweb("create", "--name", "pristine", image, check=True)
    assert engine_api.docker("diff", "pristine", check=True).stdout == ""
    proc = engine_api.docker("diff", "nosuch")
    assert (proc.returncode, proc.stderr) == (
        1, "Error response from daemon: No such container: nosuch\n"
    )


def test_docker_top_lists_the_processes(engine_api, box, image):
    lines = engine_api.docker("top", "box", check=True).stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(lines) == 2 and lines[1].split()[0] == "root"
    assert lines[1].endswith("sleep 1000")
    lines = engine_api.docker("top", "box", "-o", "pid,comm", check=True).stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"] and lines[1].split()[1] == "sleep"
    engine_api.dockweb("create", "--name", "idle", image, check=True)
    cid = engine_api.dockweb("inspect", "-f", "{{.Id}}", "idle", check=True).stdout.strip()
    proc = engine_api.docker("top", "idle")
    assert (proc.returncode, proc.stderr) == (
        1, f"Error response from daemon: Container {cid} is not running\n"
    )


def test_docker_stats_no_stream_formats_a_row(engine_api, box):
    out = engine_api.docker(
        "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.Container}}", "box",
        check=True,
    ).stdout
    cid = engine_api.dockweb("inspect", "-f", "{{.Id}}", "box", check=True).stdout.strip()
    assert out == "box 1 box\n"
    out = engine_api.docker(
        "stats", "--no-stream", "--format", "{{.ID}} {{.MemUsage}} {{.CPUPerc}}", "box",
        check=True,
    ).stdout
    ident, mem, _slash, limit, cpu = out.split()
    assert ident == cid[:12]
    assert mem.endswith(("B", "KiB", "MiB")) and limit.endswith(("MiB", "GiB"))
    assert cpu.endswith("%")
    out = engine_api.docker(
        "stats", "--no-stream", "--format", "{{.NetIO}}", "box", check=True
    ).stdout
    assert out == "0B / 0B\n"  # no network interfaces of its own: no networks in the frames


# -- docker-py --------------------------------------------------------------------------------


def test_docker_py_get_and_put_archive(engine_api, box):
    api = engine_api.client().api  # the low-level APIClient the high-level methods call
    chunks, st = api.get_archive("box", "/d/f")
    assert st["name"] == "f" and st["size"] == 2 and st["mode"] == 0o640
    assert st["linkTarget"] == "" and st["mtime"].endswith("Z")
    assert _names(b"".join(chunks)) == ["f"]
    _, st = api.get_archive("box", "/d")
    assert st["mode"] == GO_DIR | 0o755
    _, st = api.get_archive("box", "/d/link")
    assert (st["mode"], st["linkTarget"]) == (GO_SYMLINK | 0o777, "/etc")
    _, st = api.get_archive("box", "/e/up")
    assert st["linkTarget"] == "/"
    _, st = api.get_archive("box", "/tmp")
    assert st["mode"] == GO_DIR | (1 << 20) | 0o777  # sticky
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("from-py")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"py\n"))
    assert api.put_archive("box", "/tmp", buf.getvalue()) is True
    assert _exec(engine_api, "box", "cat", "/tmp/from-py") == "py\n"
    import docker.errors

    with pytest.raises(docker.errors.NotFound) as e:
        api.get_archive("box", "/nope")
    assert e.value.explanation == "Could not find the file /nope in container box"
    with pytest.raises(docker.errors.APIError) as e:
        api.put_archive("box", "/d/f", buf.getvalue())
    assert e.value.status_code == 500
    assert e.value.explanation == "extraction point is not a directory"
    api.close()


def test_docker_py_stats_top_diff_export(engine_api, box):
    api = engine_api.client().api
    cid = engine_api.dockweb("inspect", "-f", "{{.Id}}", "box", check=True).stdout.strip()
    frame = api.stats("box", stream=False)
    assert list(frame) == [
        "read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats",
        "cpu_stats", "precpu_stats", "memory_stats", "name", "id",
    ]
    assert frame["name"] == "/box" and frame["id"] == cid
    assert frame["pids_stats"] == {"current": 1}
    # primed: the CPU figures have a previous sample, as dockerd's
    assert frame["preread"] != "0001-01-01T00:00:00Z"
    assert frame["precpu_stats"]["system_cpu_usage"] < frame["cpu_stats"]["system_cpu_usage"]
    assert frame["cpu_stats"]["online_cpus"] == os.sysconf("SC_NPROCESSORS_ONLN")
    memory = frame["memory_stats"]
    assert memory["limit"] > 0
    assert list(memory["stats"]) == [  # what dockerd 20.10 reports on cgroup v1, sorted
        "active_anon", "active_file", "cache", "dirty", "hierarchical_memory_limit",
        "hierarchical_memsw_limit", "inactive_anon", "inactive_file", "mapped_file",
        "pgfault", "pgmajfault", "pgpgin", "pgpgout", "rss", "rss_huge", "total_active_anon",
        "total_active_file", "total_cache", "total_dirty", "total_inactive_anon",
        "total_inactive_file", "total_mapped_file", "total_pgfault", "total_pgmajfault",
        "total_pgpgin", "total_pgpgout", "total_rss", "total_rss_huge", "total_unevictable",
        "total_writeback", "unevictable", "writeback",
    ]
    assert list(frame["blkio_stats"]) == [
        "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
        "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
        "io_time_recursive", "sectors_recursive",
    ]
    stream = api.stats("box", stream=True, decode=True)
    first, second = next(stream), next(stream)
    stream.close()
    assert first["preread"] == "0001-01-01T00:00:00Z"
    assert first["precpu_stats"] == {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }
    assert second["preread"] == first["read"]
    assert second["precpu_stats"] == first["cpu_stats"]
    top = api.top("box")
    assert list(top) == ["Processes", "Titles"]
    assert top["Titles"][:2] == ["UID", "PID"]
    assert [p[-1] for p in top["Processes"]] == ["sleep 1000"]
    top = api.top("box", ps_args="-o pid,args")
    assert top["Titles"] == ["PID", "COMMAND"]
    changes = api.diff("box")
    assert {"Path": "/d/f", "Kind": 1} in changes and {"Path": "/ready", "Kind": 1} in changes
    data = b"".join(api.export("box"))
    assert "d/sub/g" in _names(data)
    api.close()


def test_docker_py_container_objects(engine_api, box):
    """The high-level Container methods (they look the container up with
    GET /containers/{id}/json first: the containers endpoints')."""
    client = engine_api.client()
    c = client.containers.get("box")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("high-level")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"h\n"))
    assert c.put_archive("/tmp", buf.getvalue()) is True
    chunks, st = c.get_archive("/tmp/high-level")
    assert st["name"] == "high-level" and _names(b"".join(chunks)) == ["high-level"]
    assert c.stats(stream=False)["name"] == "/box"
    assert c.top()["Processes"][0][-1] == "sleep 1000"
    assert {"Path": "/tmp/high-level", "Kind": 1} in c.diff()
    assert "tmp/high-level" in _names(b"".join(c.export()))
    client.close()


# -- raw requests: what the clients above do not show -----------------------------------------


def _stat(headers: dict) -> dict:
    return json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))


def test_archive_head_and_errors_as_dockerd(engine_api, box):
    status, headers, body = request(engine_api, "HEAD", "/v1.41/containers/box/archive?path=/d/")
    assert (status, body) == (200, b"")
    assert _stat(headers)["name"] == "d" and _stat(headers)["mode"] == GO_DIR | 0o755
    status, headers, _ = request(engine_api, "HEAD", "/v1.41/containers/box/archive?path=/d/.")
    assert _stat(headers)["name"] == "."
    status, headers, _ = request(engine_api, "HEAD", "/v1.41/containers/box/archive?path=/")
    assert _stat(headers)["name"] == "/"
    status, headers, _ = request(engine_api, "GET", "/v1.41/containers/box/archive?path=/d/f")
    assert headers["content-type"] == "application/x-tar"
    for method in ("GET", "PUT"):
        status, _, body = request(engine_api, method, "/v1.41/containers/box/archive?path=")
        assert (status, json.loads(body)) == (
            400, {"message": "bad parameter: pathcannot be empty"}
        )
        status, _, body = request(engine_api, method, "/v1.41/containers/nosuch/archive?path=/")
        assert (status, json.loads(body)) == (404, {"message": "No such container: nosuch"})
        status, _, body = request(
            engine_api, method, "/v1.41/containers/box/archive?path=relative"
        )
        assert (status, json.loads(body)) == (
            404, {"message": "Could not find the file relative in container box"}
        )
    status, _, body = request(
        engine_api, "PUT", "/v1.41/containers/box/archive?path=/d/f/", body=b""
    )
    assert (status, json.loads(body)) == (500, {"message": "extraction point is not a directory"})
    # the copy endpoint archive replaced: a bare 404 since 1.24
    assert request(engine_api, "POST", "/v1.24/containers/box/copy")[::2] == (404, b"")


def test_put_archive_keeps_hostile_archives_inside(engine_api, box):
    """Names that climb out, absolute names and symlinks that point out land inside the
    destination, as under dockerd's chroot; a directory is not replaced by a file with
    noOverwriteDirNonDir."""
    def tar_of(*entries) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, kind, value in entries:
                info = tarfile.TarInfo(name)
                if kind == "link":
                    info.type, info.linkname = tarfile.SYMTYPE, value
                    tar.addfile(info)
                else:
                    info.size = len(value)
                    tar.addfile(info, io.BytesIO(value))
        return buf.getvalue()

    _exec(engine_api, "box", "mkdir", "-p", "/jail")
    hostile = tar_of(
        ("/abs-file", "file", b"abs"),
        ("esc", "link", "/"),
        ("esc/through-link", "file", b"t"),
        ("up", "link", "../../../../"),
        ("up/through-up", "file", b"u"),
    )
    status, _, body = request(
        engine_api, "PUT", "/v1.41/containers/box/archive?path=/jail", body=hostile
    )
    assert status == 200, body
    assert _exec(
        engine_api, "box", "cat", "/jail/abs-file", "/jail/through-link", "/jail/through-up"
    ) == "abstu"
    for name in ("/abs-file", "/through-link", "/through-up"):
        assert not os.path.exists(name)
    status, _, body = request(
        engine_api, "PUT", "/v1.41/containers/box/archive?path=/&noOverwriteDirNonDir=true",
        body=tar_of(("d", "file", b"x")),
    )
    assert (status, json.loads(body)) == (500, {"message": (
        'Error processing tar file(exit status 1): cannot overwrite directory "/d" with '
        'non-directory "/"'
    )})
    assert _exec(engine_api, "box", "cat", "/d/f") == "a\n"


def _db(engine_api, sql: str) -> list[tuple]:
    conn = sqlite3.connect(engine_api.base / "data" / "db.sqlite3")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_put_archive_is_audited_and_mirrored(engine_api, box):
    size_sql = "SELECT size_rw FROM containers_container WHERE name = 'box'"
    before = _db(engine_api, size_sql)[0][0] or 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("audited")
        info.size = 100_000
        tar.addfile(info, io.BytesIO(b"x" * 100_000))
    status, _, _ = request(
        engine_api, "PUT", "/v1.41/containers/box/archive?path=/tmp", body=buf.getvalue()
    )
    assert status == 200
    rows = _db(
        engine_api,
        "SELECT actor, action, target, detail FROM access_auditevent "
        "WHERE action = 'container.cp' ORDER BY id",
    )
    actor, action, target, detail = rows[-1]
    assert (actor, action, target) == ("api:root", "container.cp", "box")
    assert json.loads(detail)["status"] == 200
    assert json.loads(detail)["request"] == "PUT /containers/box/archive"
    # the dashboard's row has the new size of the writable layer at once
    assert _db(engine_api, size_sql)[0][0] >= before + 100_000


def test_changes_top_stats_answers_as_dockerd(engine_api, image, box):
    engine_api.dockweb("create", "--name", "fresh", image, check=True)
    status, _, body = request(engine_api, "GET", "/v1.41/containers/fresh/changes")
    assert (status, body) == (200, b"null\n")
    status, _, body = request(engine_api, "GET", "/v1.41/containers/fresh/stats?stream=false")
    frame = json.loads(body)
    assert frame["read"] == frame["preread"] == "0001-01-01T00:00:00Z"
    assert frame["pids_stats"] == {} and frame["memory_stats"] == {}
    assert frame["blkio_stats"]["io_service_bytes_recursive"] is None
    assert frame["name"] == "/fresh"
    status, _, body = request(
        engine_api, "GET", "/v1.41/containers/fresh/stats?stream=true&one-shot=true"
    )
    assert (status, json.loads(body)) == (
        400, {"message": "cannot have stream=true and one-shot=true"}
    )
    status, _, body = request(
        engine_api, "GET", "/v1.41/containers/box/stats?stream=false&one-shot=true"
    )
    frame = json.loads(body)
    assert frame["preread"] == "0001-01-01T00:00:00Z" and frame["pids_stats"] == {"current": 1}
    for path in ("stats", "top", "changes", "export"):
        status, _, body = request(engine_api, "GET", f"/v1.41/containers/nosuch/{path}")
        assert (status, json.loads(body)) == (404, {"message": "No such container: nosuch"})
