"""exec into real busybox containers: with a pty (the master over the console socket), with
stdin forwarded, resizing, exit codes as ``docker exec`` gives them."""

from __future__ import annotations

import os
import re
import signal

import pytest

from dockweb.runtime.containers import ContainerManager, ContainerSpec
from dockweb.runtime.errors import ContainerStartError
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.spawner import Spawner
from dockweb.runtime.store import Store
from tests.support import images as im
from tests.support.cli import cli_env, run_dockweb, spawn_dockweb
from tests.support.pty import pty_session, read_until, resize

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def image(registry):
    im.push_image(registry.host, "exec/busybox", "1", im.busybox_base())
    return f"{registry.host}/exec/busybox:1"


@pytest.fixture(scope="module")
def manager(image, tmp_path_factory):
    store = Store(str(tmp_path_factory.mktemp("exec") / "store"))
    pull(store, RegistryClient(), image)
    mgr = ContainerManager(store)
    yield mgr
    for c in mgr.list(all=True):
        mgr.remove(c.id, force=True, volumes=True)


@pytest.fixture(scope="module")
def running(manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["sleep", "300"]))
    manager.start(c.id)
    return c.id


def test_it_gives_a_tty_exec_a_pty(manager, running):
    h = manager.exec_start(running, ["busybox", "tty"], tty=True)
    assert h.tty and h.master is not None and h.pid > 0
    assert re.search(r"/dev/pts/\d+\r\n", read_until(h.master, r"/dev/pts/\d+\r\n"))
    assert h.wait(10) == 0
    h.close()


def test_it_forwards_input_to_a_tty_shell_and_resizes_it(manager, running):
    h = manager.exec_start(running, ["/bin/sh"], tty=True, interactive=True)
    try:
        h.resize(cols=100, rows=30)
        os.write(h.master, b"busybox stty size; echo hello-$((6*7))\n")
        read_until(h.master, r"30 100\r\n.*hello-42\r\n")
        h.resize(cols=132, rows=43)
        os.write(h.master, b"busybox stty size; echo $TERM\n")
        read_until(h.master, r"43 132\r\nxterm\r\n")
        os.write(h.master, b"exit 7\n")
        assert h.wait(10) == 7
    finally:
        h.close()


def test_it_hangs_the_shell_up_when_the_master_is_closed(manager, running):
    h = manager.exec_start(running, ["/bin/sh"], tty=True, interactive=True)
    os.write(h.master, b"echo ready\n")
    read_until(h.master, r"ready\r\n")
    h.close()
    assert h.wait(10) == 128 + signal.SIGHUP
    assert manager.get(running).status.value == "running"


def test_it_reports_a_killed_tty_command_as_128_plus_the_signal(manager, running):
    h = manager.exec_start(running, ["sleep", "100"], tty=True)
    h.kill(signal.SIGKILL)
    assert h.wait(10) == 137
    h.close()


def test_it_forwards_stdin_without_a_tty(manager, running):
    h = manager.exec_start(running, ["cat"], interactive=True)
    assert not h.tty and h.master is None
    h.stdin.write(b"line one\nline two\n")
    h.stdin.close()
    assert h.stdout.read() == b"line one\nline two\n"
    assert h.wait(10) == 0
    h.close()


