"""Engine API: exec (``docker exec``, docker-py's ``exec_run``).

- ``POST /containers/{name}/exec``: an exec instance, kept in this service's memory as
  dockerd keeps them (per container; forgotten once the container stops or is removed);
- ``POST /exec/{id}/start``: runs it. Without ``Detach`` the connection is hijacked: the
  client's input goes to the command's stdin (with ``AttachStdin``; a half-close closes
  it, or ends the attach with a tty, as dockerd), its output comes back multiplexed in
  8-byte-header frames (raw with ``Tty``). A command that cannot start is reported in the
  stream, as dockerd, with exit code 126. With ``Detach`` the answer is an empty 200 and
  the output goes nowhere;
- ``GET /exec/{id}/json``: dockerd's ExecInspect; ``POST /exec/{id}/resize``: the tty's size.

The command runs through the runtime's ``exec_start`` (``containers.services.start_exec``),
as ``dockweb exec`` and the console page run theirs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from containers import services
from dockweb.dockerapi.errors import as_api_error
from dockweb.dockerapi.http import (
    ApiError,
    Hijack,
    Json,
    Raw,
    Request,
    bad_request,
    conflict,
    not_found,
)
from dockweb.dockerapi.router import Routes
from dockweb.engine import get_store
from dockweb.runtime import attach as frames
from dockweb.runtime import events
from dockweb.runtime.containers import Status
from dockweb.runtime.errors import ContainerNotFound, ContainerStartError, DockwebError
from dockweb.runtime.seccomp import go_json_kind

routes = Routes()
log = logging.getLogger(__name__)

_READ = 65536


# -- the request bodies, decoded as Go's encoding/json into dockerd's structs ---------------

# ExecConfig and ExecStartCheck of API 1.41: field -> Go type
_EXEC_CONFIG = {
    "User": "string",
    "Privileged": "bool",
    "Tty": "bool",
    "AttachStdin": "bool",
    "AttachStderr": "bool",
    "AttachStdout": "bool",
    "Detach": "bool",
    "DetachKeys": "string",
    "Env": "[]string",
    "WorkingDir": "string",
    "Cmd": "[]string",
}
_EXEC_START_CHECK = {"Detach": "bool", "Tty": "bool"}
_ZERO = {"string": "", "bool": False, "[]string": []}


def _fits(value: Any, go_type: str) -> bool:
    if go_type == "string":
        return isinstance(value, str)
    if go_type == "bool":
        return isinstance(value, bool)
    return isinstance(value, list)


def _syntax_error(err: json.JSONDecodeError) -> str:
    """encoding/json's words for the common syntax errors."""
    if err.pos >= len(err.doc):
        return "unexpected EOF"
    ch = err.doc[err.pos]
    if err.msg == "Expecting value":
        return f"invalid character '{ch}' looking for beginning of value"
    if err.msg.startswith("Expecting property name"):
        return f"invalid character '{ch}' looking for beginning of object key string"
    if err.msg == "Expecting ':' delimiter":
        return f"invalid character '{ch}' after object key"
    if err.msg == "Expecting ',' delimiter":
        return f"invalid character '{ch}' after object key:value pair"
    return f"invalid character '{ch}': {err.msg}"


