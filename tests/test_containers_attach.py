"""`dockweb run -i/-t/-it` and `start -ai` on real busybox containers: the supervisor holds
the container's stdin (a pipe, or the pty's master) and serves it on the attach socket; the
CLI forwards its stdin and terminal size and prints the output."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from dockweb.runtime import attach
from dockweb.runtime.containers import ContainerManager, Status
from dockweb.runtime.store import Store
from tests.support import images as im
from tests.support.cli import cli_env, run_dockweb, spawn_dockweb
from tests.support.pty import pty_session, read_until, resize

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def image(registry):
    im.push_image(registry.host, "attach/busybox", "1", im.busybox_base())
    return f"{registry.host}/attach/busybox:1"


@pytest.fixture
def cli(image, tmp_path):
    env = cli_env(tmp_path)

    def run(*args, **kw):
        return run_dockweb(env, *args, timeout=60, text=False, **kw)

    def spawn(*args, env_extra=None, **kw):
        return spawn_dockweb({**env, **(env_extra or {})}, *args, **kw)

    run("pull", "-q", image, check=True)
    run.image = image
    run.spawn = spawn
    yield run
    ids = run("ps", "-aq").stdout.decode().split()
    if ids:
        run("rm", "-f", *ids)


def test_it_echoes_piped_stdin_with_run_i_and_closes_it_at_eof(cli):
    proc = cli("run", "-i", "--rm", cli.image, "cat", input=b"one\ntwo\n")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"one\ntwo\n", b"")
    proc = cli("run", "-i", cli.image, "sh", "-c", "cat; echo err >&2; exit 5", input=b"x\n")
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, b"x\n", b"err\n")


def test_it_gives_run_t_a_pty_and_refuses_it_without_a_terminal(cli):
    with pty_session(cli.spawn, "run", "-t", "--rm", cli.image, "busybox", "tty") as (proc, master):
        # our terminal is not raw without -i (as docker's): its ONLCR adds a second \r
        assert re.match(r"/dev/pts/\d+\r\r\n", read_until(master, r"/dev/pts/\d+\r\r\n"))
        assert proc.wait(20) == 0
    proc = cli("run", "-it", cli.image, "true", input=b"")
    assert (proc.returncode, proc.stderr) == (1, b"the input device is not a TTY\n")
    assert cli("ps", "-aq").stdout == b""  # refused before creating anything
    # with -d nothing is attached, so no terminal is needed: a shell waits on its pty
    cid = cli("run", "-dit", "--name", "bg", cli.image, "sh", input=b"").stdout.strip()
    assert re.fullmatch(rb"[0-9a-f]{64}", cid)
    time.sleep(0.5)
    assert cli("ps", "--format", "{{.Names}} {{.Status}}").stdout.startswith(b"bg Up ")
    cli("rm", "-f", "bg")


def test_it_runs_an_interactive_shell_with_run_it(cli):
    with pty_session(cli.spawn, "run", "-it", "--name", "shell", cli.image, "sh") as (proc, master):
        read_until(master, r"# ")
        os.write(master, b"echo hi; busybox stty size\r")
        read_until(master, r"hi\r\n24 80\r\n")
        resize(master, proc, 40, 120)
        os.write(master, b"exit 3\r")
        assert proc.wait(20) == 3
    # the output is in the log, as json-file writes a tty's: all stdout
    logs = cli("logs", "shell")
    assert b"hi\r\n" in logs.stdout and logs.stderr == b""


def test_it_detaches_with_ctrl_p_ctrl_q_and_reattaches_with_start_ai(cli):
    with pty_session(cli.spawn, "run", "-it", "--name", "keep", cli.image, "sh") as (proc, master):
        read_until(master, r"# ")
        os.write(master, b"\x10\x11")
        assert proc.wait(20) == 0
    assert cli("inspect", "-f", "{{.State.Running}}", "keep").stdout == b"true\n"
    cli("stop", "-t", "1", "keep", check=True)
    with pty_session(cli.spawn, "start", "-ai", "keep") as (proc, master):
        read_until(master, r"# ")
        os.write(master, b"echo again\r")
        read_until(master, r"again\r\n")
        os.write(master, b"exit 7\r")
        assert proc.wait(20) == 7


def test_it_holds_back_a_ctrl_p_until_the_next_key_decides():
    keys = attach.EscapeKeys()
    assert keys.feed(b"ls\x10") == (b"ls", False)  # typed apart: ctrl-p waits for ctrl-q
    assert keys.feed(b"\x11after") == (b"", True)
    assert keys.feed(b"\x10") == (b"", False)
    assert keys.feed(b"p") == (b"\x10p", False)  # not the keys: both go in
    assert keys.feed(b"\x10\x10\x11") == (b"\x10", True)
    assert keys.feed(b"a\x10") == (b"a", False)
    assert keys.flush() == b"\x10"  # the input ended: what was held goes in


def test_it_keeps_the_container_running_when_a_client_stops_reading(cli, tmp_path):
    cmd = "while :; do echo tick; sleep 0.1; done"
    cid = cli("run", "-dt", cli.image, "sh", "-c", cmd).stdout.decode().strip()
    mgr = ContainerManager(Store(str(tmp_path / "store")))
    with attach.connect(mgr.attach_path(cid)) as sock:
        sock.shutdown(socket.SHUT_RD)  # the supervisor's writes to this client now fail
        ticks = 0
        # the log follows the supervisor: it ends early if the failed write killed it
        for _, text, _ in mgr.logs(cid, follow=True, tail=0):
            ticks += text.count("tick")
            if ticks >= 3:
                break
    assert ticks == 3
    assert mgr.get(cid).status is Status.RUNNING


def test_it_attaches_before_the_start_so_no_output_is_missed(cli, tmp_path):
    cid = cli("create", "-t", cli.image, "sh", "-c", "echo one; echo two").stdout.decode().strip()
    mgr = ContainerManager(Store(str(tmp_path / "store")))
    with mgr.start_attached(cid) as sock:
        assert mgr.wait(cid) == 0  # over before we read a byte
        out = b"".join(payload for _, payload in attach.read_frames(sock))
    assert out == b"one\r\ntwo\r\n"


TRAPS = (
    'trap "echo got TERM; exit 3" TERM; trap "echo got INT; exit 4" INT; '
    'trap "echo got USR1" USR1; echo up; while :; do busybox sleep 0.1; done'
)


@pytest.mark.parametrize("runner", ["", "0"])  # through the runner, and without it
def test_it_passes_signals_on_to_the_container_as_docker_sig_proxy(cli, runner):
    env = {"DOCKWEB_RUNNER": runner}
    proc = cli.spawn("run", "--rm", cli.image, "sh", "-c", TRAPS, env_extra=env,
                     stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout.readline() == b"up\n"
        proc.send_signal(signal.SIGUSR1)  # the container's trap answers; both go on
        assert proc.stdout.readline() == b"got USR1\n"
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the container's, not ours
        assert proc.stdout.readline() == b"got INT\n"
        assert proc.wait(20) == 4
    finally:
        proc.kill()
        proc.wait()
    # -i without a tty proxies too; `start -a` as `run`
    proc = cli.spawn("run", "-i", "--name", "later", cli.image, "sh", "-c", TRAPS,
                     env_extra=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert_trapped_term(proc)
    assert_trapped_term(cli.spawn("start", "-a", "later", env_extra=env, stdout=subprocess.PIPE))
    cli("rm", "later", check=True)


def assert_trapped_term(proc) -> None:
    """``proc``, attached to a container running TRAPS, passes a SIGTERM on: the container
    says so and ends with 3, and so does ``proc``."""
    try:
        assert proc.stdout.readline() == b"up\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline() == b"got TERM\n"
        assert proc.wait(20) == 3
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("runner", ["", "0"])
def test_it_keeps_signals_to_itself_with_sig_proxy_false(cli, runner):
    proc = cli.spawn("run", "--sig-proxy=false", "--name", "alone", cli.image, "sh", "-c", TRAPS,
                     env_extra={"DOCKWEB_RUNNER": runner}, stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout.readline() == b"up\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == -signal.SIGTERM  # the CLI ends, as docker's
    finally:
        proc.kill()
        proc.wait()
    ps = cli("ps", "--format", "{{.Names}} {{.Status}}").stdout.decode()
    assert ps.startswith("alone Up ")  # the container never heard of it
    assert b"got" not in cli("logs", "alone").stdout


def test_attach_follows_a_running_container_and_gives_its_exit_code(cli):
    cli("run", "-d", "--name", "ticker", cli.image, "sh", "-c",
        "trap 'echo out; echo err >&2; exit 4' TERM; while true; do echo tick; sleep 0.1; done",
        check=True)
    proc = cli.spawn("attach", "--sig-proxy=false", "ticker",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"tick\n"  # following: what comes now
        cli("kill", "-s", "TERM", "ticker", check=True)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, out.replace(b"tick\n", b""), err) == (4, b"out\n", b"err\n")
    cli("run", "-d", "-i", "--name", "reader", cli.image, "sh", "-c",
        "read x; echo got $x; exit 5", check=True)
    proc = cli("attach", "reader", input=b"hello\n")
    assert (proc.returncode, proc.stdout) == (5, b"got hello\n")
    for setup, message in [
        (("create", "--name", "idle", cli.image), b"You cannot attach to a stopped container, "
                                                  b"start it first\n"),
        (("run", "-d", "--name", "frozen", cli.image, "sleep", "60"), b"You cannot attach to a "
                                                                      b"paused container, "
                                                                      b"unpause it first\n"),
    ]:
        name = setup[setup.index("--name") + 1]
        cli(*setup, check=True)
        if name == "frozen":
            cli("pause", "frozen", check=True)
        proc = cli("attach", name)
        assert (proc.returncode, proc.stderr) == (1, message)
    assert cli("attach", "nosuch").stderr == b"Error: No such container: nosuch\n"


def test_attach_to_a_tty_container_and_detach_with_ctrl_p_ctrl_q(cli):
    cli("run", "-dit", "--name", "term", cli.image, "sh", check=True)
    with pty_session(cli.spawn, "attach", "term") as (proc, master):
        # the shell's answer (not our terminal's echo of the line): the attach is up and
        # our terminal raw, so ^Q is no flow control any more
        os.write(master, b"echo $((6*7))\r")
        read_until(master, r"\n42\r\n")
        os.write(master, b"\x10\x11")
        assert proc.wait(20) == 0
    assert cli("inspect", "-f", "{{.State.Running}}", "term").stdout == b"true\n"
    with pty_session(cli.spawn, "attach", "term") as (proc, master):
        os.write(master, b"exit 3\r")
        assert proc.wait(20) == 3
