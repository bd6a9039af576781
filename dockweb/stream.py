"""``GET /events/``: the live notices (dockweb/live.py) as Server-Sent Events.

Each notice's topics become events named after them (``event: containers``), which the
pages' htmx SSE extension turns into fetches of their own fragments (``hx-trigger=
"sse:containers"``); the data are empty, so the stream leaks nothing a fragment's own view
would not show. Only signed-in users get it (LoginRequiredMiddleware, and the view checks
again); the stream ends when the session does (checked with each heartbeat) and after
``MAX_AGE`` seconds, when the browser reconnects by itself.

Under an ASGI server (scripts/run: uvicorn) the view is asynchronous: one Redis subscription
per server process (``Hub``) fans the notices out to every open stream, so a stream costs a
queue, not a thread or a Redis connection. Under a WSGI server (runserver, the tests'
live_server) it falls back to a blocking subscription per stream, which holds a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time

import redis
import redis.asyncio as aredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from dockweb import live

log = logging.getLogger(__name__)

HEARTBEAT = 15.0  # seconds between two comments on an idle stream (and session checks)
MAX_AGE = 600.0  # seconds a stream lasts; EventSource reconnects after `retry`
RETRY_MS = 1000
QUEUE_SIZE = 256  # notices a slow stream may fall behind before it is closed

_ids = itertools.count(1)


def frame(topic: str) -> bytes:
    return f"id: {next(_ids)}\nevent: {topic}\ndata: \n\n".encode()


def frames(topics: list[str]) -> bytes:
    """A notice: first one unnamed message listing its topics (dockweb.js notes when each
    topic last changed, to fetch again a part whose answer may predate it), then an event
    per topic, which the parts' ``hx-trigger="sse:<topic>"`` follow."""
    return f"data: {' '.join(topics)}\n\n".encode() + b"".join(frame(t) for t in topics)


def opening() -> bytes:
    # `retry`: how soon the browser reconnects; the comment makes proxies flush the headers
    return f"retry: {RETRY_MS}\n: live\n\n".encode()


class Subscriber:
    """One open stream: the notices not sent yet; ``closed`` when the hub dropped it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[str]] = asyncio.Queue(QUEUE_SIZE)
        self.closed = False

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait([])  # wakes the stream, which sees `closed`


class Hub:
    """One Redis subscription for every stream of this event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.subscribers: set[Subscriber] = set()
        self.task: asyncio.Task | None = None
        self.ready = asyncio.Event()

    def open(self) -> Subscriber:
        sub = Subscriber()
        self.subscribers.add(sub)
        if self.task is None or self.task.done():
            self.ready.clear()
            self.task = asyncio.get_running_loop().create_task(self.run())
        return sub

    def close(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def run(self) -> None:
        client = aredis.Redis.from_url(self.url, socket_connect_timeout=2)
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(live.CHANNEL)
                self.ready.set()
                while self.subscribers:
                    msg = await pubsub.get_message(timeout=HEARTBEAT)
                    if msg is None:
                        continue
                    topics = live.parse(msg["data"])
                    if not topics:
                        continue
                    for sub in list(self.subscribers):
                        try:
                            sub.queue.put_nowait(topics)
                        except asyncio.QueueFull:
                            # a stream this far behind ends; its page reconnects and resyncs
                            self.subscribers.discard(sub)
                            sub.closed = True
        except (redis.RedisError, OSError) as err:
            # the streams end; their pages poll until they reconnect
            log.warning("live stream: redis: %s", err)
        finally:
            for sub in list(self.subscribers):
                sub.close()
            self.subscribers.clear()
            self.ready.set()
            await client.aclose()


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    loop = asyncio.get_running_loop()
    h = _hubs.get(loop)
    if h is None:
        h = _hubs[loop] = Hub(settings.DOCKWEB_REDIS_URL)
    return h


def _session_alive(session: SessionBase) -> bool:
    key = session.session_key
    return bool(key) and session.exists(key)


async def _async_events(request: HttpRequest):
    h = hub()
    sub = h.open()
    try:
        await asyncio.wait_for(h.ready.wait(), 5)
        if sub.closed:
            return
        yield opening()
        deadline = time.monotonic() + MAX_AGE
        while time.monotonic() < deadline and not sub.closed:
            try:
                topics = await asyncio.wait_for(sub.queue.get(), HEARTBEAT)
            except TimeoutError:
                if not await sync_to_async(_session_alive)(request.session):
                    return
                yield b": heartbeat\n\n"
                continue
            if topics:
                yield frames(topics)
    finally:
        h.close(sub)


def _sync_events(request: HttpRequest):
    client = redis.Redis.from_url(settings.DOCKWEB_REDIS_URL, socket_connect_timeout=2)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(live.CHANNEL)
        yield opening()
        deadline = time.monotonic() + MAX_AGE
        beat = time.monotonic() + HEARTBEAT
        while time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=1.0)
            if msg is not None:
                topics = live.parse(msg["data"])
                if topics:
                    yield frames(topics)
            elif time.monotonic() >= beat:
                if not _session_alive(request.session):
                    return
                beat = time.monotonic() + HEARTBEAT
                yield b": heartbeat\n\n"
    except (redis.RedisError, OSError) as err:
        log.warning("live stream: redis: %s", err)
    finally:
        pubsub.close()
        client.close()


@require_GET
def events(request: HttpRequest) -> HttpResponse:
    """The live notices of this site as ``text/event-stream`` (see the module)."""
    if not request.user.is_authenticated or not request.user.is_active:
        return HttpResponse(status=401)
    if isinstance(request, ASGIRequest):
        body = _async_events(request)
    else:
        body = _sync_events(request)
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"
    return response
