"""Live pages: a notice on Redis wherever the rows the pages render from change.

A notice is a few topic names, published on one Redis pub/sub channel (``CHANNEL``) by
whoever wrote the rows: the jobs layer (a job claimed or finished: ``<kind>`` and
``<kind>-<id>``), a progress writer (``pull``, ``pull-<id>``, ``build-<id>``), the mirrors
(``images``, ``containers``, ``volumes``, ``disk``) whether the worker, a page, the CLI, the
Engine API or a container's exit hook wrote them. Notices carry no data: the stream
(``dockweb.views.live``) passes them to the open pages as Server-Sent Events and each page
fetches its own fragments again through the ordinary views, so a person only ever sees what
those views let them see.

Best effort: a notice that cannot be sent (Redis down) is dropped and logged, and the pages
fall back to polling. Django-free (containers/exit_hook.py uses it without Django): the
Redis URL comes from Django's settings when they are set up, else from the environment as
the settings read it (``REDIS_URL``, ``CELERY_BROKER_URL``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import redis

log = logging.getLogger(__name__)

CHANNEL = "dockweb:live"
# Topics every page may listen to; a topic is one of these, or one of them and "-<id>".
TOPICS = (
    "images",
    "containers",
    "volumes",
    "disk",
    "pull",
    "build",
    "image_operation",
    "container_operation",
    "prune",
    "networks",
    "network_operation",
)
# Seconds publishing pauses after Redis refused, so that a process without Redis does not
# pay a connection attempt for every change.
BACKOFF = 5.0

_clients: dict[str, redis.Redis] = {}
_down_until: dict[str, float] = {}
_lock = threading.Lock()


def redis_url() -> str:
    """The Redis of the live notices: Django's DOCKWEB_REDIS_URL, else the environment's."""
    conf = sys.modules.get("django.conf")
    if conf is not None and conf.settings.configured:
        return conf.settings.DOCKWEB_REDIS_URL
    return (
        os.environ.get("REDIS_URL")
        or os.environ.get("CELERY_BROKER_URL")
        or "redis://127.0.0.1:6379/0"
    )


def _client(url: str) -> redis.Redis:
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1)
            _clients[url] = client
        return client


def publish(*topics: str, url: str | None = None) -> None:
    """Tell the open pages that ``topics`` changed (written already: call after commit)."""
    if not topics:
        return
    url = url or redis_url()
    if time.monotonic() < _down_until.get(url, 0.0):
        return
    try:
        _client(url).publish(CHANNEL, " ".join(topics))
    except (redis.RedisError, OSError) as err:
        _down_until[url] = time.monotonic() + BACKOFF
        log.warning("live pages: could not publish %s: %s", " ".join(topics), err)


def publish_on_commit(*topics: str) -> None:
    """``publish`` once the current Django transaction commits (at once outside one)."""
    from django.db import transaction

    transaction.on_commit(lambda: publish(*topics))


def family(topic: str) -> str:
    """``pull-12`` -> ``pull``; ``images`` -> ``images``."""
    return topic.split("-", 1)[0]


def parse(message: bytes | str) -> list[str]:
    """The well-formed topics of a notice (anything else on the channel is dropped)."""
    if isinstance(message, bytes):
        message = message.decode("ascii", "replace")
    topics = []
    for topic in message.split():
        name, _, rest = topic.partition("-")
        if name in TOPICS and (not rest or rest.isdigit()):
            topics.append(topic)
    return topics