def decode_body(request: Request, struct: str, fields: dict[str, str]) -> dict[str, Any]:
    """The request's JSON body as dockerd's handler decodes it into ``types.<struct>``:
    CheckForJSON's 400 for another Content-Type, "got EOF while reading request body" for
    none, Go's "cannot unmarshal" for a value of the wrong type. Field names match case
    insensitively and unknown ones are ignored, as encoding/json does; missing or null
    fields are their zero values."""
    ctype = request.headers.get("content-type", "")
    data = request.body.read()
    if (ctype or data) and ctype.split(";")[0].strip().lower() != "application/json":
        raise bad_request(f"Content-Type specified ({ctype}) must be 'application/json'")
    text = data.decode("utf-8", "replace").lstrip()
    if not text:
        raise bad_request("got EOF while reading request body")
    try:
        # json.Decoder.Decode reads one value: what follows it is left unread
        doc, _end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as err:
        raise bad_request(_syntax_error(err)) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise bad_request(
            f"json: cannot unmarshal {go_json_kind(doc)} into Go value of type types.{struct}"
        )
    by_lower = {name.lower(): name for name in fields}
    out = {name: _ZERO[go_type] for name, go_type in fields.items()}
    for key, value in doc.items():
        name = by_lower.get(key.lower())
        if name is None or value is None:
            continue
        go_type = fields[name]
        where = f"Go struct field {struct}.{name}"
        if not _fits(value, go_type):
            raise bad_request(
                f"json: cannot unmarshal {go_json_kind(value)} into {where} of type {go_type}"
            )
        if go_type == "[]string":
            for item in value:
                if item is not None and not isinstance(item, str):
                    raise bad_request(
                        f"json: cannot unmarshal {go_json_kind(item)} into {where} of type string"
                    )
            value = ["" if item is None else item for item in value]
        out[name] = value
    return out


# -- exec instances -------------------------------------------------------------------------


@dataclass
class ExecInstance:
    """One exec, as dockerd's exec.Config: what to run, then its process and outcome."""

    id: str
    container_id: str
    started_at: str  # the container's start, to forget execs of an earlier run
    cmd: list[str]
    tty: bool
    privileged: bool
    user: str  # as given, else the container's Config.User (what inspect shows)
    own_user: str  # as given (the runtime applies the container's default itself)
    workdir: str
    env: list[str]
    open_stdin: bool
    open_stdout: bool
    open_stderr: bool
    detach_keys: bytes
    running: bool = False
    exit_code: int | None = None
    ended: float | None = None  # time.monotonic() when it ended
    pid: int = 0
    handle: Any = None  # the runtime's ExecProcess while it runs
    claimed: bool = False  # a start took it (dockerd: Running, or ExitCode once set)
    ready: threading.Event = field(default_factory=threading.Event)  # started or failed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inspect(self) -> dict:
        process: dict[str, Any] = {
            "tty": self.tty,
            "entrypoint": self.cmd[0],
            "arguments": self.cmd[1:],
            "privileged": self.privileged,
        }
        if self.user:
            process["user"] = self.user
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": process,
            "OpenStdin": self.open_stdin,
            "OpenStderr": self.open_stderr,
            "OpenStdout": self.open_stdout,
            "CanRemove": self.ended is not None and time.monotonic() - self.ended >= _MARKED,
            "ContainerID": self.container_id,
            "DetachKeys": base64.b64encode(self.detach_keys).decode(),
            "Pid": self.pid,
        }

    def claim(self) -> None:
        """Take the instance for a start; dockerd's 409s when it ran or runs."""
        with self.lock:
            if self.exit_code is not None:
                raise conflict(f"Error: Exec command {self.id} has already run")
            if self.claimed:
                raise conflict(f"Error: Exec command {self.id} is already running")
            self.claimed = True

    def started(self, handle) -> None:
        with self.lock:
            self.handle = handle
            self.pid = handle.pid
            self.running = True
        self.ready.set()

    def finish(self, code: int) -> None:
        with self.lock:
            self.running = False
            self.exit_code = code
            self.ended = time.monotonic()
            self.handle = None
        self.ready.set()


# dockerd's execCommandGC runs every 5 minutes: an exec that has ended is marked CanRemove
# at the first run after its end and forgotten at the next one; here at fixed ages.
_MARKED = 300.0
_FORGOTTEN = 600.0


