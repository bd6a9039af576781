"""Engine API exec: ``docker exec`` (Debian's docker CLI 20.10) and docker-py's exec_run,
exec_create, exec_start, exec_inspect and exec_resize against ``dockweb system service``,
with what they print against dockerd.

The containers are made with the dockweb CLI on the service's store (the containers
endpoints are not this file's subject); ``docker exec`` itself inspects the container
first (GET /containers/{id}/json)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import time

import docker
import pytest

from tests.support.engineapi import DOCKER, request
from tests.support.pty import pty_session, read_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs containers: needs root")


@pytest.fixture(scope="module")
def image(registry, engine_api):
    return engine_api.pulled_busybox(registry, "api-exec/busybox")


@pytest.fixture(scope="module")
def target(engine_api, image):
    """A running container (``sleep 600``) named exec-target: its full ID."""
    out = engine_api.dockweb(
        "run", "-d", "--name", "exec-target", image, "sleep", "600", check=True
    ).stdout
    return out.strip()


@pytest.fixture(scope="module")
def api(engine_api):
    client = docker.APIClient(base_url=engine_api.host, version="1.41", timeout=60)
    yield client
    client.close()


def _create(api, container: str, cmd, **kw) -> str:
    return api.exec_create(container, cmd, **kw)["Id"]


def _post(engine_api, path: str, body) -> tuple[int, dict, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request(engine_api, "POST", path, data, {"Content-Type": "application/json"})


@contextlib.contextmanager
def _hijacked(engine_api, path: str, body: dict):
    """A POST asking to upgrade the connection, as docker's clients send it: (the answer's
    head, the socket after it)."""
    data = json.dumps(body).encode()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(60)
        sock.connect(str(engine_api.socket))
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode()
            + data
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = sock.recv(1)
            assert byte, head
            head += byte
        yield head, sock


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def _demux(data: bytes) -> list[tuple[int, bytes]]:
    """The stdcopy frames of a multiplexed stream."""
    frames = []
    while data:
        kind, size = struct.unpack(">BxxxI", data[:8])
        frames.append((kind, data[8 : 8 + size]))
        data = data[8 + size :]
    return frames


def _until_ended(api, exec_id: str) -> dict:
    """exec_inspect once the command has ended (a detached one ends on its own)."""
    deadline = time.monotonic() + 30
    while True:
        info = api.exec_inspect(exec_id)
        if not info["Running"] and info["ExitCode"] is not None:
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.05)


# -- docker exec ---------------------------------------------------------------------------


def test_docker_exec_prints_both_streams_and_exits_with_the_commands_code(engine_api, target):
    proc = engine_api.docker("exec", "exec-target", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    proc = engine_api.docker("exec", target[:12], "echo", "by", "id")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "by id\n", "")


def test_docker_exec_of_a_command_that_cannot_run(engine_api, target):
    # dockerd reports a start failure in the exec's own stream: docker prints it on
    # stdout, and the exec's exit code is 126
    proc = engine_api.docker("exec", "exec-target", "nope")
    assert proc.returncode == 126
    assert proc.stdout == (
        "OCI runtime exec failed: exec failed: unable to start container process: "
        'exec: "nope": executable file not found in $PATH: unknown\n'
    )
    assert proc.stderr == ""
    proc = engine_api.docker("exec", "exec-target", "/etc/passwd")
    assert proc.returncode == 126
    assert proc.stdout == (
        "OCI runtime exec failed: exec failed: unable to start container process: "
        'exec: "/etc/passwd": permission denied: unknown\n'
    )
    # a shell that does not find the command: its own message and 127
    proc = engine_api.docker("exec", "exec-target", "sh", "-c", "nope")
    assert (proc.returncode, proc.stdout, proc.stderr) == (127, "", "sh: nope: not found\n")
    proc = engine_api.docker("exec", "-u", "nobody2", "exec-target", "id")
    assert proc.returncode == 126
    assert proc.stdout == "unable to find user nobody2: no matching entries in passwd file\n"
    proc = engine_api.docker("exec", "-w", "/nonexist", "exec-target", "pwd")
    assert proc.returncode == 126
    assert proc.stdout == (
        "OCI runtime exec failed: exec failed: unable to start container process: chdir to "
        'cwd ("/nonexist") set in config.json failed: no such file or directory: unknown\n'
    )


def test_docker_exec_env_workdir_and_user(engine_api, target):
    proc = engine_api.docker(
        "exec", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000:1000", "exec-target",
        "sh", "-c", "pwd; id; env | sort",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "/tmp\n"
        "uid=1000(app) gid=1000(app) groups=1000(app)\n"
        "FOO=bar\n"
        "HOME=/home/app\n"
        f"HOSTNAME={target[:12]}\n"
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        "PWD=/tmp\n"
        "SHLVL=1\n"
    )


def test_docker_exec_i_gives_the_piped_input_and_its_end(engine_api, target):
    proc = engine_api.docker(
        "exec", "-i", "exec-target", "sh", "-c", "cat; echo done; exit 5",
        input="hello\nworld\n",
    )  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, "hello\nworld\ndone\n", "")
    # without -i the command reads nothing (its stdin is empty)
    proc = engine_api.docker("exec", "exec-target", "cat", input="ignored\n")
    assert (proc.returncode, proc.stdout) == (0, "")
    proc = engine_api.docker("exec", "-it", "exec-target", "true", input="")
    assert (proc.returncode, proc.stderr) == (1, "the input device is not a TTY\n")


def test_docker_exec_it_under_a_terminal(engine_api, target):
    def spawn(*args, **kw):
        return subprocess.Popen([DOCKER, *args], env=engine_api.client_env(), **kw)

    with pty_session(spawn, "exec", "-it", "exec-target", "sh", rows=30, cols=100) as (
        proc,
        master,
    ):
        read_until(master, r"# ")
        # what is typed comes back echoed by the container's pty; the CLI gave it our size
        os.write(master, b"echo $((6*7)); busybox tty; busybox stty size\r")
        out = read_until(master, r"30 100\r\n")
        assert "echo $((6*7))" in out
        assert re.search(r"\r\n42\r\n/dev/pts/\d+\r\n30 100\r\n", out), out
        os.write(master, b"exit 4\r")
        assert proc.wait(30) == 4
    # ctrl-p ctrl-q: the CLI detaches, as from dockerd
    with pty_session(spawn, "exec", "-it", "exec-target", "sh") as (proc, master):
        read_until(master, r"# ")
        os.write(master, b"\x10\x11")
        read_until(master, r"read escape sequence\r\n")
        assert proc.wait(30) == 1


def test_docker_exec_d_runs_on_in_the_background(engine_api, target):
    proc = engine_api.docker(
        "exec", "-d", "exec-target", "sh", "-c", "echo detached > /tmp/detached; sleep 1"
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    proc = engine_api.docker(
        "exec", "exec-target", "sh", "-c",
        "while [ ! -s /tmp/detached ]; do sleep 0.05; done; cat /tmp/detached",
        timeout=60,
    )  # fmt: skip
    assert proc.stdout == "detached\n"
    proc = engine_api.docker("exec", "-d", "exec-target", "nope")
    assert proc.returncode == 1
    assert proc.stderr == (
        "Error response from daemon: OCI runtime exec failed: exec failed: unable to start "
        'container process: exec: "nope": executable file not found in $PATH: unknown\n'
    )


# -- docker-py -----------------------------------------------------------------------------


def test_docker_py_exec_run(engine_api, target):
    client = engine_api.client()
    try:
        c = client.containers.get("exec-target")
        cmd = ["sh", "-c", "echo out; echo err >&2; exit 2"]
        result = c.exec_run(cmd)
        assert (result.exit_code, result.output) == (2, b"out\nerr\n")
        result = c.exec_run(cmd, demux=True)
        assert (result.exit_code, result.output) == (2, (b"out\n", b"err\n"))
        result = c.exec_run(cmd, stderr=False)
        assert (result.exit_code, result.output) == (2, b"out\n")
        result = c.exec_run(
            "sh -c 'echo $A $(pwd) $(id -u)'", environment={"A": "a"}, workdir="/tmp", user="1000"
        )
        assert (result.exit_code, result.output) == (0, b"a /tmp 1000\n")
        # streamed as it comes (stdout and stderr are two pipes: no order between them)
        result = c.exec_run(["sh", "-c", "echo 1; echo 2; echo 3 >&2"], stream=True)
        assert result.exit_code is None
        assert sorted(b"".join(result.output).splitlines()) == [b"1", b"2", b"3"]
        result = c.exec_run(["sh", "-c", "echo 1; echo 2 >&2"], stream=True, demux=True)
        assert sorted(result.output, key=lambda pair: pair[0] is None) == [
            (b"1\n", None),
            (None, b"2\n"),
        ]
        result = c.exec_run(["busybox", "tty"], tty=True)
        assert result.exit_code == 0 and re.fullmatch(rb"/dev/pts/\d+\r\n", result.output)
        result = c.exec_run(["nope"])
        assert result.exit_code == 126
        assert b'exec: "nope": executable file not found in $PATH' in result.output
    finally:
        client.close()


def test_exec_create_inspect_start_with_a_socket_and_stdin(engine_api, api, target):
    exec_id = _create(api, "exec-target", ["sh", "-c", "cat; echo bye >&2; exit 7"], stdin=True)
    info = api.exec_inspect(exec_id)
    assert info == {
        "ID": exec_id,
        "Running": False,
        "ExitCode": None,
        "ProcessConfig": {
            "tty": False,
            "entrypoint": "sh",
            "arguments": ["-c", "cat; echo bye >&2; exit 7"],
            "privileged": False,
        },
        "OpenStdin": True,
        "OpenStderr": True,
        "OpenStdout": True,
        "CanRemove": False,
        "ContainerID": target,
        "DetachKeys": "",
        "Pid": 0,
    }
    sock = api.exec_start(exec_id, socket=True)._sock
    try:
        sock.sendall(b"to stdin\n")
        sock.shutdown(socket.SHUT_WR)  # the client's CloseWrite: the command's stdin ends
        frames = _demux(_read_all(sock))
    finally:
        sock.close()
    assert frames == [(1, b"to stdin\n"), (2, b"bye\n")]
    info = api.exec_inspect(exec_id)
    assert (info["Running"], info["ExitCode"]) == (False, 7)
    assert info["Pid"] > 0
    # started twice: dockerd says so in the stream (read from a socket of ours: docker-py's
    # HTTP reader may take what follows the 101 with it)
    with _hijacked(engine_api, f"/v1.41/exec/{exec_id}/start", {}) as (head, sock):
        assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
        assert b"Content-Type: application/vnd.docker.raw-stream\r\n" in head
        assert _demux(_read_all(sock)) == [
            (1, f"Error: Exec command {exec_id} has already run\r\n".encode())
        ]


def test_exec_with_a_tty_resize_and_exit_code(api, target):
    exec_id = _create(api, "exec-target", ["sh"], stdin=True, tty=True, user="app")
    info = api.exec_inspect(exec_id)
    assert info["ProcessConfig"] == {
        "tty": True,
        "entrypoint": "sh",
        "arguments": [],
        "privileged": False,
        "user": "app",
    }
    sock = api.exec_start(exec_id, socket=True, tty=True)._sock
    try:
        api.exec_resize(exec_id, height=33, width=111)
        info = api.exec_inspect(exec_id)
        assert info["Running"] is True and info["Pid"] > 0
        assert os.path.exists(f"/proc/{info['Pid']}")
        sock.sendall(b"busybox stty size; id -un; exit 3\n")
        out = _read_all(sock)  # raw: no frames with a tty
    finally:
        sock.close()
    assert b"33 111\r\napp\r\n" in out
    info = api.exec_inspect(exec_id)
    assert (info["Running"], info["ExitCode"]) == (False, 3)
    # an exec that has ended has no terminal left to resize
    with pytest.raises(docker.errors.NotFound, match="no such exec"):
        api.exec_resize(exec_id, height=10, width=10)


def test_exec_detach_keys_end_the_attach_as_dockerd_20_10(api, target):
    exec_id = _create(api, "exec-target", ["cat"], stdin=True, tty=True, detach_keys="ctrl-x,x")
    assert api.exec_inspect(exec_id)["DetachKeys"] == "GHg="  # base64 of b"\x18x"
    sock = api.exec_start(exec_id, socket=True, tty=True)._sock
    try:
        sock.sendall(b"typed\x18x")
        out = _read_all(sock)
    finally:
        sock.close()
    # dockerd 20.10 takes the escape for an attach failure: it says so in the stream and
    # ends the exec's record with 126, while the command runs on
    assert out.endswith(b"exec attach failed: error on attach stdin: read escape sequence\r\n")
    assert b"\x18" not in out
    info = api.exec_inspect(exec_id)
    assert (info["Running"], info["ExitCode"]) == (False, 126)
    assert os.path.exists(f"/proc/{info['Pid']}")  # the command's host pid, as dockerd's
    os.kill(info["Pid"], signal.SIGKILL)


def test_exec_tty_input_end_detaches_and_the_command_runs_on(api, target):
    exec_id = _create(api, "exec-target", ["cat"], stdin=True, tty=True)
    sock = api.exec_start(exec_id, socket=True, tty=True)._sock
    try:
        sock.shutdown(socket.SHUT_WR)  # with a tty dockerd ends the attach, not the input
        _read_all(sock)
    finally:
        sock.close()
    info = api.exec_inspect(exec_id)
    assert (info["Running"], info["ExitCode"]) == (True, None)
    os.kill(info["Pid"], signal.SIGTERM)
    assert _until_ended(api, exec_id)["ExitCode"] == 143


def test_exec_start_detached(api, target):
    exec_id = _create(api, "exec-target", ["sh", "-c", "echo lost; exit 6"])
    assert api.exec_start(exec_id, detach=True) == ""  # an empty 200
    info = _until_ended(api, exec_id)
    assert (info["ExitCode"], info["Running"]) == (6, False)
    with pytest.raises(docker.errors.APIError) as err:
        api.exec_start(exec_id, detach=True)
    assert err.value.status_code == 409
    assert err.value.explanation == f"Error: Exec command {exec_id} has already run"
    exec_id = _create(api, "exec-target", ["nope"])
    with pytest.raises(docker.errors.APIError) as err:
        api.exec_start(exec_id, detach=True)
    assert err.value.status_code == 400
    info = api.exec_inspect(exec_id)
    assert (info["ExitCode"], info["Running"], info["Pid"]) == (126, False, 0)


def test_exec_privileged_as_dockerd(api, target):
    exec_id = _create(api, "exec-target", ["sh", "-c", "grep CapEff /proc/self/status"],
                      privileged=True)  # fmt: skip
    assert api.exec_inspect(exec_id)["ProcessConfig"]["privileged"] is True
    out = api.exec_start(exec_id)
    with open("/proc/self/status") as f:
        bounding = int(re.search(r"CapBnd:\s*([0-9a-f]+)", f.read()).group(1), 16)
    with open("/proc/sys/kernel/cap_last_cap") as f:
        every = (1 << (int(f.read()) + 1)) - 1
    if bounding & every == every:
        assert out == f"CapEff:\t{every:016x}\n".encode()
        assert api.exec_inspect(exec_id)["ExitCode"] == 0
    else:  # a host without every capability: dockerd's runtime fails the same way
        assert out == (
            b"OCI runtime exec failed: exec failed: unable to start container process: "
            b"unable to apply caps: operation not permitted: unknown\r\n"
        )
        assert api.exec_inspect(exec_id)["ExitCode"] == 126


# -- dockerd's answers to bad requests -------------------------------------------------------


def test_exec_create_refusals(engine_api, target):
    path = "/v1.41/containers/exec-target/exec"
    for body, status, message in (
        ({"Cmd": []}, 400, "No exec command specified"),
        ({}, 400, "No exec command specified"),
        (b"", 400, "got EOF while reading request body"),
        (
            {"Cmd": "ls"},
            400,
            "json: cannot unmarshal string into Go struct field ExecConfig.Cmd of type []string",
        ),
        (
            {"Cmd": ["ls"], "Tty": "yes"},
            400,
            "json: cannot unmarshal string into Go struct field ExecConfig.Tty of type bool",
        ),
        ({"Cmd": ["ls"], "DetachKeys": "bad-key"}, 500, "Invalid escape keys (bad-key) provided"),
    ):
        status_got, _, data = _post(engine_api, path, body)
        assert (status_got, json.loads(data)) == (status, {"message": message}), body
    status, _, data = request(
        engine_api, "POST", path, b'{"Cmd":["ls"]}', {"Content-Type": "text/plain"}
    )
    assert (status, json.loads(data)) == (
        400,
        {"message": "Content-Type specified (text/plain) must be 'application/json'"},
    )
    status, _, data = _post(engine_api, "/v1.41/containers/nosuch/exec", {"Cmd": ["ls"]})
    assert (status, json.loads(data)) == (404, {"message": "No such container: nosuch"})
    # field names match as Go's encoding/json matches them; unknown ones are ignored
    status, _, data = _post(engine_api, path, {"cmd": ["ls"], "Bogus": 1})
    assert status == 201 and re.fullmatch(r"[0-9a-f]{64}", json.loads(data)["Id"])


def test_unknown_exec_instances_and_bad_sizes(engine_api, api, target):
    for method, path in (
        ("GET", "/v1.41/exec/nosuch/json"),
        ("POST", "/v1.41/exec/nosuch/resize?h=1&w=1"),
    ):
        status, _, data = request(engine_api, method, path)
        assert (status, json.loads(data)) == (404, {"message": "No such exec instance: nosuch"})
    status, _, data = _post(engine_api, "/v1.41/exec/nosuch/start", {})
    assert (status, json.loads(data)) == (404, {"message": "No such exec instance: nosuch"})
    exec_id = _create(api, "exec-target", ["true"])
    # only the full ID names an exec instance
    status, _, data = request(engine_api, "GET", f"/v1.41/exec/{exec_id[:12]}/json")
    assert (status, json.loads(data)) == (
        404,
        {"message": f"No such exec instance: {exec_id[:12]}"},
    )
    for query, word in (("h=x&w=1", "x"), ("w=1", "")):
        status, _, data = request(engine_api, "POST", f"/v1.41/exec/{exec_id}/resize?{query}")
        assert (status, json.loads(data)) == (
            400,
            {"message": f'strconv.Atoi: parsing "{word}": invalid syntax'},
        )
    status, _, data = _post(engine_api, f"/v1.41/exec/{exec_id}/start", b"")
    assert (status, json.loads(data)) == (400, {"message": "got EOF while reading request body"})


def test_exec_in_a_paused_or_stopped_container_and_the_instances_of_a_run(engine_api, api, image):
    cid = engine_api.dockweb(
        "run", "-d", "--name", "exec-short", image, "sleep", "600", check=True
    ).stdout.strip()
    try:
        exec_id = _create(api, "exec-short", ["true"])
        api.exec_start(exec_id)
        assert api.exec_inspect(exec_id)["ExitCode"] == 0
        engine_api.dockweb("pause", "exec-short", check=True)
        proc = engine_api.docker("exec", "exec-short", "ls")
        assert proc.returncode == 1
        assert proc.stderr == (
            "Error response from daemon: Container exec-short is paused, unpause the "
            "container before exec\n"
        )
        status, _, data = _post(engine_api, f"/v1.41/exec/{exec_id}/start", {})
        assert (status, json.loads(data)) == (
            409,
            {"message": f"Container {cid} is paused, unpause the container before exec"},
        )
        engine_api.dockweb("unpause", "exec-short", check=True)
        engine_api.dockweb("kill", "exec-short", check=True)
        proc = engine_api.docker("exec", "exec-short", "ls")
        assert proc.returncode == 1
        assert proc.stderr == f"Error response from daemon: Container {cid} is not running\n"
        # the instances of a run end with it, as dockerd's
        with pytest.raises(docker.errors.NotFound, match=f"No such exec instance: {exec_id}"):
            api.exec_inspect(exec_id)
        engine_api.dockweb("start", "exec-short", check=True)
        exec_id = _create(api, "exec-short", ["true"])
        assert api.exec_inspect(exec_id)["ExitCode"] is None  # the new run's own
    finally:
        engine_api.dockweb("rm", "-f", "exec-short", check=True)
    with pytest.raises(docker.errors.NotFound, match=f"No such exec instance: {exec_id}"):
        api.exec_inspect(exec_id)
    proc = engine_api.docker("exec", "exec-short", "ls")
    assert (proc.returncode, proc.stderr) == (1, "Error: No such container: exec-short\n")


def test_exec_create_and_start_are_audited(engine_api, api, target):
    exec_id = _create(api, "exec-target", ["true"])
    api.exec_start(exec_id)
    db = sqlite3.connect(engine_api.base / "data" / "db.sqlite3")
    try:
        rows = db.execute(
            "SELECT actor, action, target, detail FROM access_auditevent"
            " WHERE action LIKE 'container.exec_%' ORDER BY id"
        ).fetchall()
    finally:
        db.close()
    create = [r for r in rows if r[1] == "container.exec_create" and r[2] == "exec-target"]
    start = [r for r in rows if r[1] == "container.exec_start" and r[2] == exec_id]
    assert create and start
    assert start[0][0] == "api:root"
    assert json.loads(start[0][3])["status"] == 101
