"""The supervisor of one container (conmon's role): ``python -m dockweb.runtime.containers``
(which hands ``main`` the ``ContainerManager`` class: this module never imports the manager,
only the lower ``containers.state``, ``containers.health`` and ``containers.ocirt``).

Started by ``ContainerManager.start``. It forks at once (so the caller reaps its first
process and the supervisor is nobody's child: it survives the web process and the worker),
makes itself a child subreaper, runs ``<runtime> run`` (create and start in one process:
one runtime start-up less than ``create`` then ``start``; in the foreground, so that the
runtime waits for the process and deletes the container as it ends, and no ``delete``
follows; ``--detach`` with a tty, whose master comes over the console socket), and then:

- holds an exclusive flock on ``shim.lock`` for as long as it lives (the liveness signal);
- copies the container's stdout and stderr (pipes, or the pty's master received over the
  console socket with a tty) into ``container.log`` as Docker's json-file lines;
- with ``-i`` or ``-t``, serves the attach socket (``ContainerManager.attach_path``): the
  container's stdin (a pipe it holds, or the pty's master) is fed from attached clients, its
  output is copied to them as it comes, a resize message sets the pty's size (see
  ``dockweb.runtime.attach`` for the frames); it outlives any client. With ``--attach-fd``
  (an attached start) that socket is a client from before the process runs;
- with a health check (its own or its image's), runs it in a thread as dockerd's monitor
  (``dockweb.runtime.containers.health``): the state of running says ``starting``, each
  result is written into ``state.json`` and mirrored through the exit command, and the
  process's end leaves the health ``unhealthy``;
- waits for the process's end (the foreground runtime's exit; with a tty, reaps the init),
  records exit code and finish time in ``state.json``, and writes
  the same final state into ``shim.lock`` (read by waiters even after ``--rm`` removed the
  directory);
- removes the container when it is ``auto_remove`` (before releasing the lock, so that a
  waiter returns once it is gone, as ``docker run --rm``), then runs the exit command with
  the container's ID appended (or, in a supervisor forked from the caller, ``on_exit``).

It reports to the starter over ``--sync-fd`` a single JSON object: ``{"pid": N}`` once the
process runs, or ``{"error": "<runtime's message>"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from typing import Any

from dockweb.runtime import attach as frames
from dockweb.runtime import events
from dockweb.runtime.containers import health
from dockweb.runtime.containers.ocirt import log_error, recv_console_fd
from dockweb.runtime.containers.state import Status, boot_id, now_rfc3339nano, state_lock
from dockweb.runtime.crashpoint import crashpoint
from dockweb.runtime.store import Store

PR_SET_CHILD_SUBREAPER = 36
MAX_LINE = 16 * 1024  # Docker's json-file splits longer lines into 16K partial messages


class LogWriter:
    """Appends json-file lines; one lock so lines of both streams never interleave."""

    def __init__(self, path: str):
        self.f = open(path, "ab", buffering=0)
        self.lock = threading.Lock()

    def write(self, stream: str, text: bytes) -> None:
        line = (
            json.dumps(
                {
                    "log": text.decode("utf-8", "replace"),
                    "stream": stream,
                    "time": now_rfc3339nano(),
                }
            ).encode()
            + b"\n"
        )
        with self.lock:
            self.f.write(line)

    def copy(self, fd: int, stream: str, tee: Callable[[str, bytes], None] | None = None) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the pty's other side is closed
                chunk = b""
            if not chunk:
                break
            if tee is not None:
                tee(stream, chunk)  # raw, as it comes: a prompt has no newline
            buf += chunk
            while True:
                nl = buf.find(b"\n")
                if nl < 0 or nl >= MAX_LINE:
                    if len(buf) >= MAX_LINE:
                        self.write(stream, buf[:MAX_LINE])
                        buf = buf[MAX_LINE:]
                        continue
                    break
                self.write(stream, buf[: nl + 1])
                buf = buf[nl + 1 :]
        if buf:
            self.write(stream, buf)
        os.close(fd)


class AttachHub:
    """The attach socket's server: clients get the output as it comes and feed ``stdin``
    (a pipe's write end, or the pty's master with ``tty``). A client that goes away is
    dropped (SIGPIPE is ignored: writing to it fails with EPIPE); the container runs on."""

    def __init__(self, path: str, *, tty: bool):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
        self.path = path
        self.tty = tty
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        os.chmod(path, 0o600)
        self.server.listen(8)
        self.lock = threading.Lock()
        self.clients: list[socket.socket] = []
        self.stdin = -1

    def serve(self, first: socket.socket | None = None) -> None:
        """Serve ``first`` (the client of an attached start, connected before the process
        ran) and whoever connects. Called before the output is read: ``first`` gets all."""
        if first is not None:
            self._add(first)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self._add(conn)

    def _add(self, conn: socket.socket) -> None:
        with self.lock:
            self.clients.append(conn)
        threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def tee(self, stream: str, chunk: bytes) -> None:
        data = frames.frame(frames.STDERR if stream == "stderr" else frames.STDOUT, chunk)
        with self.lock:
            for conn in list(self.clients):
                try:
                    conn.sendall(data)
                except OSError:
                    self.clients.remove(conn)

    def _read(self, conn: socket.socket) -> None:
        for kind, payload in frames.read_frames(conn):
            if kind == frames.STDIN and self.stdin >= 0:
                with contextlib.suppress(OSError):
                    frames.write_all(self.stdin, payload)
            elif kind == frames.CLOSE_STDIN:
                if self.tty:
                    with contextlib.suppress(OSError):
                        frames.write_all(self.stdin, b"\x04")  # EOF, as a terminal's ^D
                else:
                    with self.lock:
                        fd, self.stdin = self.stdin, -1
                    if fd >= 0:
                        os.close(fd)
            elif kind == frames.RESIZE and self.tty and self.stdin >= 0:
                cols, rows = frames.parse_resize(payload)
                size = struct.pack("HHHH", rows, cols, 0, 0)
                with contextlib.suppress(OSError):
                    fcntl.ioctl(self.stdin, termios.TIOCSWINSZ, size)
        with self.lock:
            if conn in self.clients:
                self.clients.remove(conn)
        conn.close()

    def close(self) -> None:
        """Hang up every client (they then read the exit code) and remove the socket."""
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with self.lock:
            for conn in self.clients:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self.clients = []
            if self.stdin >= 0:
                os.close(self.stdin)
            self.stdin = -1


def _send(fd: int, value: dict) -> None:
    """Answer the starter. It may be gone (killed, interrupted): the container then runs
    on without it, so a broken pipe is no error (SIGPIPE is ignored)."""
    if fd < 0:
        return
    data = json.dumps(value).encode()
    try:
        os.write(fd, data)
    except BrokenPipeError:
        pass
    finally:
        os.close(fd)


def supervise(
    args: argparse.Namespace,
    make_manager: Callable[..., Any],
    on_exit: Callable[[str], None] | None = None,
) -> int:
    """Supervise the container ``args.id`` through ``make_manager(store, runtime=...,
    exit_command=...)`` (``ContainerManager``)."""
    store = Store(args.root)
    mgr = make_manager(store, runtime=args.runtime, exit_command=json.loads(args.exit_command))
    mgr.runtime_root = args.runtime_root
    cid = args.id
    cdir = mgr.cdir(cid)
    c = mgr.get(cid)

    def sync_send(value: dict) -> None:
        fd, args.sync_fd = args.sync_fd, -1
        _send(fd, value)

    lock_fd = os.open(os.path.join(cdir, "shim.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    os.ftruncate(lock_fd, 0)
    with open(os.path.join(cdir, "shim.pid"), "w") as f:
        f.write(str(os.getpid()))
    # a crash here kills the starter too (it waits for our answer): the whole start dies
    crashpoint("shim.locked", also=args.starter)
    if mgr.read_state(cid).manual_stop:
        # only a restart by policy starts with this mark (a start by someone clears it): a
        # stop came while it was on its way
        sync_send({"error": "stopped before its restart", "cancelled": True})
        os.close(lock_fd)
        return 0

    bundle = os.path.join(cdir, "bundle")
    pid_file = os.path.join(cdir, "init.pid")
    rt_log = os.path.join(cdir, "runtime.log")
    for p in (pid_file, rt_log):
        if os.path.exists(p):
            os.unlink(p)
    rt = [args.runtime, "--root", args.runtime_root, "--log", rt_log, "--log-format", "json"]
    log = LogWriter(os.path.join(cdir, "container.log"))
    readers: list[threading.Thread] = []
    console_dir = ""
    console_sock = None
    hub = None
    stdin: int | None = subprocess.DEVNULL
    # the client of an attached start: connected before the process runs, it misses nothing
    first = socket.socket(fileno=args.attach_fd) if args.attach_fd >= 0 else None
    proxy = None
    published: list[dict] = []
    if c.spec.ports and c.spec.network != "host":
        from dockweb.runtime.ports import Binding, PortError, PortProxy

        proxy = PortProxy([Binding(**p) for p in c.spec.ports], name=c.name, cid=cid)
        try:  # before anything runs: a port in use fails the start cleanly
            published = [vars(b) for b in proxy.bind()]
        except PortError as e:
            if first is not None:
                first.close()
            sync_send({"error": str(e), "ports": True})
            return 1
    # the container's network namespace and its endpoints, before anything runs in it
    dns = None
    try:
        endpoints = mgr.attach_networks(c)
        if endpoints:
            mgr._add_host_entry(c)
            dns = _embedded_dns(mgr, c)
    except Exception as e:  # noqa: BLE001 - the start fails with the reason
        if proxy is not None:
            proxy.close()
        if first is not None:
            first.close()
        if dns is not None:
            dns.close()
        with contextlib.suppress(Exception):
            mgr.detach_networks(cid)
        sync_send({"error": f"failed to set up container networking: {e}"})
        return 1
    if c.spec.tty or c.spec.interactive:
        hub = AttachHub(mgr.attach_path(cid), tty=c.spec.tty)
    elif first is not None:
        first.close()  # nothing to attach to: the client hears the end at once
        first = None
    in_r = in_w = -1
    if c.spec.interactive and not c.spec.tty:
        in_r, in_w = os.pipe()
        stdin = in_r

    if c.spec.tty:
        console_dir = tempfile.mkdtemp(prefix="dwc-", dir="/tmp")
        sock_path = os.path.join(console_dir, "c.sock")
        console_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        console_sock.bind(sock_path)
        console_sock.listen(1)
        create = [
            *rt,
            "run",
            "--detach",
            "--bundle",
            bundle,
            "--pid-file",
            pid_file,
            "--console-socket",
            sock_path,
            cid,
        ]
        master: list[int | None] = []
        t = threading.Thread(
            target=lambda: master.append(recv_console_fd(console_sock)), daemon=True
        )
        t.start()
        proc = subprocess.run(
            create, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        t.join(5 if proc.returncode == 0 else 0.1)
        pipes = [("stdout", master[0])] if master and master[0] is not None else []
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        # In the foreground: the runtime waits for the process and deletes the container
        # when it ends (no `delete` to run after), and exits with the process's status.
        proc = subprocess.Popen(
            [*rt, "run", "--bundle", bundle, "--pid-file", pid_file, cid],
            stdin=stdin,
            stdout=out_w,
            stderr=err_w,
        )
        os.close(out_w)
        os.close(err_w)
        if in_r >= 0:
            os.close(in_r)
        pipes = [("stdout", out_r), ("stderr", err_r)]
        _wait_started(proc, pid_file)

    def fail(message: str) -> int:
        if proxy is not None:
            proxy.close()
        if dns is not None:
            dns.close()
        for _, fd in pipes:
            os.close(fd)
        if hub is not None:
            hub.close()  # nothing ran: the starter hears the error instead
        if first is not None:
            first.close()
        if in_w >= 0:
            os.close(in_w)
        subprocess.run([*rt, "delete", "--force", cid], capture_output=True)
        with contextlib.suppress(Exception):
            mgr.detach_networks(cid)
        sync_send({"error": message})
        return 1

    if not os.path.exists(pid_file):  # the runtime failed before the process ran
        msg = log_error(rt_log) or (proc.stderr or b"").decode(errors="replace").strip()
        # Docker's message names the create step (containerd runs create, then start)
        msg = msg.replace(f"{args.runtime} run failed:", f"{args.runtime} create failed:", 1)
        return fail(msg or f"{args.runtime} create exited with {proc.returncode}")
    with open(pid_file) as f:
        pid = int(f.read().strip())
    crashpoint("shim.created", also=args.starter)

    if hub is not None:
        # the client's input goes to the pty (kept by the supervisor) or to the stdin pipe
        hub.stdin = os.dup(pipes[0][1]) if c.spec.tty and pipes else in_w
        hub.serve(first)
    for stream, fd in pipes:
        tee = hub.tee if hub is not None else None
        th = threading.Thread(target=log.copy, args=(fd, stream, tee), daemon=True)
        th.start()
        readers.append(th)

    own_netns = c.spec.network != "host" and not c.spec.network.startswith("container:")
    if own_netns and args.runtime != "runc":
        # runc brings the new netns's loopback up itself; crun may not: make sure, idempotently
        # (only in a namespace of this container's own: a joined one is another's, which may
        # be the host's)
        subprocess.run(
            ["nsenter", "-t", str(pid), "-n", "ip", "link", "set", "lo", "up"], capture_output=True
        )
    if dns is not None:
        dns.serve()
    if proxy is not None:
        proxy.serve(pid, endpoints[0][1].ip if endpoints else "127.0.0.1")
    hc, check_cmd = _healthcheck(mgr, c)
    started_at = now_rfc3339nano()  # FinishedAt keeps the last exit's, as dockerd's
    with state_lock(cdir):  # one write: a state of running has its health (starting)
        st = mgr.read_state(cid)
        st.status, st.ports, st.pid, st.exit_code, st.error = (
            Status.RUNNING, published, pid, 0, ""
        )  # fmt: skip
        st.started_at, st.boot_id = started_at, boot_id()
        st.health = health.started(st.health) if check_cmd else None
        mgr.write_state(cid, st, durable=False)
    crashpoint("shim.running", also=args.starter)
    # here, not in the starter: the process's die (below) always comes after its start
    _start_events(mgr, c)
    sync_send({"pid": pid})
    monitor = None
    if check_cmd:
        monitor = health.Monitor(
            mgr, c, hc, check_cmd, started_at, notify=lambda: _mirror(mgr, cid, on_exit)
        )
        monitor.start()

    if isinstance(proc, subprocess.Popen):  # the runtime's status is the process's
        code = proc.wait()
        exit_code = 128 - code if code < 0 else code  # the runtime itself killed
    else:
        exit_code = _reap(pid)
    if monitor is not None:
        monitor.stop(5)
    for th in readers:
        th.join(2)
    if hub is not None:
        hub.close()
    if console_sock is not None:
        console_sock.close()
        shutil.rmtree(console_dir, ignore_errors=True)
    if os.path.exists(os.path.join(args.runtime_root, cid)):  # else deleted by `run` already
        subprocess.run([*rt, "delete", "--force", cid], capture_output=True)
    if proxy is not None:
        proxy.close()
    if dns is not None:
        dns.close()
    if endpoints:
        try:
            mgr.detach_networks(cid)
        except Exception as e:  # noqa: BLE001 - reconcile finishes it
            print(f"detach networks {cid}: {e}", file=sys.stderr)
    with state_lock(cdir):
        st = mgr.read_state(cid)
        st.status, st.ports, st.pid, st.exit_code = Status.EXITED, [], 0, exit_code
        st.finished_at = now_rfc3339nano()
        st.health = health.closed(st.health)  # nobody checks it any more: unhealthy
        mgr.write_state(cid, st, durable=not c.spec.auto_remove)  # --rm: removed right after
    os.pwrite(lock_fd, json.dumps(st.to_dict()).encode(), 0)
    _exit_events(mgr, c, exit_code)
    # Waiters read the final state from the lock file as soon as the lock is released (from
    # the descriptor they opened before, so the removal cannot take their answer away).
    # --rm removes the container first, as `docker run --rm` returns only once the
    # container is gone: whoever waited sees no container left behind.
    if c.spec.auto_remove:
        try:
            mgr.remove(cid, force=True, volumes=True)
        except Exception as e:  # noqa: BLE001 - record and carry on to the exit command
            print(f"auto-remove {cid}: {e}", file=sys.stderr)
    try:  # the policy as it is now: `update --restart` may have changed it since the start
        policy = mgr.get(cid).spec.restart
    except Exception:  # noqa: BLE001 - removed meanwhile: nothing to restart
        policy = {}
    restart = not c.spec.auto_remove and _restarts(policy, st)
    if restart and _restart_wait(mgr, cid, st, on_exit):
        # the wait is over and nobody stopped it: a new supervisor runs it again, once this
        # one's lock is released (waiters read this run's end from the lock file first)
        os.close(lock_fd)
        try:
            mgr.start(cid, _restart=True)
        except Exception as e:  # noqa: BLE001 - recorded in its state by start
            print(f"restart {cid}: {e}", file=sys.stderr)
    else:
        os.close(lock_fd)

    if on_exit is not None:
        try:
            on_exit(cid)
            return 0
        except Exception:  # noqa: BLE001 - the exit command does the same work
            import traceback  # here only: 2 ms to import, on the way of every start

            traceback.print_exc()
    if mgr.exit_command:
        subprocess.run([*mgr.exit_command, cid], stdin=subprocess.DEVNULL)
    return 0


def _embedded_dns(mgr, c):
    """The container's DNS server at 127.0.0.11, its sockets made in its namespace."""
    from dockweb.runtime.dns import EmbeddedDNS, host_nameservers

    resolve, reverse = mgr.dns_names(c.id)
    dns = EmbeddedDNS(resolve, reverse, list(c.spec.dns) or host_nameservers())
    dns.bind(mgr.netns.path(c.id))
    return dns


