"""The supervisor of one container (conmon's role): ``python -m dockweb.runtime.shim``.

Started by ``ContainerManager.start``. It forks at once (so the caller reaps its first
process and the supervisor is nobody's child: it survives the web process and the worker),
makes itself a child subreaper, runs ``<runtime> run --detach`` (create and start in one
process: one runtime start-up less than ``create`` then ``start``), and then:

- holds an exclusive flock on ``shim.lock`` for as long as it lives (the liveness signal);
- copies the container's stdout and stderr (pipes, or the pty's master received over the
  console socket with a tty) into ``container.log`` as Docker's json-file lines;
- reaps the container's init, records exit code and finish time in ``state.json``, and writes
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
import array
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable

from dockweb.runtime.containers import (
    ContainerManager,
    Status,
    _boot_id,
    _log_error,
    now_rfc3339nano,
)
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

    def copy(self, fd: int, stream: str) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the pty's other side is closed
                chunk = b""
            if not chunk:
                break
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


def _send(fd: int, value: dict) -> None:
    if fd < 0:
        return
    data = json.dumps(value).encode()
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _recv_fd(sock: socket.socket) -> int:
    conn, _ = sock.accept()
    with conn:
        fds = array.array("i")
        _, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_LEN(fds.itemsize))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        return fds[0]


def supervise(args: argparse.Namespace, on_exit: Callable[[str], None] | None = None) -> int:
    store = Store(args.root)
    mgr = ContainerManager(store, runtime=args.runtime, exit_command=json.loads(args.exit_command))
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
        master: list[int] = []
        t = threading.Thread(target=lambda: master.append(_recv_fd(console_sock)), daemon=True)
        t.start()
        proc = subprocess.run(
            create, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        t.join(5 if proc.returncode == 0 else 0.1)
        pipes = [("stdout", master[0])] if master else []
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        proc = subprocess.run(
            [*rt, "run", "--detach", "--bundle", bundle, "--pid-file", pid_file, cid],
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
        )
        os.close(out_w)
        os.close(err_w)
        pipes = [("stdout", out_r), ("stderr", err_r)]

    def fail(message: str) -> int:
        for _, fd in pipes:
            os.close(fd)
        subprocess.run([*rt, "delete", "--force", cid], capture_output=True)
        sync_send({"error": message})
        return 1

    if proc.returncode != 0:
        msg = _log_error(rt_log) or (proc.stderr or b"").decode(errors="replace").strip()
        # Docker's message names the create step (containerd runs create, then start)
        msg = msg.replace(f"{args.runtime} run failed:", f"{args.runtime} create failed:", 1)
        return fail(msg or f"{args.runtime} create exited with {proc.returncode}")
    with open(pid_file) as f:
        pid = int(f.read().strip())

    for stream, fd in pipes:
        th = threading.Thread(target=log.copy, args=(fd, stream), daemon=True)
        th.start()
        readers.append(th)

    if c.spec.network != "host" and args.runtime != "runc":
        # runc brings the new netns's loopback up itself; crun may not: make sure, idempotently
        subprocess.run(
            ["nsenter", "-t", str(pid), "-n", "ip", "link", "set", "lo", "up"], capture_output=True
        )
    mgr.update_state(
        cid,
        durable=False,
        status=Status.RUNNING,
        pid=pid,
        exit_code=0,
        error="",
        started_at=now_rfc3339nano(),
        finished_at="0001-01-01T00:00:00Z",
        boot_id=_boot_id(),
    )
    sync_send({"pid": pid})

    exit_code = _reap(pid)
    for th in readers:
        th.join(2)
    if console_sock is not None:
        console_sock.close()
        shutil.rmtree(console_dir, ignore_errors=True)
    subprocess.run([*rt, "delete", "--force", cid], capture_output=True)
    st = mgr.update_state(
        cid,
        durable=not c.spec.auto_remove,  # removed right after
        status=Status.EXITED,
        pid=0,
        exit_code=exit_code,
        finished_at=now_rfc3339nano(),
    )
    os.pwrite(lock_fd, json.dumps(st.to_dict()).encode(), 0)
    # Waiters read the final state from the lock file as soon as the lock is released (from
    # the descriptor they opened before, so the removal cannot take their answer away).
    # --rm removes the container first, as `docker run --rm` returns only once the
    # container is gone: whoever waited sees no container left behind.
    if c.spec.auto_remove:
        try:
            mgr.remove(cid, force=True, volumes=True)
        except Exception as e:  # noqa: BLE001 - record and carry on to the exit command
            print(f"auto-remove {cid}: {e}", file=sys.stderr)
    os.close(lock_fd)

    if on_exit is not None:
        try:
            on_exit(cid)
            return 0
        except Exception:  # noqa: BLE001 - the exit command does the same work
            traceback.print_exc()
    if mgr.exit_command:
        subprocess.run([*mgr.exit_command, cid], stdin=subprocess.DEVNULL)
    return 0


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


def main(argv: list[str] | None = None, on_exit: Callable[[str], None] | None = None) -> int:
    """``on_exit`` (from a supervisor forked by ContainerManager) replaces the exit
    command, which still runs if it raises."""
    p = argparse.ArgumentParser(prog="dockweb.runtime.shim")
    p.add_argument("--root", required=True)
    p.add_argument("--id", required=True)
    p.add_argument("--runtime", required=True)
    p.add_argument("--runtime-root", required=True)
    p.add_argument("--sync-fd", type=int, default=-1)
    p.add_argument("--exit-command", default="[]")
    args = p.parse_args(argv)

    if os.fork():
        os._exit(0)
    os.setsid()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        return supervise(args, on_exit)
    except BaseException as e:
        if args.sync_fd >= 0:
            try:
                _send(args.sync_fd, {"error": f"supervisor: {e}"})
            except OSError:
                pass
        raise


if __name__ == "__main__":
    sys.exit(main())
