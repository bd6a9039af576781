"""The engine's event journal: what changed in a store, as dockerd's ``events`` tells it.

Every door changes the store through the runtime (the CLI, the Engine API, the Celery
worker for the pages, a container's supervisor when its process ends), so the runtime
writes the event where the change happens: ``emit`` appends one JSON line to
``<root>/events.jsonl`` in the shape of dockerd 20.10's ``events.Message`` (``Type``,
``Action``, ``Actor{ID, Attributes}``, ``scope``, ``time``, ``timeNano``, and the legacy
``status``/``id``/``from`` of container and image events). ``read`` replays the journal from
a time and can follow it (the Engine API's ``GET /events``).

Writing an event never fails the operation that made it: any error is logged and dropped.
Each line is one ``write`` on an ``O_APPEND`` descriptor, so writers in several processes do
not interleave. The journal is bounded: past ``MAX_BYTES`` the file is renamed to
``events.jsonl.1`` (the one before it dropped) under ``events.lock``, and a new one begun.
A follower (``read(follow=True)``) finishes the renamed file before it takes the new one; it
would miss events only if the journal were rotated twice between two of its looks (16 MiB
of events in ``POLL`` seconds).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

JOURNAL = "events.jsonl"
MAX_BYTES = 8 << 20  # one journal file; with the rotated one, at most twice that on disk
POLL = 0.1  # seconds between two looks at the journal when following

# event types whose messages carry the legacy status/id/from fields (dockerd's Log)
_LEGACY = ("container", "image")


def journal_path(root: str) -> str:
    return os.path.join(root, JOURNAL)


def message(
    type: str,
    action: str,
    actor_id: str,
    attributes: dict[str, str] | None = None,
    *,
    legacy_from: str | None = None,
    time_ns: int | None = None,
) -> dict:
    """dockerd's ``events.Message`` (its JSON, keys in its order)."""
    now = time.time_ns() if time_ns is None else time_ns
    msg: dict[str, Any] = {}
    if type in _LEGACY:
        msg["status"] = action
        if actor_id:  # omitempty
            msg["id"] = actor_id
        if legacy_from:
            msg["from"] = legacy_from
    msg["Type"] = type
    msg["Action"] = action
    msg["Actor"] = {"ID": actor_id, "Attributes": dict(sorted((attributes or {}).items()))}
    msg["scope"] = "local"
    msg["time"] = now // 1_000_000_000
    msg["timeNano"] = now
    return msg


def emit(
    root: str,
    type: str,
    action: str,
    actor_id: str,
    attributes: dict[str, str] | None = None,
    *,
    legacy_from: str | None = None,
) -> None:
    """Append one event to the store's journal; never raises."""
    try:
        msg = message(type, action, actor_id, attributes, legacy_from=legacy_from)
        _append(root, (json.dumps(msg, ensure_ascii=False, separators=(",", ":")) + "\n").encode())
    except Exception:  # noqa: BLE001 - an event is never worth failing the operation for
        log.warning("event %s %s %s not recorded", type, action, actor_id, exc_info=True)


def container(root: str, c: Any, action: str, **extra: str) -> None:
    """A container event: Attributes are its labels, ``image`` (as it was asked for) and
    ``name``, plus ``extra`` (exitCode, signal, execID…), as dockerd's
    LogContainerEventWithAttributes. ``c`` is a runtime Container."""
    try:
        attrs = dict(getattr(c.spec, "labels", None) or {})
        attrs.update(image=c.image, name=c.name.lstrip("/"))
        attrs.update({k: str(v) for k, v in extra.items()})
    except Exception:  # noqa: BLE001
        log.warning("event %s of a container not recorded", action, exc_info=True)
        return
    emit(root, "container", action, c.id, attrs, legacy_from=c.image)


def image(
    root: str, action: str, actor_id: str, name: str, labels: dict[str, str] | None = None
) -> None:
    """An image event: Attributes are the image's labels and ``name``, as dockerd's
    LogImageEventWithAttributes."""
    attrs = dict(labels or {})
    attrs["name"] = name
    emit(root, "image", action, actor_id, attrs)


