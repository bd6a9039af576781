"""The verbs that run and end a container's process: start (under a supervisor), run,
wait, stop, restart, kill, pause, unpause and remove."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal as signals
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from dockweb.runtime import attach as frames
from dockweb.runtime import events
from dockweb.runtime.containers import health
from dockweb.runtime.containers.observe import read_log
from dockweb.runtime.containers.ocirt import (
    docker_words,
    rt_error,
    start_exit_code,
    with_pythonpath,
)
from dockweb.runtime.containers.spec import ContainerSpec, parse_signal
from dockweb.runtime.containers.state import Container, Status, read_text
from dockweb.runtime.crashpoint import crashpoint
from dockweb.runtime.errors import (
    ContainerConflict,
    ContainerNotFound,
    ContainerNotRunning,
    ContainerStartError,
    DockwebError,
)


class LifecycleMixin:
    """``ContainerManager``'s start, run, wait, stop, restart, kill, pause, unpause, remove."""

    # -- start ----------------------------------------------------------------------------

    def start(
        self, ref: str, *, attach: socket.socket | None = None, _restart: bool = False
    ) -> Container:
        """Start the container's process under a detached supervisor; returns once the
        process runs (or raises ContainerStartError with Docker's message and exit code,
        recording both in the state). Starting a running container does nothing.
        ``_restart``: the supervisor restarting it by its policy (the count goes on).

        ``attach``: one end of a connected socket pair (see ``start_attached``), handed to
        the supervisor of a ``-i``/``-t`` container as an attach client from before the
        process runs (closed here once handed over; left open if nothing was started).
        Other containers' output is read with ``logs(follow=True)``, the exit code with
        ``wait``.
        """
        c = self.get(ref)
        if c.status in (Status.RUNNING, Status.RESTARTING):
            return c
        if c.status is Status.PAUSED:
            raise ContainerConflict("cannot start a paused container, try unpause instead")
        if not c.status.can_start():
            raise ContainerConflict(f"Container {c.id} is marked for removal and cannot be started")
        if self.shim_alive(c.id):
            raise ContainerConflict(f"Container {c.id} is already being started")
        try:
            self._prepare(c)
        except ContainerStartError as e:
            self.update_state(c.id, exit_code=e.exit_code, error=str(e))
            raise
        except OSError as e:
            self.update_state(c.id, exit_code=125, error=str(e))
            raise ContainerStartError(str(e), 125) from e
        if os.path.exists(os.path.join(self.runtime_root, c.id)):
            # the runtime's record of an earlier run that nobody deleted (a crash)
            subprocess.run(self._rt("delete", "--force", c.id), capture_output=True)
        st = c.state
        if not _restart and (st.manual_stop or st.restart_count or st.restart_delay):
            # a start by someone: the policy applies afresh (dockerd's)
            c.state = self.update_state(
                c.id, durable=False, manual_stop=False, restart_count=0, restart_delay=0.0
            )
        result = self._spawn_shim(c, attach=attach)
        if result.get("cancelled"):  # a restart that a stop overtook
            return self.get(c.id)
        if "error" in result:
            # the supervisor answered and is cleaning up: once this raises, the container
            # can be started again (dockerd's start returns after the task is deleted)
            self.await_supervisor_gone(c.id)
            error = docker_words(result["error"])
            code = start_exit_code(error)
            msg = f"failed to create shim task: OCI runtime create failed: {error}: unknown"
            if result.get("ports"):  # a host port it could not have: dockerd's own words
                msg, code = result["error"], 125
            self.update_state(c.id, exit_code=code, error=msg)
            raise ContainerStartError(msg, code)
        crashpoint("container.start.answered")
        try:
            return self.get(c.id)
        except ContainerNotFound:  # --rm, and the process has ended already
            return c

    def note_attach(self, ref: str) -> None:
        """Journal dockerd's ``attach`` event: a client follows the container's output."""
        with contextlib.suppress(DockwebError):
            events.container(self.root, self.get(ref), "attach")

    def start_attached(self, ref: str) -> socket.socket:
        """Start a ``-i``/``-t`` container with a client attached (``run -it``, ``start
        -ai``); returns the client's socket (``dockweb.runtime.attach`` frames). Its
        supervisor holds the other end before the process runs, as Docker attaches before it
        starts: no output can be missed, however soon the process ends. A container running
        already: a new client of its attach socket, which gets the output from then on."""
        self.note_attach(ref)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with theirs:
                c = self.start(ref, attach=theirs)
                if theirs.fileno() < 0:  # handed to the supervisor that runs it
                    return ours
        except BaseException:
            ours.close()
            raise
        ours.close()
        return frames.connect(self.attach_path(c.id))

    def _spawn_shim(self, c: Container, *, attach: socket.socket | None = None) -> dict:
        r, w = os.pipe()
        env = with_pythonpath(os.environ)
        shim_args = [
            "--root",
            self.root,
            "--id",
            c.id,
            "--runtime",
            self.runtime,
            "--runtime-root",
            self.runtime_root,
            "--sync-fd",
            str(w),
            "--exit-command",
            json.dumps(self.exit_command),
        ]
        pass_fds = [w]
        if attach is not None:
            shim_args += ["--attach-fd", str(attach.fileno())]
            pass_fds.append(attach.fileno())
        forked = self.fork_supervisor and threading.active_count() == 1
        spawned = not forked and self.spawner is not None
        with open(os.path.join(self.cdir(c.id), "shim.log"), "ab") as log:
            if spawned:
                try:
                    self.spawner.spawn(shim_args, pass_fds, log.fileno())
                except OSError as e:
                    os.close(r)
                    os.close(w)
                    return {"error": f"supervisor failed: {e}"}
            elif forked:
                _fork_shim(
                    shim_args, pass_fds, log.fileno(), env["PYTHONPATH"], type(self), self.on_exit
                )
            else:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "dockweb.runtime.containers", *shim_args],
                    pass_fds=pass_fds,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    env=env,
                    cwd="/",
                )
                pid = proc.pid
        os.close(w)
        if attach is not None:
            attach.close()  # the supervisor's now
        if not forked and not spawned:
            os.waitpid(pid, 0)  # the supervisor forks and its first process exits at once
        crashpoint("container.start.spawned")
        chunks = []
        with os.fdopen(r, "rb") as f:
            while True:
                chunk = f.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        data = b"".join(chunks).strip()
        if not data:
            tail = read_text(os.path.join(self.cdir(c.id), "shim.log"))[-2000:]
            return {"error": f"supervisor failed: {tail.strip() or 'no output'}"}
        return json.loads(data)

    def run(
        self,
        spec: ContainerSpec,
        *,
        detach: bool,
        on_output: Callable[[str, str], None] | None = None,
    ) -> int | Container:
        """create + start; with ``detach`` the Container, else wait and return its exit
        code. A start failure raises ContainerStartError (``exit_code`` 125/126/127; with
        ``auto_remove`` the container is removed first, as ``docker run --rm`` does).

        Without ``detach``, ``on_output(stream, text)`` receives every log line as it is
        written ("attached" output), even for an ``auto_remove`` container that is gone by
        the time it returns: the log and the supervisor's lock are opened before the start.
        """
        c = self.create(spec)
        if not detach:
            events.container(self.root, c, "attach")
        cdir = self.cdir(c.id)
        log = open(os.path.join(cdir, "container.log"), "rb")
        lock_fd = os.open(os.path.join(cdir, "shim.lock"), os.O_RDONLY)
        try:
            try:
                self.start(c.id)
            except ContainerStartError:
                if spec.auto_remove:
                    with contextlib.suppress(DockwebError):
                        self.remove(c.id, force=True, volumes=True)
                raise
            if detach:
                return self.get(c.id)
            if on_output is None:
                # the supervisor holds its lock until it is done; with --rm the container
                # may be gone by then, but the final state is in the lock file, open here
                fcntl.flock(lock_fd, fcntl.LOCK_SH)
            else:

                def entry(line: bytes):
                    try:
                        d = json.loads(line)
                    except ValueError:
                        return None
                    return d["stream"], d["log"], d["time"]

                for stream, text, _ in read_log(log, entry, None, lambda: _lock_held(lock_fd)):
                    on_output(stream, text)
            data = os.pread(lock_fd, 65536, 0)
            if data.strip():
                return int(json.loads(data)["exit_code"])
            return self.wait(c.id)
        finally:
            log.close()
            os.close(lock_fd)

    # -- wait / stop / kill ---------------------------------------------------------------

    def wait(self, ref: str, timeout: float | None = None) -> int:
        """Block until the container is not running; return its exit code (Docker's
        ``wait`` with condition not-running: a created container returns at once).
        Works with ``auto_remove``: the supervisor leaves the final state in its lock file."""
        c = self.get(ref)
        if not c.status.is_active:
            return c.state.exit_code
        try:
            fd = os.open(os.path.join(self.cdir(c.id), "shim.lock"), os.O_RDONLY)
        except FileNotFoundError:
            return self.get(c.id).state.exit_code
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"wait {c.id}: still running") from None
                    time.sleep(0.02)
            data = os.pread(fd, 65536, 0)
        finally:
            os.close(fd)
        if data.strip():
            return int(json.loads(data)["exit_code"])
        return self._reconciled_state(c.id).exit_code

    def _cancel_restart(self, cid: str) -> None:
        """Stop a supervisor waiting to restart the container: it sees the state change and
        leaves; the container stays exited."""
        with self._state_lock(cid):
            st = self.read_state(cid)
            if st.status is Status.RESTARTING:
                st.status = Status.EXITED
            st.manual_stop = True
            self.write_state(cid, st, durable=False)
        self._wait_stopped(cid, 10)

    def _wait_stopped(self, cid: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.shim_alive(cid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _signal(self, c: Container, sig: int) -> None:
        events.container(self.root, c, "kill", signal=str(sig))
        proc = subprocess.run(self._rt("kill", c.id, str(sig)), capture_output=True, text=True)
        if proc.returncode != 0 and self.shim_alive(c.id):
            # runc refuses to signal a process it considers stopped; fall back to the pid
            with contextlib.suppress(ProcessLookupError):
                if c.state.pid:
                    os.kill(c.state.pid, sig)

    def stop_timeout(self, ref: str) -> int:
        """The seconds ``stop`` waits when not told: ``--stop-timeout``, else 10."""
        c = self.get(ref)
        return 10 if c.spec.stop_timeout is None else c.spec.stop_timeout

    def stop(self, ref: str, timeout: int | None = 10) -> None:
        """Send the container's stop signal (``--stop-signal``, else the image's StopSignal,
        else SIGTERM), then SIGKILL after ``timeout`` seconds (None or negative: wait
        forever). A stopped container is left as it is. A paused container is signalled,
        then thawed so the signal is delivered."""
        c = self.get(ref)
        if c.status is Status.RESTARTING:  # between two runs: no process, a cancel
            self._cancel_restart(c.id)
            return
        # no restart after this, even one its supervisor is starting right now (the new
        # supervisor sees the mark and runs nothing); its health checks end first, as
        # dockerd's stopHealthchecks (unhealthy while it stops)
        with self._state_lock(c.id):
            st = self.read_state(c.id)
            st.manual_stop = True
            if st.status.is_active:
                st.health = health.closed(st.health, stopping=True)
            self.write_state(c.id, st, durable=False)
        if not c.status.can_stop():
            return
        stop_signal = (
            c.spec.stop_signal
            or (self.store.get_image(c.image_id).config.get("config") or {}).get("StopSignal")
            or "SIGTERM"
        )
        sig = parse_signal(stop_signal)
        self._signal(c, sig)
        if c.status is Status.PAUSED:
            self._resume(c)
        if timeout is None or timeout < 0:
            while self.shim_alive(c.id):
                time.sleep(0.05)
        elif not self._wait_stopped(c.id, timeout):
            self._signal(c, signals.SIGKILL)
            if not self._wait_stopped(c.id, 30):
                raise ContainerConflict(f"Container {c.id} did not stop after SIGKILL")
        events.container(self.root, c, "stop")

    def restart(self, ref: str, timeout: int | None = 10) -> None:
        c = self.get(ref)
        self.stop(c.id, timeout)
        self.start(c.id)
        events.container(self.root, c, "restart")

    def kill(self, ref: str, signal: str | int = "KILL") -> None:
        """Send a signal. Docker's "Cannot kill container: x: Container <id> is not running"
        when nothing runs. With SIGKILL, returns once the container has exited."""
        sig = parse_signal(signal)  # first, as dockerd's router parses it before the lookup
        try:
            c = self.get(ref)
        except ContainerNotFound as e:
            raise ContainerNotFound(f"Cannot kill container: {ref}: {e}") from None
        if not c.status.can_kill():
            raise ContainerNotRunning(
                f"Cannot kill container: {ref}: Container {c.id} is not running"
            )
        if c.status is Status.RESTARTING:
            raise ContainerConflict(
                f"Cannot kill container: {ref}: Container {c.id} is restarting, wait until "
                "the container is running"
            )
        self.update_state(c.id, durable=False, manual_stop=True)
        self._signal(c, sig)
        if c.status is Status.PAUSED and sig == signals.SIGKILL:
            self._resume(c)
        if sig == signals.SIGKILL:
            self._wait_stopped(c.id, 30)

    # -- pause ----------------------------------------------------------------------------

    def pause(self, ref: str) -> None:
        """Freeze every process of the container (cgroup freezer)."""
        c = self.get(ref)
        if c.status is Status.PAUSED:
            raise ContainerConflict(f"Container {c.id} is already paused")
        if not c.status.can_pause():
            raise ContainerNotRunning(f"Container {c.id} is not running")
        self._set_paused(c, True)

    def _resume(self, c: Container) -> None:
        self._set_paused(c, False, check=False)

    def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if not c.status.can_unpause():
            raise ContainerConflict(f"Container {c.id} is not paused")
        self._set_paused(c, False)

    def _set_paused(self, c: Container, paused: bool, *, check: bool = True) -> None:
        """Freeze (``paused``) or thaw the container's processes through the runtime, and
        record RUNNING <-> PAUSED under the state lock. With ``check``, the runtime's
        refusal raises ContainerConflict in Docker's words."""
        if paused:
            action, verb, before, after = "pause", "pause", Status.RUNNING, Status.PAUSED
        else:
            action, verb, before, after = "resume", "unpause", Status.PAUSED, Status.RUNNING
        with self._state_lock(c.id):
            proc = subprocess.run(self._rt(action, c.id), capture_output=True, text=True)
            if check and proc.returncode != 0:
                raise ContainerConflict(f"Cannot {verb} container {c.id}: {rt_error(proc.stderr)}")
            st = self.read_state(c.id)
            if st.status is before:
                st.status = after
                if paused:  # dockerd stops the health checks of a paused container
                    st.health = health.closed(st.health)
                self.write_state(c.id, st)
        if check:
            events.container(self.root, c, verb)

    # -- remove ---------------------------------------------------------------------------

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        """Remove a stopped container (``force`` kills a running one first): its rootfs
        mount, writable layer, logs and record. Named volumes always survive; anonymous ones
        are removed with ``volumes`` (``docker rm -v``). Raises ContainerConflict with Docker's
        message for a running or paused container without ``force``."""
        c = self.get(ref)
        if not c.status.can_remove(force):
            if c.status is Status.PAUSED:
                raise ContainerConflict(
                    f"You cannot remove a paused container {c.id}. Unpause and then stop the "
                    "container before attempting removal or force remove"
                )
            if c.status is Status.REMOVING:
                raise ContainerConflict(f"removal of container {c.id} is already in progress")
            if c.status is Status.RESTARTING:
                raise ContainerConflict(
                    f"You cannot remove a restarting container {c.id}. Stop the container "
                    "before attempting removal or force remove"
                )
            raise ContainerConflict(
                f"You cannot remove a running container {c.id}. Stop the container before "
                "attempting removal or force remove"
            )
        if c.status is Status.RESTARTING:
            self._cancel_restart(c.id)
        elif c.status.is_active:
            self.kill(c.id, "KILL")
        with self.store.locked():
            with contextlib.suppress(ContainerNotFound):
                self.update_state(c.id, status=Status.REMOVING, durable=False)
            self._destroy(c.id, c.mounts, volumes=volumes)
        events.container(self.root, c, "destroy")

    def _destroy(self, cid: str, mounts: list[dict], *, volumes: bool) -> None:
        if os.path.exists(os.path.join(self.runtime_root, cid)):  # else deleted already
            subprocess.run(self._rt("delete", "--force", cid), capture_output=True)
        self._unmount_rootfs(cid)
        cdir = self.cdir(cid)
        if os.path.isdir(cdir):
            doomed = os.path.join(self.dir, f".removing-{cid}")
            os.rename(cdir, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        link = os.path.join(self.store.links_dir, "C" + cid[:25].upper())
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        if volumes:
            for m in mounts:
                if m["type"] == "volume" and m["anonymous"]:
                    with contextlib.suppress(DockwebError):
                        self.volumes.remove(m["name"])


def _fork_shim(
    shim_args: list[str],
    pass_fds: list[int],
    log_fd: int,
    pythonpath: str,
    make_manager: Callable[..., object],
    on_exit: Callable[[str], None] | None = None,
) -> int:
    """``python -m dockweb.runtime.containers *shim_args`` (the supervisor, made to work
    through ``make_manager``) as a fork of this process (its modules are loaded already):
    the child gets what the Popen would give it (own session, cwd /,
    stdin /dev/null, stdout and stderr to ``log_fd``, no other descriptor than ``pass_fds``,
    PYTHONPATH for the exit command) and never returns into the caller's code. Only from a
    single-threaded process. The child is the supervisor itself (no second fork: the
    caller, the CLI, is short-lived, and init reaps the supervisor once the CLI is gone);
    returns its pid."""

    def supervise() -> int:
        os.setsid()
        os.chdir("/")
        child_stdio(os.open(os.devnull, os.O_RDONLY), log_fd, log_fd, pass_fds)
        os.environ["PYTHONPATH"] = pythonpath
        signals.signal(signals.SIGINT, signals.SIG_DFL)
        from dockweb.runtime import shim

        return shim.main(shim_args, on_exit=on_exit, make_manager=make_manager, detach=False)

    return fork_child(supervise)


def fork_child(main: Callable[[], int]) -> int:
    """Fork; the child's pid. The child runs ``main`` (which sets its descriptors up with
    ``child_stdio``) and exits with its code, as a process would (SystemExit's code, 1 and
    the traceback on stderr for an exception), never returning into the caller's code."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        code = main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(code)


def child_stdio(stdin: int, stdout: int, stderr: int, pass_fds: list[int]) -> None:
    """In a forked child: these as its fds 0, 1 and 2, every other descriptor but
    ``pass_fds`` closed (what Popen's ``pass_fds`` and close_fds give a new process)."""
    os.dup2(stdin, 0)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    low = 3
    for fd in sorted(pass_fds):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _lock_held(fd: int) -> bool:
    """True while another open file description holds a lock on the file behind ``fd``."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
