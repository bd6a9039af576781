"""Console sessions: a shell with a tty in a running container, for a browser tab.

The web process has no root and never calls the runtime; the worker does. Opening a console
creates a ConsoleSession row and queues ``tasks.run_console`` (``dockweb.jobs``), which runs
in the worker for as long as the shell lives and pumps its pty through Redis:

- the pty's output goes to the pub/sub channel ``session.channel_out`` as JSON messages
  ``{"t": "out", "d": <base64>}``, and the end as ``{"t": "end", "status", "exit_code",
  "error"}``;
- the page's keystrokes, resizes and close request come from the list ``session.queue_in``
  as ``{"t": "in", "d": <text>}``, ``{"t": "resize", "cols", "rows"}``, ``{"t": "close"}``.

The web side serves the channel as Server-Sent Events (``event_stream``) and pushes onto the
list (``send_input``, ``send_resize``, ``close_console``). A session ends when the shell
exits, when the page asks, when nobody has listened for ``ABANDONED_AFTER`` seconds (a tab
closed without saying so) or after ``DOCKWEB_CONSOLE_IDLE_TIMEOUT`` seconds without input.
Ending a session hangs the shell's terminal up; the container keeps running.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import select
import threading
import time
from collections.abc import Iterator

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from containers import services
from containers.models import ConsoleSession, Container
from dockweb import jobs
from dockweb.runtime.errors import DockwebError

log = logging.getLogger(__name__)

SUBSCRIBER_WAIT = 15.0  # seconds the worker waits for the page to listen before the shell starts
ABANDONED_AFTER = 30.0  # seconds without any listener: the tab is gone
KEY_TTL = 3600  # the input list expires if nobody takes from it (a session that never ran)
HEARTBEAT = 15.0  # seconds between SSE comments, so proxies keep the stream open
MAX_INPUT = 64 * 1024  # bytes of one input POST (a paste)
MAX_SIZE = 1000  # columns or rows
ROLE_CHECK = 1.0  # seconds between two checks of the user's role while streaming


class ConsoleRefused(DockwebError):
    """A console cannot be opened or used; the message says why."""


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.DOCKWEB_REDIS_URL)


# -- web side -----------------------------------------------------------------------------


def available_shells(container: Container) -> list[str]:
    """The shells of ``ConsoleSession.SHELLS`` the container has; /bin/sh if none is found
    (the store is not readable here, or the image keeps its shell elsewhere)."""
    try:
        found = services.get_manager().existing_paths(
            container.container_id, list(ConsoleSession.SHELLS)
        )
    except (DockwebError, OSError):
        found = []
    return found or ["/bin/sh"]


def open_console(container: Container, shell: str, user) -> ConsoleSession:
    """Create a session and queue its worker task (after the transaction commits)."""
    if not container.can_exec:
        raise ConsoleRefused(
            _("Container %(name)s is not running: start it to open a console.")
            % {"name": container.name}
        )
    if shell not in ConsoleSession.SHELLS:
        raise ConsoleRefused(_("Unknown shell %(shell)s.") % {"shell": shell})
    with transaction.atomic():
        session = ConsoleSession.objects.create(
            container_id=container.container_id, shell=shell, user=user
        )
        jobs.enqueue(session)
    return session


def _push(session: ConsoleSession, message: dict) -> None:
    if not session.is_active:
        raise ConsoleRefused(_("This console session has ended."))
    r = redis_client()
    pipe = r.pipeline()
    pipe.rpush(session.queue_in, json.dumps(message))
    pipe.expire(session.queue_in, KEY_TTL)
    pipe.execute()


def send_input(session: ConsoleSession, text: str) -> None:
    """Queue keystrokes (or pasted text) for the shell."""
    if len(text.encode()) > MAX_INPUT:
        raise ConsoleRefused(_("Too much input at once (at most 64 KiB)."))
    if text:
        _push(session, {"t": "in", "d": text})


def send_resize(session: ConsoleSession, cols: int, rows: int) -> None:
    """Queue a window size for the shell's terminal."""
    if not (0 < cols <= MAX_SIZE and 0 < rows <= MAX_SIZE):
        raise ConsoleRefused(_("Invalid terminal size."))
    _push(session, {"t": "resize", "cols": cols, "rows": rows})