def _healthcheck(mgr, c) -> tuple[dict, list[str] | None]:
    """The container's HealthConfig (its own over its image's) and the command its check
    runs (None: no check)."""
    try:
        cfg = mgr.store.get_image(c.image_id).config.get("config") or {}
    except Exception:  # noqa: BLE001 - the image removed with --force: the container's own
        cfg = {}
    hc = health.merge(c.spec.healthcheck, cfg.get("Healthcheck")) or {}
    return hc, health.probe(hc, cfg.get("Shell"))


def _mirror(mgr, cid: str, on_exit) -> None:
    """Run the exit command (or ``on_exit``): it mirrors the container's state (its health
    here) where the dashboard reads it."""
    if on_exit is not None:
        with contextlib.suppress(Exception):
            on_exit(cid)
    elif mgr.exit_command:
        subprocess.run([*mgr.exit_command, cid], stdin=subprocess.DEVNULL)


def _start_events(mgr, c) -> None:
    """dockerd's events of a start: the network connected, each volume mounted, then the
    container's start."""
    mgr.network_events(c, "connect")
    for m in c.mounts:
        if m.get("type") == "volume":
            events.volume(
                mgr.root,
                "mount",
                m.get("name", ""),
                container=c.id,
                destination=m.get("destination", ""),
                propagation="",
                **{"read/write": "true" if m.get("rw", True) else "false"},
            )
    events.container(mgr.root, c, "start")