def test_it_copies_stdin_and_output_through_a_pty_in_the_blocking_form(manager, running, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.write_bytes(b"echo via-$((40+2)); exit 3\n")
    with open(src, "rb") as i, open(out, "wb") as o:
        code = manager.exec(running, ["sh"], tty=True, interactive=True, stdin=i, stdout=o)
    assert code == 3
    assert b"via-42\r\n" in out.read_bytes()


def test_it_fails_a_missing_tty_command_with_126(manager, running):
    with pytest.raises(ContainerStartError) as e:
        manager.exec_start(running, ["nosuch"], tty=True)
    assert e.value.exit_code == 126
    assert 'exec: "nosuch": executable file not found in $PATH' in str(e.value)


# -- the exec helper forked by a spawner (the Engine API service's way) -------------------


@pytest.fixture(scope="module")
def spawner():
    s = Spawner()
    s.start()
    yield s
    s.close()


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_a_spawner_forks_the_exec_helper_with_the_pipes(manager, running, spawner):
    spawned = ContainerManager(manager.store, spawner=spawner)
    # its options' descriptors are mapped to the spawner's; the command's words are not
    script = "read x; echo out-$x; echo err-$x >&2; exit 3"
    h = spawned.exec_start(running, ["sh", "-c", script, "--stdout-fd", "9"], interactive=True)
    try:
        # the command's parent is the exec helper, a child of the spawner's (not ours)
        assert _ppid(_ppid(h.pid)) == spawner.proc.pid
        h.stdin.write(b"42\n")
        h.stdin.close()
        assert h.stdout.read() == b"out-42\n"
        assert h.stderr.read() == b"err-42\n"
        assert h.wait(10) == 3
        assert h.poll() == 3
    finally:
        h.close()


def test_a_spawner_forks_the_exec_helper_with_a_tty(manager, running, spawner):
    spawned = ContainerManager(manager.store, spawner=spawner)
    h = spawned.exec_start(running, ["/bin/sh"], tty=True, interactive=True)
    try:
        assert _ppid(_ppid(h.pid)) == spawner.proc.pid
        h.resize(cols=90, rows=20)
        os.write(h.master, b"busybox stty size; exit 5\n")
        read_until(h.master, r"20 90\r\n")
        assert h.wait(10) == 5
    finally:
        h.close()
    with pytest.raises(ContainerStartError) as e:
        spawned.exec_start(running, ["nosuch"], tty=True)
    assert 'exec: "nosuch": executable file not found in $PATH' in str(e.value)


# -- the CLI: dockweb exec -it / -i -------------------------------------------------------


@pytest.fixture
def cli(image, tmp_path):
    """``dockweb <args>`` on a store of its own, with busybox pulled and one container
    running ``sleep 300`` (its ID is ``cli.cid``)."""
    env = cli_env(tmp_path)

    def run(*args, **kw):
        return run_dockweb(env, *args, text=False, **kw)

    def spawn(*args, **kw):
        return spawn_dockweb(env, *args, **kw)

    run("pull", "-q", image, check=True)
    run.cid = run("run", "-d", image, "sleep", "300", check=True).stdout.decode().strip()
    run.spawn = spawn
    yield run
    run("rm", "-f", run.cid)


def test_it_proxies_a_local_terminal_in_raw_mode_with_exec_it(cli):
    with pty_session(cli.spawn, "exec", "-it", cli.cid, "sh") as (proc, master):
        read_until(master, r"# ")
        os.write(master, b"busybox tty; busybox stty size\r")
        read_until(master, r"/dev/pts/\d+\r\n24 80\r\n")
        # the window grows: the CLI hears SIGWINCH and resizes the container's pty
        resize(master, proc, 40, 120)
        os.write(master, b"exit 4\r")
        assert proc.wait(20) == 4


def test_it_forwards_stdin_with_exec_i_and_refuses_t_without_a_terminal(cli):
    proc = cli("exec", "-i", cli.cid, "sh", "-c", "cat; exit 9", input=b"piped\n")
    assert (proc.returncode, proc.stdout) == (9, b"piped\n")
    proc = cli("exec", "-it", cli.cid, "true", input=b"")
    assert (proc.returncode, proc.stderr) == (1, b"the input device is not a TTY\n")
    proc = cli("exec", "-t", cli.cid, "busybox", "tty")
    assert proc.returncode == 0 and re.match(rb"/dev/pts/\d+\r\n", proc.stdout)


def test_it_finds_which_shells_an_image_has(manager, running):
    shells = ["/bin/sh", "/bin/bash", "/bin/ash"]
    assert manager.existing_paths(running, shells) == ["/bin/sh", "/bin/ash"]