def close_console(session: ConsoleSession) -> None:
    """Ask the worker to end the session (the shell is hung up, the container stays).
    Idempotent; a session that never started is marked ended at once."""
    if not session.is_active:
        return
    ConsoleSession.objects.filter(pk=session.pk, status=ConsoleSession.Status.QUEUED).update(
        status=ConsoleSession.Status.ENDED, ended_at=timezone.now()
    )
    r = redis_client()
    r.rpush(session.queue_in, json.dumps({"t": "close"}))
    r.expire(session.queue_in, KEY_TTL)


def may_use_consoles(user_id) -> bool:
    """Whether the user ``user_id`` holds the operator role now (read afresh: a role
    changed since the session opened counts)."""
    from django.contrib.auth import get_user_model

    from access.roles import OPERATOR, has_role

    user = get_user_model().objects.filter(pk=user_id).first()
    return user is not None and has_role(user, OPERATOR)


DEMOTED = "console closed: your role no longer allows consoles (it needs the operator role)"


def close_when_demoted(user_ids, *, deleted: bool = False) -> int:
    """End the open sessions of each of ``user_ids`` no longer an operator (or being
    deleted): the receiver of ``access.signals.role_changed``. Returns how many it closed.
    Never raises (a role change must go through): a session it cannot reach ends when its
    stream next checks the role (``event_stream``)."""
    closed = 0
    for user_id in user_ids:
        if not deleted and may_use_consoles(user_id):
            continue
        active = ConsoleSession.objects.filter(
            user_id=user_id,
            status__in=[ConsoleSession.Status.QUEUED, ConsoleSession.Status.RUNNING],
        )
        for session in active:
            try:
                close_console(session)
            except (redis.RedisError, OSError):
                log.exception("console %s: cannot ask it to close", session.session_id)
                continue
            closed += 1
    return closed


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


def event_stream(session: ConsoleSession) -> Iterator[bytes]:
    """The session's output as Server-Sent Events: ``out`` (base64 of the pty's bytes),
    then ``end`` (JSON) once; comments as heartbeats. A plain generator: it streams under
    runserver, gunicorn and (one thread per stream) uvicorn."""
    r = redis_client()
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(session.channel_out)
    try:
        yield b": connected\n\n"
        # the session may have ended before we listened
        session.refresh_from_db()
        if not session.is_active:
            yield _sse("end", json.dumps(_end_payload(session)))
            return
        last = checked = time.monotonic()
        while True:
            if time.monotonic() - checked >= ROLE_CHECK:
                checked = time.monotonic()
                if not may_use_consoles(session.user_id):  # demoted since it opened
                    close_console(session)
                    yield _sse("end", json.dumps(
                        {"t": "end", "status": ConsoleSession.Status.ENDED,
                         "exit_code": None, "error": DEMOTED}
                    ))
                    return
            message = pubsub.get_message(timeout=ROLE_CHECK)
            if message is None:
                if time.monotonic() - last > HEARTBEAT:
                    last = time.monotonic()
                    yield b": ping\n\n"
                continue
            last = time.monotonic()
            payload = json.loads(message["data"])
            if payload["t"] == "out":
                yield _sse("out", payload["d"])
            elif payload["t"] == "end":
                yield _sse("end", json.dumps(payload))
                return
    finally:
        pubsub.close()
        r.close()


def _end_payload(session: ConsoleSession) -> dict:
    return {
        "t": "end",
        "status": session.status,
        "exit_code": session.exit_code,
        "error": session.error,
    }


# -- worker side ----------------------------------------------------------------------------


CONSOLE_ABANDONED = "the worker stopped during the console session; open a new console"


def _announce_end(session: ConsoleSession, outcome: dict) -> None:
    """Publish the recorded end on the output channel, for the page that listens."""
    session.refresh_from_db()
    r = redis_client()
    try:
        r.publish(session.channel_out, json.dumps(_end_payload(session)))
        r.delete(session.queue_in)
    finally:
        r.close()


