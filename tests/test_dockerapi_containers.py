"""The Engine API's containers, driven by Debian's docker CLI (20.10) and docker-py against
``dockweb system service``: what docker prints against dockerd, exit codes included."""

from __future__ import annotations

import gc
import json
import os
import pty
import re
import select
import sqlite3
import subprocess
import time

import pytest

from tests.support.engineapi import DOCKER, request

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def image(engine_api, registry):
    return engine_api.pulled_busybox(registry, "api-containers")


@pytest.fixture
def docker(engine_api):
    return engine_api.docker


def audit_rows(engine_api, action: str) -> list[tuple[str, str, dict]]:
    db = engine_api.base / "data" / "db.sqlite3"
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT actor, target, detail FROM access_auditevent WHERE action = ? ORDER BY id",
            (action,),
        ).fetchall()
    return [(a, t, json.loads(d)) for a, t, d in rows]


def mirrored(engine_api, name: str) -> str | None:
    db = engine_api.base / "data" / "db.sqlite3"
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT status FROM containers_container WHERE name = ?", (name,)
        ).fetchone()
    return row[0] if row else None


# -- run ----------------------------------------------------------------------------------


def test_run_rm_prints_both_streams_and_exits_with_the_containers_code(
    engine_api, docker, image
):
    proc = docker("run", "--rm", image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    assert docker("ps", "-aq", check=True).stdout == ""


def test_run_with_a_tty_prints_its_output_raw(docker, image):
    # the command ends before the start answers: the attached client still gets it all
    proc = docker("run", "--rm", "-t", image, "sh", "-c", "tty; echo x", text=False)
    assert (proc.returncode, proc.stdout) == (0, b"/dev/pts/0\r\nx\r\n")


def test_run_with_env_workdir_user_volume_and_name(engine_api, docker, image):
    proc = docker(
        "run", "--name", "opts", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000",
        "-v", "api-vol:/data", image, "sh", "-c", "echo $FOO $(pwd) $(id -u); ls -d /data",
        check=True,
    )
    assert proc.stdout == "bar /tmp 1000\n/data\n"
    info = json.loads(docker("inspect", "opts", check=True).stdout)[0]
    assert info["Name"] == "/opts"
    assert info["Config"]["User"] == "1000"
    assert info["Mounts"][0]["Name"] == "api-vol"
    assert mirrored(engine_api, "opts") == "exited"
    docker("rm", "opts", check=True)
    assert mirrored(engine_api, "opts") is None


def test_run_exit_codes_as_docker_prints_them(docker, image):
    proc = docker("run", "--rm", image, "nonexist")
    assert proc.returncode == 127
    assert proc.stderr == (
        "docker: Error response from daemon: failed to create shim task: OCI runtime create "
        "failed: runc create failed: unable to start container process: exec: \"nonexist\": "
        "executable file not found in $PATH: unknown.\n"
    )
    proc = docker("run", "--rm", image, "/etc")
    assert proc.returncode == 126
    assert proc.stderr.endswith('exec: "/etc": permission denied: unknown.\n')
    proc = docker("run", "--rm", "--cpu-shares", "512", image, "true")
    assert proc.returncode == 125
    assert proc.stderr == (
        "docker: Error response from daemon: dockweb does not support HostConfig.CpuShares.\n"
        "See 'docker run --help'.\n"
    )
    assert docker("ps", "-aq", check=True).stdout == ""  # --rm: none left behind


def test_run_detached_then_the_lifecycle_verbs(engine_api, docker, image):
    cid = docker("run", "-d", "--name", "life", image, "sleep", "1000", check=True).stdout
    assert re.fullmatch(r"[0-9a-f]{64}\n", cid)
    assert mirrored(engine_api, "life") == "running"
    assert docker("pause", "life", check=True).stdout == "life\n"
    assert docker("ps", "--format", "{{.Names}} {{.State}}", check=True).stdout == (
        "life paused\n"
    )
    assert docker("unpause", "life", check=True).stdout == "life\n"
    assert docker("restart", "-t", "1", "life", check=True).stdout == "life\n"
    assert docker("kill", "life", check=True).stdout == "life\n"
    assert docker("wait", "life", check=True).stdout == "137\n"
    assert docker("start", "life", check=True).stdout == "life\n"
    assert docker("stop", "-t", "1", "life", check=True).stdout == "life\n"
    assert docker("stop", "life", check=True).stdout == "life\n"  # 304: docker says the name
    assert docker("rename", "life", "life2", check=True).stdout == ""
    out = docker("inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}}", "life2")
    assert out.stdout == "/life2 exited 137\n"
    assert docker("rm", "life2", check=True).stdout == "life2\n"
    proc = docker("rm", "life2")
    assert (proc.returncode, proc.stderr) == (1, "Error: No such container: life2\n")
    proc = docker("kill", "nosuch")
    assert proc.stderr == (
        "Error response from daemon: Cannot kill container: nosuch: No such container: nosuch\n"
    )
    actions = [t for _, t, d in audit_rows(engine_api, "container.pause")]
    assert actions == ["life"]
    removed, refused = audit_rows(engine_api, "container.remove")[-2:]
    assert removed[0].startswith("api:") and removed[1] == "life2"
    assert (removed[2]["status"], refused[2]["status"]) == (204, 404)


def test_create_conflicting_name_and_start_attached(docker, image):
    assert re.fullmatch(
        r"[0-9a-f]{64}\n", docker("create", "--name", "made", image, "echo", "made").stdout
    )
    proc = docker("create", "--name", "made", image, "true")
    cid = json.loads(docker("inspect", "made").stdout)[0]["Id"]
    assert (proc.returncode, proc.stderr) == (
        1,
        'Error response from daemon: Conflict. The container name "/made" is already in use '
        f'by container "{cid}". You have to remove (or rename) that container to be able to '
        "reuse that name.\n",
    )
    assert docker("start", "-a", "made", check=True).stdout == "made\n"
    assert docker("wait", "made", check=True).stdout == "0\n"
    docker("rm", "made", check=True)


def test_ps_filters_quiet_and_format(docker, image):
    ids = {}
    for name, code, label in (("psa", 0, "a"), ("psb", 3, "b")):
        docker("run", "--name", name, "-l", f"tier={label}", image, "sh", "-c", f"exit {code}")
        ids[name] = json.loads(docker("inspect", name).stdout)[0]["Id"]
    docker("run", "-d", "--name", "psc", image, "sleep", "1000", check=True)
    fmt = ["--format", "{{.Names}}"]
    assert docker("ps", *fmt).stdout == "psc\n"
    assert docker("ps", "-a", *fmt, "-f", "name=ps").stdout == "psc\npsb\npsa\n"
    assert docker("ps", "-a", *fmt, "-f", "status=exited").stdout == "psb\npsa\n"
    assert docker("ps", "-a", *fmt, "-f", "exited=3").stdout == "psb\n"
    assert docker("ps", "-a", *fmt, "-f", "label=tier=a").stdout == "psa\n"
    assert docker("ps", "-a", *fmt, "-f", f"ancestor={image}", "-f", "name=ps").stdout == (
        "psc\npsb\npsa\n"
    )
    assert docker("ps", "-a", *fmt, "-f", "before=psb").stdout == "psa\n"
    assert docker("ps", "-a", *fmt, "-f", "since=psa", "-f", "name=ps").stdout == "psc\npsb\n"
    assert docker("ps", "-aq", "-f", f"id={ids['psa'][:6]}").stdout == f"{ids['psa'][:12]}\n"
    assert docker("ps", "-a", "-n", "1", *fmt).stdout == "psc\n"
    lines = docker("ps", "-a", "-f", "name=psb").stdout.splitlines()
    assert lines[0].split() == [
        "CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES",
    ]
    assert re.match(
        rf'{ids["psb"][:12]}   {re.escape(image)}   "sh -c \'exit 3\'"   .* ago +Exited \(3\) ',
        lines[1],
    )
    proc = docker("ps", "-f", "bogus=1")
    assert proc.stderr == "Error response from daemon: Invalid filter 'bogus'\n"
    docker("rm", "-f", "psa", "psb", "psc", check=True)


def test_logs_tail_timestamps_since_and_follow(docker, image):
    docker("run", "--name", "logs", image, "sh", "-c", "echo one; echo two >&2; echo three")
    proc = docker("logs", "logs", check=True)
    assert (proc.stdout, proc.stderr) == ("one\nthree\n", "two\n")
    assert docker("logs", "--tail", "1", "logs").stdout in ("three\n", "")  # two: stderr
    docker("rm", "logs", check=True)
    docker("run", "--name", "logs", image, "sh", "-c", "echo one; echo three")
    assert docker("logs", "--tail", "1", "logs").stdout == "three\n"
    stamped = docker("logs", "-t", "logs").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "three"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", stamped[0].split(" ")[0])
    assert docker("logs", "--since", "2100-01-01T00:00:00Z", "logs").stdout == ""
    docker("rm", "logs", check=True)
    # -f follows until the container ends
    docker("run", "-d", "--name", "follow", "-i", image, "sh", "-c", "read x; echo got $x")
    follow = engine_api_popen(docker, "logs", "-f", "follow")
    # its input ends the attach (no StdinOnce with -d); the container reads it and exits
    docker("attach", "follow", input="line\n")
    out, _ = follow.communicate(timeout=60)
    assert (follow.returncode, out) == (0, "got line\n")
    docker("rm", "follow", check=True)


def engine_api_popen(docker, *args):
    env = docker.__self__.client_env()
    return subprocess.Popen(
        [DOCKER, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_attach_and_run_with_stdin(docker, image):
    docker("create", "-i", "--name", "att", image, "sh", "-c", "read x; echo got $x")
    proc = docker("start", "-ai", "att", input="hi\n")
    assert (proc.returncode, proc.stdout) == (0, "got hi\n")
    assert docker("inspect", "-f", "{{.State.Status}}", "att").stdout == "exited\n"
    docker("rm", "att", check=True)
    proc = docker("run", "--rm", "-i", image, "cat", input="piped\n")
    assert (proc.returncode, proc.stdout) == (0, "piped\n")


def _pty_session(engine_api, *args: str):
    """docker under a pty: (process, master fd, read_until)."""
    fd, slave = pty.openpty()
    proc = subprocess.Popen(
        [DOCKER, *args], env=engine_api.client_env(), stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    out = bytearray()

    def read_until(token: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        while token not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    out.extend(os.read(fd, 4096))
                except OSError:
                    break
        return bytes(out)

    return proc, fd, read_until


def test_run_it_echoes_input_and_detaches_with_ctrl_p_ctrl_q(engine_api, docker, image):
    proc, fd, read_until = _pty_session(engine_api, "run", "-it", "--name", "tty", image, "sh")
    out = read_until(b"# ")
    assert b"# " in out, out
    os.write(fd, b"echo hel''lo\r")
    out = read_until(b"hello\r\n")
    assert b"echo hel''lo\r\nhello\r\n" in out, out
    os.write(fd, b"\x10\x11")
    assert proc.wait(60) == 0
    os.close(fd)
    assert docker("inspect", "-f", "{{.State.Status}}", "tty").stdout == "running\n"
    # attach again under a pty, and leave by exit: its code
    proc, fd, read_until = _pty_session(engine_api, "attach", "tty")
    os.write(fd, b"exit 7\r")
    assert proc.wait(60) == 7
    os.close(fd)
    docker("rm", "tty", check=True)


def test_update_and_prune(docker, image):
    left = docker("ps", "-aq").stdout.split()
    if left:
        docker("rm", "-f", *left, check=True)
    docker("create", "--name", "upd", image, "true", check=True)
    out = docker("update", "--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5", "upd")
    assert (out.returncode, out.stdout) == (0, "upd\n")
    info = json.loads(docker("inspect", "upd").stdout)[0]["HostConfig"]
    assert (info["Memory"], info["NanoCpus"]) == (64 << 20, 500_000_000)
    cid = json.loads(docker("inspect", "upd").stdout)[0]["Id"]
    docker("run", "-d", "--name", "keep", image, "sleep", "1000", check=True)
    proc = docker("container", "prune", "-f", check=True)
    assert proc.stdout == f"Deleted Containers:\n{cid}\n\nTotal reclaimed space: 0B\n"
    assert docker("ps", "-a", "--format", "{{.Names}}").stdout == "keep\n"
    docker("rm", "-f", "keep", check=True)


def test_prune_filters_as_dockerd(engine_api, docker, image):
    """``label``, ``label!`` (a container is kept only when it has every label! given, as
    moby's matchLabels) and ``until`` (created at or before), through docker and docker-py;
    refusals in dockerd's words; the audit row of each prune."""
    left = docker("ps", "-aq").stdout.split()
    if left:
        docker("rm", "-f", *left, check=True)

    def create(name: str, *labels: str) -> str:
        args = [a for label in labels for a in ("--label", label)]
        return docker("create", "--name", name, *args, image, "true", check=True).stdout.strip()

    a, ab, none = create("p-a", "a=1"), create("p-ab", "a=1", "b=2"), create("p-none")
    docker("run", "-d", "--name", "p-run", "--label", "a=1", image, "sleep", "1000", check=True)

    def pruned(*filters: str) -> set[str]:
        args = [a for f in filters for a in ("--filter", f)]
        out = docker("container", "prune", "-f", *args, check=True).stdout
        assert out.endswith("Total reclaimed space: 0B\n"), out
        if out == "Total reclaimed space: 0B\n":
            return set()
        assert out.startswith("Deleted Containers:\n"), out
        assert out.endswith("\n\nTotal reclaimed space: 0B\n"), out
        return set(out.split("\n")[1:-3])

    assert pruned("until=1h") == set()  # all made just now
    assert pruned("label!=a", "label!=b") == {a, none}
    client = engine_api.client()
    try:
        assert client.containers.prune(filters={"label": ["a=1"]}) == {
            "ContainersDeleted": [ab],
            "SpaceReclaimed": 0,
        }
        assert client.containers.prune() == {"ContainersDeleted": None, "SpaceReclaimed": 0}
    finally:
        client.close()
    late = create("p-late", "a=2")
    assert pruned("label=a=1") == set()  # p-run runs; p-late's a is 2
    assert pruned(f"until={int(time.time()) + 3600}", "label=a") == {late}
    assert docker("ps", "-a", "--format", "{{.Names}}").stdout == "p-run\n"

    proc = docker("container", "prune", "-f", "--filter", "bogus=1")
    assert proc.returncode == 1
    assert proc.stderr == "Error response from daemon: Invalid filter 'bogus'\n"
    proc = docker("container", "prune", "-f", "--filter", "until=1h", "--filter", "until=2h")
    assert proc.returncode == 1
    assert proc.stderr == "Error response from daemon: more than one until filter specified\n"
    proc = docker("container", "prune", "-f", "--filter", "until=soon")
    assert proc.returncode == 1 and proc.stderr.startswith("Error response from daemon: ")
    assert audit_rows(engine_api, "container.prune")[-1][0] == "api:root"
    docker("rm", "-f", "p-run", check=True)


# -- the raw answers ------------------------------------------------------------------------


def _post(engine_api, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    return request(engine_api, "POST", path, data, headers)


def test_create_answers_as_dockerd(engine_api, image):
    status, _, body = _post(engine_api, "/v1.41/containers/create", {"Image": "nosuch"})
    assert (status, json.loads(body)) == (404, {"message": "No such image: nosuch:latest"})
    status, _, body = _post(
        engine_api, "/v1.41/containers/create?name=raw",
        {"Image": image, "Cmd": ["true"], "HostConfig": {"Memory": 0, "Dns": []}},
    )
    assert status == 201
    answer = json.loads(body)
    assert answer["Warnings"] == [] and re.fullmatch(r"[0-9a-f]{64}", answer["Id"])
    status, _, body = _post(
        engine_api, "/v1.41/containers/create",
        {"Image": image, "HostConfig": {"CpuShares": 512}},
    )
    assert (status, json.loads(body)) == (
        400, {"message": "dockweb does not support HostConfig.CpuShares"}
    )
    status, _, body = _post(engine_api, "/v1.41/containers/raw/wait?condition=not-running")
    assert (status, json.loads(body)) == (200, {"Error": None, "StatusCode": 0})
    status, _, body = request(engine_api, "DELETE", "/v1.41/containers/raw?link=1")
    assert status == 400 and b"link" in body
    status, _, _ = request(engine_api, "DELETE", "/v1.41/containers/raw")
    assert status == 204
    status, _, body = request(engine_api, "GET", "/v1.41/containers/raw/json")
    assert (status, json.loads(body)) == (404, {"message": "No such container: raw"})


# -- docker-py ------------------------------------------------------------------------------


# docker-py's attach socket leaves its HTTP response to be collected after the socket closed
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_docker_py_containers(engine_api, image):
    client = engine_api.client()
    assert client.containers.run(image, ["sh", "-c", "echo hi"], remove=True) == b"hi\n"
    c = client.containers.run(image, ["sleep", "1000"], detach=True, name="py1")
    c.reload()
    assert c.status == "running"
    c.kill()
    assert c.wait() == {"Error": None, "StatusCode": 137}
    c.remove()

    c = client.containers.create(image, ["sh", "-c", "echo a; echo b >&2"], name="py2")
    c.start()
    lines = b"".join(c.logs(stream=True, follow=True))
    # two pipes: which of stdout's and stderr's lines the supervisor reads first is not
    # ordered (nor is it under dockerd)
    assert sorted(lines.splitlines()) == [b"a", b"b"]
    assert c.wait()["StatusCode"] == 0
    assert c.logs(stdout=True, stderr=False) == b"a\n"
    c.remove()

    c = client.containers.run(image, ["sleep", "1000"], detach=True, name="py3")
    c.stop(timeout=1)
    assert c.wait()["StatusCode"] == 137
    c.remove(v=True)

    c = client.containers.create(image, ["cat"], stdin_open=True, name="py4")
    sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
    c.start()
    raw = sock._sock
    raw.sendall(b"ping\n")
    got = b""
    while len(got) < 13:
        chunk = raw.recv(100)
        if not chunk:
            break
        got += chunk
    assert got == b"\x01\x00\x00\x00\x00\x00\x00\x05ping\n"
    raw.close()  # the attach ends, the container runs on
    c.reload()
    assert c.status == "running"
    c.kill()
    assert c.wait()["StatusCode"] == 137
    sock.close()
    del sock, raw
    gc.collect()  # docker-py's response goes here, under this test's warning filter
    c.remove()
    assert [x.name for x in client.containers.list(all=True)] == []
