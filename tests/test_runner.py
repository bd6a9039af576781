"""The resident runner (dockweb/cli/runner.py, dockweb/cli/launch.py): `dockweb run` forked
from a process that has the modules imported, with the client's descriptors, directory,
environment, signals and exit status; started on demand, only for its own user, never with
code older than the disk's, gone when idle."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from dockweb.cli import launch, runner
from tests.support import images as im
from tests.support.procs import running
from tests.support.pty import pty_session, read_until, resize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def wait_for(predicate, timeout: float = 20.0, what: str = "it"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.05)
    return value


@pytest.fixture
def sock():
    """A socket path of the test's own (short: at most 107 bytes), its runner stopped after."""
    path = os.path.join(tempfile.mkdtemp(prefix="dwr-"), "runner.sock")
    yield path
    runner.stop(path)
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)


@pytest.fixture(scope="module")
def busybox(registry):
    im.push_image(registry.host, "runner/busybox", "1", im.busybox_base())
    return f"{registry.host}/runner/busybox:1"


@pytest.fixture
def cli(tmp_path, sock, busybox):
    """`python -m dockweb.cli` on a store of the test's own, with its own runner socket,
    busybox pulled and a runner listening."""
    env = dict(
        os.environ,
        DOCKWEB_ROOT=str(tmp_path / "store"),
        DOCKWEB_DATA=str(tmp_path / "data"),
        DOCKWEB_RUNNER_SOCKET=sock,
    )
    env.pop("DATABASE_URL", None)
    env.pop("DOCKWEB_RUNNER", None)

    def run(*args, check=True, env_extra=None, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("cwd", REPO)
        proc = subprocess.run(
            [sys.executable, *run.flags, "-m", "dockweb.cli", *args],
            env={**env, **(env_extra or {})},
            timeout=60,
            **kw,
        )
        run.flags = []
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def spawn(*args, env_extra=None, **kw):
        return subprocess.Popen(
            [sys.executable, "-m", "dockweb.cli", *args],
            cwd=REPO,
            env={**env, **(env_extra or {})},
            **kw,
        )

    run.flags = []
    run.env = env
    run.spawn = spawn
    run.image = busybox
    run("pull", "-q", busybox)
    run("run", "--rm", busybox, "true")  # no runner yet: run directly, and one is started
    wait_for(lambda: os.path.exists(sock), what="runner")
    yield run
    ids = run("ps", "-aq", check=False).stdout.split()
    if ids:
        run("rm", "-f", *ids, check=False)


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def start_runner(path: str, **env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-P", "-m", "dockweb.cli.runner", path],
        env={**os.environ, "PYTHONPATH": REPO, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@needs_root
def test_it_runs_the_command_in_the_runner_without_importing_the_runtime(cli, sock):
    pid = runner.holder(sock)
    assert pid and running(pid)
    cli.flags = ["-X", "importtime"]
    proc = cli("run", "--rm", cli.image, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert proc.returncode == 3 and proc.stdout == "out\n"
    imports = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert any("dockweb.cli.launch" in line for line in imports)
    assert not any(re.search(r"dockweb\.runtime|dockweb\.cli\.main|sqlite3", i) for i in imports)
    assert [line for line in proc.stderr.splitlines() if line not in imports] == ["err"]
    assert runner.holder(sock) == pid  # the same runner served it
    assert cli("ps", "-aq").stdout == ""  # --rm: gone when the command returns
    with open(f"{sock}.log") as log:
        assert f"dockweb runner {pid}: listening on {sock}" in log.read()


@needs_root
def test_it_gives_the_command_the_callers_environment_directory_and_umask(cli, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "vars").write_text("FROM_FILE=f\n")
    shown = "echo $FROM_ENV $PASSED $FROM_FILE; cat /data/x"
    (work / "data").mkdir()
    (work / "data" / "x").write_text("bound\n")
    proc = cli(
        "run", "--rm", "-e", "FROM_ENV=e", "-e", "PASSED", "--env-file", "vars",
        "-v", f"{work}/data:/data", cli.image, "sh", "-c", shown,
        cwd=work, env_extra={"PASSED": "p"},
    )  # fmt: skip
    assert proc.stdout == "e p f\nbound\n"
    # the caller's umask: a missing bind source is created under it
    cli("run", "--rm", "-v", f"{work}/made:/x", cli.image, "true", cwd=work,
        preexec_fn=lambda: os.umask(0o027))  # fmt: skip
    assert (work / "made").stat().st_mode & 0o777 == 0o750
    # two stores, one runner: each command sees its own
    other = {"DOCKWEB_ROOT": str(tmp_path / "other"), "DOCKWEB_DATA": str(tmp_path / "odata")}
    cli("pull", "-q", cli.image, env_extra=other)
    cli("run", "--name", "here", cli.image, "true")
    cli("run", "--name", "there", cli.image, "true", env_extra=other)
    assert cli("ps", "-a", "--format", "{{.Names}}").stdout == "here\n"
    assert cli("ps", "-a", "--format", "{{.Names}}", env_extra=other).stdout == "there\n"
    cli("rm", "there", env_extra=other)


@needs_root
@pytest.mark.parametrize("through_runner", [True, False])
def test_it_ends_as_the_direct_path_on_sigterm(cli, sock, through_runner):
    extra = {} if through_runner else {"DOCKWEB_RUNNER": "0"}
    proc = cli.spawn(
        "run", "--sig-proxy=false", "--name", "term", cli.image, "sh", "-c", "echo up; sleep 30",
        env_extra=extra, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout.readline() == b"up\n"
        served = children_of(runner.holder(sock))
        assert bool(served) is through_runner
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: not children_of(runner.holder(sock)), what="end of the runner's child")


@needs_root
def test_it_kills_the_command_when_its_client_is_killed(cli, sock):
    proc = cli.spawn("run", "--name", "killed", cli.image, "sh", "-c", "echo up; sleep 30",
                     stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout.readline() == b"up\n"
        (child,) = children_of(runner.holder(sock))
        proc.kill()
        proc.wait()
        wait_for(lambda: not running(child), what="end of the child")
    finally:
        proc.kill()
    # as after a killed direct run: the container goes on, its supervisor keeps it
    assert cli("ps", "--format", "{{.Names}}").stdout == "killed\n"


@needs_root
def test_a_killed_runner_takes_its_commands_with_it(cli, sock):
    proc = cli.spawn("run", "--name", "orphan", cli.image, "sh", "-c", "echo up; sleep 30",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout.readline() == b"up\n"
        pid = runner.holder(sock)
        (child,) = children_of(pid)
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(20) == 125
        assert proc.stderr.read() == (
            b"dockweb: the runner ended before the command did; its exit status is unknown\n"
        )
        wait_for(lambda: not running(child), what="end of the child")
    finally:
        proc.kill()
        proc.wait()


@needs_root
def test_it_gives_a_terminal_and_its_resizes_to_run_it(cli, sock):
    session = pty_session(cli.spawn, "run", "-it", "--rm", cli.image, "sh", rows=30, cols=100)
    with session as (proc, master):
        read_until(master, r"# ")
        assert children_of(runner.holder(sock))  # served by the runner
        os.write(master, b"busybox stty size\r")
        read_until(master, r"30 100\r\n")
        resize(master, proc, 50, 132)  # SIGWINCH passed on to the runner's child
        os.write(master, b"exit 7\r")
        assert proc.wait(20) == 7


@needs_root
def test_it_refuses_another_users_command(cli, sock):
    os.chmod(os.path.dirname(sock), 0o755)
    os.chmod(sock, 0o777)  # as if the socket's modes had failed: its check still holds
    # a fresh interpreter that drops to nobody once started (it cannot start as nobody:
    # the interpreter lies under /root, which is 0700)
    code = (
        "import os, socket, sys; os.setgroups([]); os.setgid(65534); os.setuid(65534);"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
        "sys.stdout.buffer.write(s.recv(16))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code, sock], capture_output=True, check=True, timeout=30
    ).stdout
    assert answer == b"R\n"


@needs_root
def test_it_leaves_for_a_new_runner_when_its_modules_change_on_disk(cli, sock):
    first = runner.holder(sock)
    module = os.path.join(REPO, "dockweb", "cli", "fastrun.py")
    st = os.stat(module)
    os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        cli.flags = ["-X", "importtime"]
        proc = cli("run", "--rm", cli.image, "echo", "direct")
        assert proc.stdout == "direct\n"
        assert "dockweb.runtime.containers" in proc.stderr  # it ran here, not in the runner
        try:
            second = wait_for(
                lambda: (runner.holder(sock) or first) != first and runner.holder(sock), 60
            )
        except AssertionError:  # say what the runners wrote
            with open(f"{sock}.log") as log:
                raise AssertionError(f"no new runner; runner log:\n{log.read()}") from None
        wait_for(lambda: not running(first), what="end of the old runner")
        wait_for(lambda: os.path.exists(sock), what="new socket")
        assert cli("run", "--rm", cli.image, "echo", "new").stdout == "new\n"
        assert children_of(second) == []  # and the new runner served it: it is still there
        assert runner.holder(sock) == second
    finally:
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))
    with open(f"{sock}.log") as log:
        assert f"dockweb runner {first}: modules changed on disk, leaving" in log.read()


def test_it_leaves_when_idle_and_removes_its_socket(sock):
    proc = start_runner(sock, DOCKWEB_RUNNER_IDLE="0.5")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "idle, leaving" in out and "stopped" in out
    assert not os.path.exists(sock) and runner.holder(sock) is None


def test_a_second_runner_leaves_the_first_listening(sock):
    first = start_runner(sock)
    try:
        wait_for(lambda: os.path.exists(sock), what="first runner")
        second = start_runner(sock)
        assert second.wait(30) == 0 and second.stdout.read() == ""
        assert runner.holder(sock) == first.pid and first.poll() is None
        assert runner.stop(sock)
        assert first.wait(10) == 0 and not os.path.exists(sock)
    finally:
        first.kill()
        first.wait()


def test_it_refuses_a_bad_idle_setting(sock):
    proc = start_runner(sock, DOCKWEB_RUNNER_IDLE="soon")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert out == "dockweb runner: DOCKWEB_RUNNER_IDLE must be a number of seconds above 0," \
        " not 'soon'\n"  # fmt: skip
    assert runner.holder(sock) is None


def test_a_request_round_trips():
    env = {"A": "1", "EMPTY": "", "EQ": "x=y", "UNICODE": "é"}
    argv = ["dockweb", "run", "--rm", "img", "sh", "-c", "echo 'a b'", ""]
    payload = launch.encode_request("/some/dir", 0o027, argv, env)
    assert launch.decode_request(payload) == ("/some/dir", 0o027, argv, env)
    for bad in [b"", b"2\0/\x0018\x000", b"1\0relative\x0018\x000", b"1\0/\x0018\x003\0a"]:
        with pytest.raises(ValueError):
            launch.decode_request(bad)
