"""Real containers from busybox images pulled through a real registry: run, logs, exit codes,
stop, kill, pause, remove, names, supervision."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from dockweb.runtime.containers import (
    ContainerManager,
    ContainerSpec,
    Status,
    default_runtime,
)
from dockweb.runtime.errors import (
    ContainerConflict,
    ContainerNotFound,
    ContainerNotRunning,
    ContainerStartError,
    DockwebError,
    InvalidContainerSpec,
)
from dockweb.runtime.store import parse_time
from tests.support.containers import busybox_store, logs_text, run_to_exit
from tests.support.procs import running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory):
    return busybox_store(registry, tmp_path_factory, "containers")[0]


@pytest.fixture(scope="module")
def image(registry, store):
    return f"{registry.host}/containers/busybox:1"


def _poll(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


# -- running -------------------------------------------------------------------------------


def test_it_runs_a_command_and_logs_both_streams(manager, image):
    c, code = run_to_exit(manager, image, "sh", "-c", "echo out; echo err >&2")
    assert code == 0
    assert logs_text(manager, c.id, "stdout") == "out\n"
    assert logs_text(manager, c.id, "stderr") == "err\n"
    assert manager.get(c.id).status is Status.EXITED


def test_it_writes_json_file_lines_with_rfc3339nano_times(manager, image):
    c, _ = run_to_exit(manager, image, "echo", "hi")
    with open(os.path.join(manager.cdir(c.id), "container.log")) as f:
        (line,) = f.read().splitlines()
    entry = json.loads(line)
    assert entry["log"] == "hi\n" and entry["stream"] == "stdout"
    assert entry["time"].endswith("Z") and "T" in entry["time"]


def test_it_reports_the_commands_exit_code(manager, image):
    c, code = run_to_exit(manager, image, "sh", "-c", "exit 3")
    assert code == 3
    st = manager.get(c.id).state
    assert st.exit_code == 3 and st.finished_at > st.started_at
    assert st.status_text().startswith("Exited (3) ")


def test_it_exits_127_for_a_missing_command(manager, image):
    with pytest.raises(ContainerStartError) as e:
        manager.run(ContainerSpec(image=image, cmd=["nosuch"]), detach=False)
    assert e.value.exit_code == 127
    assert 'exec: "nosuch": executable file not found in $PATH' in str(e.value)
    assert (
        str(e.value)
        == (
            "failed to create shim task: OCI runtime create failed: runc create failed: unable to "
            'start container process: exec: "nosuch": executable file not found in $PATH: unknown'
        )
        or default_runtime() != "runc"
    )


def test_it_exits_126_for_a_command_that_cannot_be_invoked(manager, image):
    with pytest.raises(ContainerStartError) as e:
        manager.run(ContainerSpec(image=image, cmd=["/etc/passwd"]), detach=False)
    assert e.value.exit_code == 126
    assert "permission denied" in str(e.value)
    (c,) = [c for c in manager.list(all=True) if c.path == "/etc/passwd"]
    assert c.status is Status.CREATED and c.state.exit_code == 126


def test_it_refuses_a_spec_without_a_command(manager, image):
    with pytest.raises(InvalidContainerSpec, match="No command specified"):
        manager.create(ContainerSpec(image=image, entrypoint=[]))


def test_it_runs_the_command_as_pid_1(manager, image):
    c, code = run_to_exit(manager, image, "sh", "-c", "echo $$")
    assert code == 0 and logs_text(manager, c.id) == "1\n"


def test_it_names_the_host_after_the_short_id(manager, image):
    c, _ = run_to_exit(manager, image, "hostname")
    assert logs_text(manager, c.id) == c.id[:12] + "\n"
    c, _ = run_to_exit(manager, image, "cat", "/etc/hostname", hostname="web1")
    assert logs_text(manager, c.id) == "web1\n"


def test_it_sets_dockers_environment(manager, image):
    c, _ = run_to_exit(manager, image, "env", env=["FOO=bar"])
    env = logs_text(manager, c.id).splitlines()
    assert f"HOSTNAME={c.id[:12]}" in env and "FOO=bar" in env
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in env
    assert not any(e.startswith("TERM=") for e in env)


def test_it_resolves_a_user_name_from_the_containers_passwd(manager, image):
    c, _ = run_to_exit(manager, image, "id", user="app")
    # the primary group is a supplementary group too, as moby's getUser makes it
    assert logs_text(manager, c.id) == "uid=1000(app) gid=1000(app) groups=1000(app)\n"
    c, _ = run_to_exit(manager, image, "id", "-u", user="4242:4242")
    assert logs_text(manager, c.id) == "4242\n"
    with pytest.raises(ContainerStartError, match="unable to find user nosuch"):
        manager.run(ContainerSpec(image=image, cmd=["id"], user="nosuch"), detach=False)


def test_it_creates_a_missing_working_directory(manager, image):
    c, _ = run_to_exit(manager, image, "pwd", workdir="/srv/app")
    assert logs_text(manager, c.id) == "/srv/app\n"


def test_it_gives_network_none_only_a_loopback_that_is_up(manager, image):
    c, _ = run_to_exit(
        manager, image, "sh", "-c", "ls /sys/class/net; ip link show lo", network="none"
    )
    lines = logs_text(manager, c.id).splitlines()
    assert lines[0] == "lo"
    assert "UP" in lines[1].split("<")[1].split(">")[0].split(",")


def test_it_shares_the_hosts_interfaces_with_network_host(manager, image):
    c, _ = run_to_exit(manager, image, "ls", "/sys/class/net", network="host")
    assert sorted(logs_text(manager, c.id).split()) == sorted(os.listdir("/sys/class/net"))


def test_it_logs_a_tty_as_stdout(manager, image):
    c, code = run_to_exit(manager, image, "sh", "-c", "test -t 1 && echo tty $TERM", tty=True)
    assert code == 0
    assert [(s, t.replace("\r", "")) for s, t, _ in manager.logs(c.id)] == [
        ("stdout", "tty xterm\n")
    ]


# -- the supervisor ------------------------------------------------------------------------


def test_it_keeps_running_after_the_caller_exits(manager, image, store):
    c = manager.create(ContainerSpec(image=image, cmd=["sleep", "30"]))
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from dockweb.runtime.store import Store;"
        "from dockweb.runtime.containers import ContainerManager;"
        "ContainerManager(Store(sys.argv[2])).start(sys.argv[3])"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code, root, store.root, c.id], check=True, timeout=30)
    assert manager.get(c.id).status is Status.RUNNING
    manager.remove(c.id, force=True)


def test_it_reconciles_a_container_whose_supervisor_died(manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["sleep", "30"]))
    manager.start(c.id)
    pid = manager.get(c.id).state.pid
    with open(os.path.join(manager.cdir(c.id), "shim.pid")) as f:
        os.kill(int(f.read()), signal.SIGKILL)
    assert _poll(lambda: not manager.shim_alive(c.id))
    st = manager.get(c.id).state
    assert st.status is Status.EXITED and st.exit_code == 255
    assert _poll(lambda: not running(pid))


def test_it_runs_the_exit_command_with_the_id(store, image, tmp_path):
    marker = tmp_path / "exited"
    mgr = ContainerManager(store, exit_command=["sh", "-c", f'echo "$0" > {marker}'])
    c = mgr.create(ContainerSpec(image=image, cmd=["true"]))
    mgr.start(c.id)
    mgr.wait(c.id)
    assert _poll(lambda: marker.exists() and marker.read_text().strip() == c.id)
    mgr.remove(c.id)


# -- stop, kill, pause ---------------------------------------------------------------------


def test_it_kills_a_process_that_ignores_sigterm_after_the_timeout(manager, image):
    # PID 1 without a handler ignores SIGTERM
    c = manager.create(ContainerSpec(image=image, cmd=["sleep", "30"]))
    manager.start(c.id)
    t = time.monotonic()
    manager.stop(c.id, timeout=1)
    assert 1 <= time.monotonic() - t < 5
    assert manager.get(c.id).state.exit_code == 137


def test_it_stops_a_process_that_handles_sigterm_promptly(manager, image):
    c = manager.create(
        ContainerSpec(
            image=image,
            cmd=[
                "sh",
                "-c",
                "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.05; done",
            ],
        )
    )
    manager.start(c.id)
    assert _poll(lambda: "ready" in logs_text(manager, c.id))
    t = time.monotonic()
    manager.stop(c.id, timeout=10)
    assert time.monotonic() - t < 3
    assert manager.get(c.id).state.exit_code == 0
    assert logs_text(manager, c.id) == "ready\nbye\n"


def test_it_kills_with_a_signal(manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["sleep", "30"]))
    manager.start(c.id)
    manager.kill(c.id)
    assert manager.get(c.id).state.exit_code == 137
    with pytest.raises(ContainerNotRunning) as e:
        manager.kill(c.id)
    assert str(e.value) == f"Cannot kill container: {c.id}: Container {c.id} is not running"


def test_it_freezes_a_paused_container(manager, image):
    c = manager.create(
        ContainerSpec(
            image=image,
            cmd=["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.01; done"],
        )
    )
    manager.start(c.id)
    counter = os.path.join(manager.cdir(c.id), "rootfs", "tmp", "n")

    def read():
        with open(counter) as f:
            return int(f.read().strip() or 0)

    assert _poll(lambda: os.path.exists(counter) and read() > 3)
    manager.pause(c.id)
    assert manager.get(c.id).status is Status.PAUSED
    frozen = read()
    time.sleep(0.3)
    assert read() == frozen
    with pytest.raises(ContainerConflict, match=f"Container {c.id} is already paused"):
        manager.pause(c.id)
    manager.unpause(c.id)
    assert _poll(lambda: read() > frozen + 3)
    assert manager.get(c.id).status is Status.RUNNING
    with pytest.raises(ContainerConflict, match=f"Container {c.id} is not paused"):
        manager.unpause(c.id)
    manager.remove(c.id, force=True)


def test_it_restarts(manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["sh", "-c", "echo run; sleep 30"]))
    manager.start(c.id)
    manager.restart(c.id, timeout=0)
    st = manager.get(c.id).state
    assert st.status is Status.RUNNING
    # the first run's end stays recorded, as dockerd keeps FinishedAt
    assert st.finished_at != "0001-01-01T00:00:00Z" and st.started_at > st.finished_at
    assert _poll(lambda: logs_text(manager, c.id) == "run\nrun\n")
    manager.remove(c.id, force=True)


# -- remove, names, lookup -----------------------------------------------------------------


def test_it_refuses_to_remove_a_running_container_without_force(manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["sleep", "30"]))
    manager.start(c.id)
    with pytest.raises(ContainerConflict) as e:
        manager.remove(c.id)
    assert str(e.value) == (
        f"You cannot remove a running container {c.id}. Stop the container before attempting "
        "removal or force remove"
    )
    manager.remove(c.id, force=True)
    with pytest.raises(ContainerNotFound):
        manager.get(c.id)


def test_it_removes_the_writable_layer(manager, image):
    c, _ = run_to_exit(manager, image, "sh", "-c", "echo data > /root/file")
    upper = os.path.join(manager.cdir(c.id), "upper")
    assert os.path.exists(os.path.join(upper, "root", "file"))
    manager.remove(c.id)
    assert not os.path.exists(manager.cdir(c.id))
    c2, _ = run_to_exit(manager, image, "ls", "/root")
    assert logs_text(manager, c2.id) == ""


def test_it_removes_an_auto_remove_container_when_it_exits(manager, image):
    code = manager.run(
        ContainerSpec(image=image, cmd=["sh", "-c", "exit 4"], auto_remove=True), detach=False
    )
    assert code == 4
    assert _poll(
        lambda: (
            not any(c.path == "sh" and c.args == ["-c", "exit 4"] for c in manager.list(all=True))
        )
    )


def test_it_mounts_only_an_auto_remove_containers_layer_volatile(manager, image):
    # --rm: the writable layer need not survive a crash, so its unmount need not sync it
    def volatile(c):
        rootfs = os.path.join(manager.cdir(c.id), "rootfs")
        with open("/proc/self/mountinfo") as f:
            for line in f:
                if line.split()[4] == rootfs:
                    options = line.split(" - ")[1].split()[2].split(",")
                    return "volatile" in options or "fsync=volatile" in options  # Linux 6.x
        raise AssertionError(f"{rootfs} is not mounted")

    removed = manager.run(
        ContainerSpec(image=image, cmd=["sleep", "30"], auto_remove=True), detach=True
    )
    kept = manager.run(ContainerSpec(image=image, cmd=["sleep", "30"]), detach=True)
    try:
        assert volatile(removed)
        assert not volatile(kept)
    finally:
        manager.kill(removed.id)
        manager.remove(kept.id, force=True)


def test_it_refuses_a_name_in_use(manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["true"], name="taken"))
    with pytest.raises(ContainerConflict) as e:
        manager.create(ContainerSpec(image=image, cmd=["true"], name="taken"))
    assert str(e.value) == (
        f'Conflict. The container name "/taken" is already in use by container "{c.id}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    manager.remove(c.id)


def test_it_generates_docker_style_names(manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["true"]))
    adjective, _, surname = c.name.partition("_")
    assert adjective.isalpha() and surname.isalpha()
    assert len(c.id) == 64 and all(ch in "0123456789abcdef" for ch in c.id)
    manager.remove(c.id)


def test_it_finds_containers_by_id_prefix_and_name(manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["true"], name="findme"))
    assert manager.get(c.id[:8]).id == c.id
    assert manager.get("findme").id == c.id
    assert manager.get("/findme").id == c.id
    with pytest.raises(ContainerNotFound, match="No such container: nosuch"):
        manager.get("nosuch")
    manager.remove(c.id)


def test_it_lists_running_containers_unless_asked_for_all(manager, image):
    c1 = manager.create(ContainerSpec(image=image, cmd=["sleep", "30"]))
    c2 = manager.create(ContainerSpec(image=image, cmd=["true"]))
    manager.start(c1.id)
    running = [c.id for c in manager.list()]
    assert c1.id in running and c2.id not in running
    assert {c1.id, c2.id} <= {c.id for c in manager.list(all=True)}
    assert (c1.id, c1.image_id, True) in manager.used_images()
    manager.remove(c1.id, force=True)
    manager.remove(c2.id)


# -- logs, exec, top, stats ----------------------------------------------------------------


def test_it_follows_and_tails_logs(manager, image):
    c = manager.create(
        ContainerSpec(image=image, cmd=["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done"])
    )
    manager.start(c.id)
    assert [t for _, t, _ in manager.logs(c.id, follow=True)] == ["1\n", "2\n", "3\n"]
    assert [t for _, t, _ in manager.logs(c.id, tail=1)] == ["3\n"]
    (stamped,) = [t for _, t, _ in manager.logs(c.id, tail=1, timestamps=True)]
    assert stamped.endswith("Z 3\n")
    # --since and --until: the entries written from and up to a time
    times = [parse_time(t).timestamp() for _, _, t in manager.logs(c.id)]
    assert [t for _, t, _ in manager.logs(c.id, since=times[1])] == ["2\n", "3\n"]
    assert [t for _, t, _ in manager.logs(c.id, until=times[1])] == ["1\n", "2\n"]
    assert [t for _, t, _ in manager.logs(c.id, since=times[1], until=times[1])] == ["2\n"]


def test_it_execs_in_a_running_container(manager, image, tmp_path):
    c = manager.create(ContainerSpec(image=image, cmd=["sleep", "30"]))
    manager.start(c.id)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        code = manager.exec(c.id, ["sh", "-c", "echo $$ $FOO; exit 5"], env=["FOO=x"], stdout=f)
    assert code == 5
    pid, foo = out.read_text().split()
    assert pid != "1" and foo == "x"
    # another user gets its own groups only, never the container's (root's 0)
    for user, expected in [
        ("app", "uid=1000(app) gid=1000(app) groups=1000(app)\n"),
        ("4242:4243", "uid=4242 gid=4243 groups=4243\n"),
        ("", "uid=0(root) gid=0(root) groups=0(root)\n"),
    ]:
        with open(out, "wb") as f:
            assert manager.exec(c.id, ["id"], user=user, stdout=f) == 0
        assert out.read_text() == expected
    with pytest.raises(ContainerStartError) as e:
        manager.exec(c.id, ["nosuch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert e.value.exit_code == 126
    assert str(e.value) == (
        "OCI runtime exec failed: exec failed: unable to start container process: "
        'exec: "nosuch": executable file not found in $PATH: unknown'
    )
    manager.pause(c.id)
    with pytest.raises(ContainerConflict) as e:
        manager.exec(c.id[:10], ["true"])
    assert str(e.value) == f"Container {c.id[:10]} is paused, unpause the container before exec"
    manager.remove(c.id, force=True)
    stopped, _ = run_to_exit(manager, image, "true")
    with pytest.raises(ContainerNotRunning, match=f"Container {stopped.id} is not running"):
        manager.exec(stopped.id, ["true"])


def test_it_lists_the_containers_processes(manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["sh", "-c", "sleep 30 & sleep 31; true"]))
    manager.start(c.id)
    assert _poll(lambda: len(manager.pids(c.id)) == 3)
    titles, rows = manager.top(c.id)
    assert titles[:3] == ["UID", "PID", "PPID"]
    cmds = sorted(r[-1] for r in rows)
    assert cmds == ["sh -c sleep 30 & sleep 31; true", "sleep 30", "sleep 31"]
    # ps options as docker passes them: -q with the pids first, without it when ps refuses
    titles, rows = manager.top(c.id, "-o pid,comm")
    assert titles == ["PID", "COMMAND"]
    assert sorted(r[1] for r in rows) == ["sh", "sleep", "sleep"]
    assert {int(r[0]) for r in rows} == set(manager.pids(c.id))
    titles, rows = manager.top(c.id, "-e f")  # forest (f) does not go with q
    assert titles[0] == "PID" and len(rows) == 3
    with pytest.raises(DockwebError) as e:
        manager.top(c.id, "bogusarg")
    assert str(e.value) == "ps: error: unsupported option (BSD syntax)"
    with pytest.raises(DockwebError) as e:
        manager.top(c.id, "o user")
    assert str(e.value) == "Couldn't find PID field in ps output"
    with pytest.raises(DockwebError) as e:
        manager.top(c.id, "x -o user=PID")
    assert str(e.value) == 'specifying "user=PID" is not allowed'
    stats = manager.stats(c.id, interval=0.05)
    assert stats["pids"] == 3 and stats["memory_usage"] > 0 and stats["cpu_usage_ns"] > 0
    manager.remove(c.id, force=True)


# -- status guards -------------------------------------------------------------------------


def test_it_allows_start_only_from_created_or_exited():
    assert {s for s in Status if s.can_start()} == {Status.CREATED, Status.EXITED}


def test_it_allows_stop_only_with_processes():
    assert {s for s in Status if s.can_stop()} == {Status.RUNNING, Status.PAUSED, Status.RESTARTING}


def test_it_allows_kill_only_with_processes():
    assert {s for s in Status if s.can_kill()} == {Status.RUNNING, Status.PAUSED, Status.RESTARTING}


def test_it_allows_pause_only_when_running():
    assert {s for s in Status if s.can_pause()} == {Status.RUNNING}


def test_it_allows_unpause_only_when_paused():
    assert {s for s in Status if s.can_unpause()} == {Status.PAUSED}


def test_it_allows_exec_only_when_running():
    assert {s for s in Status if s.can_exec()} == {Status.RUNNING}


def test_it_allows_remove_of_stopped_containers_and_anything_but_removing_with_force():
    assert {s for s in Status if s.can_remove()} == {Status.CREATED, Status.EXITED, Status.DEAD}
    assert {s for s in Status if s.can_remove(force=True)} == set(Status) - {Status.REMOVING}


def test_it_picks_a_runtime_that_runs_on_this_host():
    assert default_runtime() in ("crun", "runc")


def test_it_streams_attached_output_of_an_auto_remove_container(manager, image):
    seen = []
    code = manager.run(
        ContainerSpec(
            image=image, cmd=["sh", "-c", "echo a; echo b >&2; exit 2"], auto_remove=True
        ),
        detach=False,
        on_output=lambda stream, text: seen.append((stream, text)),
    )
    assert code == 2
    assert sorted(seen) == [("stderr", "b\n"), ("stdout", "a\n")]


def test_it_stops_a_paused_container(manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["sleep", "30"]))
    manager.start(c.id)
    manager.pause(c.id)
    manager.stop(c.id, timeout=1)
    st = manager.get(c.id).state
    assert st.status is Status.EXITED and st.exit_code == 137


# -- host config: read-only root, capabilities, tmpfs, hosts, limits, stop signal ----------


def test_it_applies_read_only_capabilities_tmpfs_and_extra_hosts(manager, image):
    c, code = run_to_exit(
        manager, image, "sh", "-c",
        "touch /x 2>/dev/null || echo ro; touch /dev/shm/y && echo shm; "
        "grep CapEff /proc/self/status; grep ' /run ' /proc/mounts; grep db /etc/hosts",
        read_only=True, cap_drop=["ALL"], cap_add=["chown", "CAP_KILL"],
        tmpfs={"/run": "size=1m"}, extra_hosts=["db:10.0.0.5"],
    )
    assert code == 0
    lines = logs_text(manager, c.id).splitlines()
    assert lines[:2] == ["ro", "shm"]  # the root is read-only, /dev/shm is not
    assert lines[2] == "CapEff:\t0000000000000021"  # CAP_CHOWN (0) and CAP_KILL (5) only
    assert lines[3].startswith("tmpfs /run tmpfs rw,nosuid,nodev,noexec,")
    assert "size=1024k" in lines[3]
    assert lines[4] == "10.0.0.5\tdb"
    refused = '^invalid CapAdd: unknown capability: "CAP_FOO"$'
    with pytest.raises(InvalidContainerSpec, match=refused):
        manager.create(ContainerSpec(image=image, cmd=["true"], cap_add=["foo"]))


def test_it_limits_memory_cpu_and_pids_through_cgroups(manager, image):
    c, code = run_to_exit(
        manager, image, "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/pids/pids.max",
        memory=64 << 20, nano_cpus=500_000_000, pids_limit=20,
    )
    assert code == 0
    assert logs_text(manager, c.id).split() == [str(64 << 20), "50000", "20"]
    for kw, message in [
        ({"memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
        ({"nano_cpus": 10**12}, "Range of CPUs is from 0.01 to "),
        ({"stop_signal": "NOPE"}, "Invalid signal: NOPE"),
    ]:
        with pytest.raises(InvalidContainerSpec, match=f"^{re.escape(message)}"):
            manager.create(ContainerSpec(image=image, cmd=["true"], **kw))


def test_it_stops_with_the_containers_stop_signal_and_timeout(manager, image):
    c = manager.create(ContainerSpec(
        image=image, cmd=["sh", "-c", "trap 'echo got USR1; exit 3' USR1; "
                          "while true; do sleep 0.1; done"],
        stop_signal="SIGUSR1",
    ))
    manager.start(c.id)
    assert _poll(lambda: manager.pids(c.id))
    time.sleep(0.3)  # the trap is set
    manager.stop(c.id, manager.stop_timeout(c.id))
    assert manager.get(c.id).state.exit_code == 3 and logs_text(manager, c.id) == "got USR1\n"
    c = manager.create(ContainerSpec(
        image=image, cmd=["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"],
        stop_timeout=1,
    ))
    manager.start(c.id)
    assert manager.stop_timeout(c.id) == 1
    started = time.monotonic()
    manager.stop(c.id, manager.stop_timeout(c.id))
    assert time.monotonic() - started < 5 and manager.get(c.id).state.exit_code == 137


# -- restart policies ------------------------------------------------------------------------


def test_it_restarts_on_failure_as_many_times_as_allowed(manager, image):
    c = manager.create(ContainerSpec(
        image=image, cmd=["sh", "-c", "echo run; exit 3"],
        restart={"Name": "on-failure", "MaximumRetryCount": 2},
    ))
    manager.start(c.id)
    assert _poll(lambda: logs_text(manager, c.id) == "run\nrun\nrun\n", timeout=10)
    assert _poll(lambda: manager.get(c.id).status is Status.EXITED)
    time.sleep(1)  # no fourth run comes
    st = manager.get(c.id).state
    assert (st.restart_count, st.exit_code, logs_text(manager, c.id)) == (2, 3, "run\nrun\nrun\n")
    # a success ends on-failure at once
    ok = manager.create(ContainerSpec(
        image=image, cmd=["true"], restart={"Name": "on-failure", "MaximumRetryCount": 0},
    ))
    manager.start(ok.id)
    assert manager.wait(ok.id) == 0
    time.sleep(0.5)
    assert manager.get(ok.id).state.restart_count == 0


def test_it_restarts_always_until_stopped_or_removed(manager, image):
    c = manager.create(ContainerSpec(
        image=image, cmd=["sh", "-c", "echo run; sleep 0.2"],
        restart={"Name": "always", "MaximumRetryCount": 0},
    ))
    manager.start(c.id)
    assert _poll(lambda: manager.get(c.id).state.restart_count >= 2, timeout=10)
    manager.stop(c.id, 1)  # running or waiting to restart: it stays stopped
    assert manager.get(c.id).status is Status.EXITED and not manager.shim_alive(c.id)
    runs = logs_text(manager, c.id).count("run")
    time.sleep(1)
    assert logs_text(manager, c.id).count("run") == runs
    # a start by someone begins the count again; a removal ends it, even between runs
    manager.start(c.id)
    assert manager.get(c.id).state.restart_count == 0
    assert _poll(lambda: manager.get(c.id).status is Status.RESTARTING, timeout=10)
    with pytest.raises(ContainerConflict, match="is restarting, wait until the container"):
        manager.kill(c.id)
    with pytest.raises(ContainerConflict, match="You cannot remove a restarting container"):
        manager.remove(c.id)
    manager.remove(c.id, force=True)
    with pytest.raises(ContainerNotFound):
        manager.get(c.id)


def test_an_updated_restart_policy_applies_to_the_running_container(manager, image):
    c = manager.create(ContainerSpec(image=image, cmd=["sh", "-c", "sleep 0.5; exit 1"]))
    manager.start(c.id)
    manager.update(c.id, restart={"Name": "on-failure", "MaximumRetryCount": 1})
    assert _poll(lambda: manager.get(c.id).state.restart_count == 1, timeout=10)
    assert manager.get(c.id).spec.restart == {"Name": "on-failure", "MaximumRetryCount": 1}
    auto = manager.create(ContainerSpec(image=image, cmd=["true"], auto_remove=True))
    with pytest.raises(ContainerConflict, match="AutoRemove is enabled"):
        manager.update(auto.id, restart={"Name": "always", "MaximumRetryCount": 0})
    manager.remove(auto.id)