@jobs.kind(
    "console",
    model=ConsoleSession,
    task="containers.tasks.run_console",
    what="console",
    abandoned=CONSOLE_ABANDONED,
    claim_stamps=("started_at",),
    end_stamps=("ended_at",),
    done=ConsoleSession.Status.ENDED,
    after=_announce_end,
)
def run_console(session: ConsoleSession) -> dict:
    """Run the session's shell and pump it until it ends (in the worker, which has root);
    ``run_console(session_pk)``.

    A duplicate delivery does nothing (the job layer claims the row). Records the outcome
    on the row (ended with the shell's exit code, or failed) and publishes it on the output
    channel."""
    r = redis_client()
    try:
        _wait_for_listener(r, session)
        handle = services.start_exec(
            session.container_id, [session.shell], tty=True, interactive=True
        )
        try:
            return {"exit_code": pump(handle, r, session.channel_out, session.queue_in)}
        except Exception as e:  # noqa: BLE001 - record it; the shell is hung up below
            log.exception("console %s", session.session_id)
            return {"status": ConsoleSession.Status.FAILED, "error": f"console: {e}"}
        finally:
            handle.close()
    finally:
        r.close()


def _wait_for_listener(r: redis.Redis, session: ConsoleSession) -> None:
    """Give the page time to subscribe, so the shell's first prompt is not lost."""
    deadline = time.monotonic() + SUBSCRIBER_WAIT
    while time.monotonic() < deadline:
        if _listeners(r, session.channel_out):
            return
        time.sleep(0.05)


def _listeners(r: redis.Redis, channel: str) -> int:
    return dict(r.pubsub_numsub(channel)).get(channel.encode(), 0)


def pump(handle, r: redis.Redis, channel_out: str, queue_in: str) -> int:
    """Copy the pty's output to ``channel_out`` and ``queue_in``'s messages to the pty until
    the shell exits or the session is closed, abandoned or idle; returns the shell's exit
    code (after hanging it up if it still runs)."""
    idle_timeout = settings.DOCKWEB_CONSOLE_IDLE_TIMEOUT
    stop = threading.Event()
    last_input = [time.monotonic()]

    def take_input() -> None:
        reader = redis.Redis(connection_pool=r.connection_pool)
        while not stop.is_set():
            item = reader.blpop([queue_in], timeout=1)
            if item is None:
                continue
            message = json.loads(item[1])
            if message["t"] == "in":
                last_input[0] = time.monotonic()
                data = message["d"].encode()
                while data:
                    try:
                        n = os.write(handle.master, data)
                    except OSError:
                        stop.set()
                        return
                    data = data[n:]
            elif message["t"] == "resize":
                handle.resize(int(message["cols"]), int(message["rows"]))
            elif message["t"] == "close":
                stop.set()

    reader = threading.Thread(target=take_input, name="console-input", daemon=True)
    reader.start()
    abandoned_since: float | None = None
    last_check = 0.0
    try:
        while not stop.is_set():
            ready, _, _ = select.select([handle.master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(handle.master, 65536)
                except OSError:  # EIO: the shell and everything on its terminal are gone
                    data = b""
                if not data:
                    break
                encoded = base64.b64encode(data).decode()
                r.publish(channel_out, json.dumps({"t": "out", "d": encoded}))
            now = time.monotonic()
            if now - last_check >= 1.0:
                last_check = now
                if _listeners(r, channel_out):
                    abandoned_since = None
                elif abandoned_since is None:
                    abandoned_since = now
                elif now - abandoned_since > ABANDONED_AFTER:
                    break
                if now - last_input[0] > idle_timeout:
                    break
                if handle.poll() is not None:
                    break
    finally:
        stop.set()
        handle.close()  # SIGHUP to the shell, as closing a terminal window
    try:
        return handle.wait(5)
    except TimeoutError:
        handle.kill()
        return handle.wait(5)