class Registry:
    """The service's exec instances by ID, kept per run of their container as dockerd's
    execStore keeps them. An instance lives as long as that run, and at most
    ``_FORGOTTEN`` seconds after it ended: once its container has stopped (or restarted,
    or gone) it is forgotten, as dockerd's cleanup and exec garbage collection do."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (container ID, its StartedAt) -> {exec ID: instance}
        self._by_run: dict[tuple[str, str], dict[str, ExecInstance]] = {}

    def add(self, inst: ExecInstance) -> None:
        self.prune()
        with self._lock:
            self._by_run.setdefault((inst.container_id, inst.started_at), {})[inst.id] = inst

    def _find(self, exec_id: str) -> ExecInstance | None:
        with self._lock:
            for execs in self._by_run.values():
                inst = execs.get(exec_id)
                if inst is not None and not _expired(inst):
                    return inst
        return None

    def get(self, exec_id: str) -> tuple[ExecInstance, Any]:
        """The instance and its container (the runtime's), or dockerd's 404 "No such exec
        instance" (also once its container's run is over)."""
        inst = self._find(exec_id)
        container = self._live((inst.container_id, inst.started_at)) if inst else None
        if container is None:
            raise not_found(f"No such exec instance: {exec_id}")
        return inst, container

    def _live(self, run: tuple[str, str]):
        """The container if ``run`` is still its current run; else None, and the run's
        instances forgotten."""
        try:
            c = services.get_container(run[0])
        except ContainerNotFound:
            c = None
        if c is None or not c.status.is_active or c.state.started_at != run[1]:
            with self._lock:
                self._by_run.pop(run, None)
            return None
        return c

    def prune(self) -> None:
        """Forget the instances that ended long ago, and those of every run that is over."""
        with self._lock:
            for run, execs in list(self._by_run.items()):
                for exec_id in [i for i, inst in execs.items() if _expired(inst)]:
                    del execs[exec_id]
                if not execs:
                    del self._by_run[run]
            runs = list(self._by_run)
        for run in runs:
            self._live(run)


def _expired(inst: ExecInstance) -> bool:
    return inst.ended is not None and time.monotonic() - inst.ended >= _FORGOTTEN


EXECS = Registry()


# -- create --------------------------------------------------------------------------------


@routes.post("/containers/{name:.*}/exec", audit="container.exec_create", target="name")
def exec_create(request: Request):
    config = decode_body(request, "ExecConfig", _EXEC_CONFIG)
    if not config["Cmd"]:
        raise bad_request("No exec command specified")
    name = request.params["name"]
    c = services.check_exec(name)
    keys = b""
    if config["DetachKeys"]:
        try:
            keys = frames.parse_keys(config["DetachKeys"])
        except ValueError:
            raise ApiError(500, f"Invalid escape keys ({config['DetachKeys']}) provided") from None
    user = config["User"] or services.inspect_container(c)["Config"].get("User") or ""
    inst = ExecInstance(
        id=secrets.token_hex(32),
        container_id=c.id,
        started_at=c.state.started_at,
        cmd=list(config["Cmd"]),
        tty=config["Tty"],
        privileged=config["Privileged"],
        user=user,
        own_user=config["User"],
        workdir=config["WorkingDir"],
        env=list(config["Env"]),
        open_stdin=config["AttachStdin"],
        open_stdout=config["AttachStdout"],
        open_stderr=config["AttachStderr"],
        detach_keys=keys,
    )
    EXECS.add(inst)
    text = inst.cmd[0] + " " + " ".join(inst.cmd[1:])  # dockerd's Entrypoint + " " + Args
    events.container(get_store().root, c, "exec_create: " + text, execID=inst.id)
    return Json({"Id": inst.id}, status=201)


# -- inspect, resize -----------------------------------------------------------------------


@routes.get("/exec/{id}/json")
def exec_inspect(request: Request):
    inst, _container = EXECS.get(request.params["id"])
    return Json(inst.inspect())


_ATOI = re.compile(r"[+-]?[0-9]+")


def _atoi(value: str) -> int:
    """Go's strconv.Atoi, with its error words."""
    if not _ATOI.fullmatch(value):
        raise bad_request(f'strconv.Atoi: parsing "{value}": invalid syntax')
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise bad_request(f'strconv.Atoi: parsing "{value}": value out of range')
    return number


@routes.post("/exec/{id}/resize")
def exec_resize(request: Request):
    height = _atoi(request.q("h", "") or "")
    width = _atoi(request.q("w", "") or "")
    exec_id = request.params["id"]
    inst, container = EXECS.get(exec_id)
    _check_not_paused(container)
    if not inst.ready.wait(10):
        raise ApiError(500, "timeout waiting for exec session ready")
    with inst.lock:
        handle = inst.handle
    if handle is None:  # it has ended (or never started): containerd's answer
        raise not_found("no such exec")
    handle.resize(width, height)
    return Raw(b"", content_type=None)


def _check_not_paused(container) -> None:
    if container.status is Status.PAUSED:
        raise conflict(f"Container {container.id} is paused, unpause the container before exec")


# -- start ---------------------------------------------------------------------------------


@routes.post("/exec/{id}/start", audit="container.exec_start", target="id")
def exec_start(request: Request):
    check = decode_body(request, "ExecStartCheck", _EXEC_START_CHECK)
    exec_id = request.params["id"]
    inst, container = EXECS.get(exec_id)
    _check_not_paused(container)
    if check["Detach"]:
        inst.claim()
        handle = _start(inst, output=False)
        threading.Thread(
            target=_run_detached, args=(inst, handle), daemon=True, name="dockerapi-exec"
        ).start()
        return Raw(b"", content_type=None)

    def run(sock: socket.socket, first: bytes) -> None:
        _run_attached(inst, Client(sock, framed=not check["Tty"]), first)

    return Hijack(run)


def _start(inst: ExecInstance, *, output: bool):
    """Start the instance's command (claimed); its handle. A failure ends the instance
    with exit code 126, as dockerd, and is raised as dockerd answers it (400 for a command
    that is not there or cannot be run)."""
    try:
        handle = services.start_exec(
            inst.container_id,
            inst.cmd,
            tty=inst.tty,
            interactive=inst.open_stdin,
            user=inst.own_user,
            env=inst.env,
            workdir=inst.workdir,
            privileged=inst.privileged,
            output=output,
            exec_id=inst.id,
        )
    except DockwebError as err:
        inst.finish(126)
        if isinstance(err, ContainerStartError):
            text = str(err)
            invalid = "permission denied" in text or (
                inst.cmd[0] in text
                and ("executable file not found" in text or "no such file or directory" in text)
            )
            raise ApiError(400 if invalid else 500, text) from None
        raise
    inst.started(handle)
    return handle


def _run_detached(inst: ExecInstance, handle) -> None:
    """A detached exec's life: its tty's output read and dropped until it ends."""
    try:
        if handle.tty:
            _copy_tty(handle, None, None, inst.detach_keys)
        inst.finish(handle.wait())
    finally:
        handle.close()


class Client:
    """The hijacked connection's output side: frames (``framed``) or raw bytes, dropped
    once the client has gone or been detached."""

    def __init__(self, sock: socket.socket, *, framed: bool):
        self.sock = sock
        self.framed = framed
        self.attached = True

    def send(self, kind: int, data: bytes) -> None:
        if not self.attached or not data:
            return
        try:
            self.sock.sendall(frames.frame(kind, data) if self.framed else data)
        except OSError:
            self.attached = False

    def detach(self) -> None:
        """End the client's connection (it sees the end of the stream); the command runs on."""
        self.attached = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


# What dockerd 20.10 says in the stream when the detach keys end an exec's attach: it takes
# the wrapped EscapeError for a failure, so the exec's record ends there with 126 (the
# command runs on, and its own end is not recorded).
_ESCAPED = b"exec attach failed: error on attach stdin: read escape sequence\r\n"


def _run_attached(inst: ExecInstance, client: Client, first: bytes) -> None:
    try:
        inst.claim()
        handle = _start(inst, output=inst.open_stdout or inst.open_stderr)
    except Exception as err:  # noqa: BLE001 - dockerd writes it in the stream, after the hijack
        client.send(frames.STDOUT, (as_api_error(err).message + "\r\n").encode())
        client.detach()
        return
    escaped = False

    def on_escape() -> None:
        nonlocal escaped
        escaped = True
        client.send(frames.STDOUT, _ESCAPED)
        inst.finish(126)
        client.detach()

    try:
        if handle.tty:
            _copy_tty(
                handle,
                client if inst.open_stdin else None,
                client if inst.open_stdout else None,
                inst.detach_keys,
                first,
                on_escape,
            )
        else:
            _copy_pipes(inst, handle, client, first)
    except Exception:  # noqa: BLE001 - the command runs on: its end is still recorded
        log.exception("exec %s: copying its streams failed", inst.id)
        client.detach()
    try:
        code = handle.wait()
        if not escaped:
            inst.finish(code)
    finally:
        handle.close()
        client.detach()


def _copy_pipes(inst: ExecInstance, handle, client: Client, first: bytes) -> None:
    """Without a tty: the client's input to the command's stdin (closed when the client
    half-closes or goes), its stdout and stderr to the client as they come, until both end."""
    if handle.stdin is not None:
        threading.Thread(
            target=_feed_stdin, args=(client.sock, handle.stdin, first), daemon=True
        ).start()
    kinds = {}
    if handle.stdout is not None:
        kinds[handle.stdout.fileno()] = frames.STDOUT if inst.open_stdout else None
        kinds[handle.stderr.fileno()] = frames.STDERR if inst.open_stderr else None
    while kinds:
        ready, _, _ = select.select(list(kinds), [], [])
        for fd in ready:
            data = os.read(fd, _READ)
            if not data:
                del kinds[fd]
            elif kinds[fd] is not None:
                client.send(kinds[fd], data)


def _feed_stdin(sock: socket.socket, stdin, first: bytes) -> None:
    try:
        data = first
        while True:
            if data:
                stdin.write(data)
                stdin.flush()
            data = sock.recv(_READ)
            if not data:
                break
    except (OSError, ValueError):  # the command or the client has gone
        pass
    finally:
        with contextlib.suppress(OSError, ValueError):
            stdin.close()


def _copy_tty(
    handle,
    client: Client | None,
    out: Client | None,
    keys: bytes,
    first: bytes = b"",
    on_escape=None,
) -> None:
    """With a tty: the pty's output to ``out`` (None: dropped) until the command ends; the
    input of ``client`` (None: none read) to the pty. The end of that input ends the
    client's attach (dockerd closes the output when a tty's input closes); the detach
    keys (default ctrl-p ctrl-q) never reach the pty and call ``on_escape``. The command
    runs on after either."""
    escape = frames.EscapeKeys(keys or frames.DETACH_KEYS)
    master = handle.master
    reading = client is not None

    def typed(data: bytes) -> bool:
        """Give the pty what the client typed; False once it stopped reading."""
        if not data:
            client.detach()
            return False
        data, detached = escape.feed(data)
        if data:
            frames.write_all(master, data)
        if detached:
            on_escape()
        return not detached

    if reading and first:
        reading = typed(first)
    while True:
        watched = [master, client.sock] if reading and client.attached else [master]
        ready, _, _ = select.select(watched, [], [], 0.5)
        if master in ready:
            try:
                data = os.read(master, _READ)
            except OSError:  # EIO: every slave fd is closed, the command is gone
                data = b""
            if not data:
                return
            if out is not None:
                out.send(frames.STDOUT, data)
        if reading and client.sock in ready:
            try:
                data = client.sock.recv(_READ)
            except OSError:
                data = b""
            reading = typed(data)
        if not ready and handle.poll() is not None:
            return