def image_labels(store: Any, image_id: str) -> dict[str, str]:
    """The image's labels (none when it is gone), for its events' Attributes."""
    try:
        return (store.get_image(image_id).config.get("config") or {}).get("Labels") or {}
    except Exception:  # noqa: BLE001
        return {}


def network(
    root: str, action: str, net_id: str, name: str, driver: str, container: str = ""
) -> None:
    """A network event, as dockerd's LogNetworkEventWithAttributes: ``create``/``destroy``
    of a network, ``connect``/``disconnect`` of a container (``container``) to it."""
    attrs = {"container": container} if container else {}
    attrs.update(name=name, type=driver)
    emit(root, "network", action, net_id, attrs)


def volume(root: str, action: str, name: str, **extra: str) -> None:
    emit(root, "volume", action, name, {"driver": "local", **extra})


def _append(root: str, line: bytes) -> None:
    path = journal_path(root)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_size + len(line) > MAX_BYTES:
            os.close(fd)
            fd = -1
            _rotate(root, len(line))
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.write(fd, line)
    finally:
        if fd >= 0:
            os.close(fd)


def _rotate(root: str, incoming: int) -> None:
    path = journal_path(root)
    lock = os.open(os.path.join(root, "events.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            # else another writer rotated it already
            if os.stat(path).st_size + incoming > MAX_BYTES:
                os.replace(path, path + ".1")
    finally:
        os.close(lock)


# -- reading -----------------------------------------------------------------------------


def _lines(f, buf: bytes) -> tuple[list[bytes], bytes]:
    data = f.read()
    if not data:
        return [], buf
    data = buf + data
    *whole, rest = data.split(b"\n")
    return whole, rest


def read(
    root: str,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    follow: bool = False,
    include: Callable[[dict], bool] | None = None,
    stopped: Callable[[], bool] | None = None,
    poll: float = POLL,
) -> Iterator[dict]:
    """The journal's events with ``since_ns <= timeNano`` (none of the past without
    ``since_ns``) and ``timeNano <= until_ns``, in the order they were written; with
    ``follow``, then the new ones as they come, until ``until_ns`` passes or ``stopped()``.
    ``include(message)`` filters."""
    path = journal_path(root)

    def wanted(raw: bytes) -> dict | None:
        """The line's event if it is in [since_ns, until_ns] and included (a line followed
        without ``since_ns``: from now on, so any time)."""
        if not raw.strip():
            return None
        try:
            msg = json.loads(raw)
        except ValueError:
            return None
        t = msg.get("timeNano", 0)
        if since_ns is not None and t < since_ns:
            return None
        if until_ns is not None and t > until_ns:
            return None
        if include is not None and not include(msg):
            return None
        return msg

    current = None
    with contextlib.ExitStack() as stack:
        if since_ns is not None:
            with contextlib.suppress(FileNotFoundError), open(path + ".1", "rb") as old:
                for raw in old:
                    msg = wanted(raw)
                    if msg is not None:
                        yield msg
        try:
            current = stack.enter_context(open(path, "rb"))
        except FileNotFoundError:
            current = None
        buf = b""
        if current is not None:
            if since_ns is None:
                current.seek(0, os.SEEK_END)
            else:
                lines, buf = _lines(current, b"")
                for raw in lines:
                    msg = wanted(raw)
                    if msg is not None:
                        yield msg
        if not follow:
            return
        switch = False  # the journal was replaced: read the old file to its end, then take it
        while True:
            if until_ns is not None and time.time_ns() > until_ns:
                return
            if stopped is not None and stopped():
                return
            if current is not None:
                lines, buf = _lines(current, buf)
                for raw in lines:
                    msg = wanted(raw)
                    if msg is not None:
                        yield msg
                if lines:
                    continue
            if switch:
                if current is not None:
                    current.close()
                try:
                    current = stack.enter_context(open(path, "rb"))
                except FileNotFoundError:
                    current = None
                buf, switch = b"", False
                continue
            switch = _replaced(path, current)
            if not switch:
                time.sleep(poll)


def _replaced(path: str, current) -> bool:
    """Whether the journal at ``path`` is another file than ``current`` (rotated, or made
    since)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return current is None or os.fstat(current.fileno()).st_ino != st.st_ino