def _exit_events(mgr, c, exit_code: int) -> None:
    """dockerd's events of a process's end, whoever ended it: die, the network
    disconnected, then each volume unmounted."""
    try:
        c = mgr.get(c.id)  # renamed meanwhile: the name it has now
    except Exception:  # noqa: BLE001 - the record as it was at the start does
        pass
    events.container(mgr.root, c, "die", exitCode=str(exit_code))
    mgr.network_events(c, "disconnect")
    for m in c.mounts:
        if m.get("type") == "volume":
            events.volume(mgr.root, "unmount", m.get("name", ""), container=c.id)


def _restarts(policy: dict, st) -> bool:
    """dockerd's restart manager: ``always``/``unless-stopped`` unless stopped or killed by
    someone, ``on-failure[:N]`` for a non-zero exit (N times at most)."""
    name = (policy or {}).get("Name") or "no"
    if name in ("always", "unless-stopped"):
        return not st.manual_stop
    if name == "on-failure":
        most = int(policy.get("MaximumRetryCount") or 0)
        return st.exit_code != 0 and not st.manual_stop and (most == 0 or st.restart_count < most)
    return False


def _restart_wait(mgr, cid: str, st, on_exit) -> bool:
    """Restarting: the backoff (0.1 s doubling to 60 s, back to 0.1 s after a run of 10 s
    or more), during which a stop or a removal cancels. True when the restart is on: the
    state is then exited with the count raised, for ``start``."""
    from dockweb.runtime.store import parse_time

    ran = (parse_time(st.finished_at) - parse_time(st.started_at)).total_seconds()
    delay = 0.1 if ran >= 10 or not st.restart_delay else min(st.restart_delay * 2, 60.0)
    mgr.update_state(cid, durable=False, status=Status.RESTARTING, restart_delay=delay)
    # the dashboard shows "Restarting" meanwhile
    if on_exit is not None:
        with contextlib.suppress(Exception):
            on_exit(cid)
    elif mgr.exit_command:
        subprocess.run([*mgr.exit_command, cid], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + delay
    while True:
        try:
            with state_lock(mgr.cdir(cid)):
                cur = mgr.read_state(cid)
                if cur.status is not Status.RESTARTING or cur.manual_stop:
                    return False  # stopped (or removed) meanwhile
                if time.monotonic() >= deadline:
                    cur.status = Status.EXITED
                    cur.restart_count += 1
                    mgr.write_state(cid, cur, durable=False)
                    return True
        except (OSError, ValueError):
            return False  # the container is gone
        time.sleep(min(0.05, max(deadline - time.monotonic(), 0.001)))


def _wait_started(proc: subprocess.Popen, pid_file: str) -> None:
    """Until the runtime has written the process's pid file (the process runs) or has
    exited. Looked for every millisecond: the runtime says nothing else when it has
    started the process, and this lasts only as long as its start (20 to 50 ms)."""
    while not os.path.exists(pid_file) and proc.poll() is None:
        time.sleep(0.001)


def _reap(pid: int) -> int:
    """Wait for ``pid`` (our child, as subreaper), reaping other orphans on the way.
    Returns the exit code as Docker reports it (128 + signal for a killed process)."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def main(
    argv: list[str] | None = None,
    on_exit: Callable[[str], None] | None = None,
    *,
    make_manager: Callable[..., Any],
    detach: bool = True,
) -> int:
    """``make_manager``: the ``ContainerManager`` class (passed in: see the module's
    docstring). ``on_exit`` (from a supervisor forked by ContainerManager) replaces the exit
    command, which still runs if it raises. ``detach=False``: the caller forked this
    process into its own session already; it is the supervisor, without forking again."""
    p = argparse.ArgumentParser(prog="dockweb.runtime.shim")
    p.add_argument("--root", required=True)
    p.add_argument("--id", required=True)
    p.add_argument("--runtime", required=True)
    p.add_argument("--runtime-root", required=True)
    p.add_argument("--sync-fd", type=int, default=-1)
    p.add_argument("--exit-command", default="[]")
    p.add_argument(
        "--attach-fd", type=int, default=-1, help="a connected socket: the first attach client"
    )
    args = p.parse_args(argv)
    args.starter = os.getppid() if args.sync_fd >= 0 else 0  # waits for our answer

    if detach:
        if os.fork():
            os._exit(0)
        os.setsid()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # A client that went away must not take the container with it: writing to it (or to a
    # stdin the container closed) fails with EPIPE, handled, instead of killing us. The
    # runtime and the exit command get SIGPIPE's default back (subprocess restores it).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        return supervise(args, make_manager, on_exit)
    except BaseException as e:
        if args.sync_fd >= 0:
            try:
                _send(args.sync_fd, {"error": f"supervisor: {e}"})
            except OSError:
                pass
        raise
