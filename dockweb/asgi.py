"""ASGI entry point: ``dockweb.asgi:application`` (scripts/run serves it with uvicorn).

Two halves in one process:

- ``/events/``, the live pages' streams (dockweb/stream.py), goes to Django's ASGI handler:
  each open stream is a coroutine waiting on the process's one Redis subscription, so
  hundreds of open pages cost no thread each;
- every other request goes to Django's WSGI handler on a fixed pool of threads
  (a2wsgi, ``DOCKWEB_WEB_THREADS`` of them). The pages are synchronous views; under the ASGI handler
  each request would get a thread of its own and with it a new database connection
  (about 5 ms with SQLite, more than a whole fragment), while a pool thread keeps its
  connection (``DB_CONN_MAX_AGE``) and the middleware runs without a hop between threads
  per layer.
"""

from __future__ import annotations

import os

from a2wsgi import WSGIMiddleware
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockweb.settings")

STREAM_PATH = "/events/"

_streams = get_asgi_application()
_pages = WSGIMiddleware(get_wsgi_application(), workers=settings.DOCKWEB_WEB_THREADS)


async def application(scope, receive, send) -> None:
    if scope["type"] == "http" and scope["path"] == STREAM_PATH:
        await _streams(scope, receive, send)
    else:
        await _pages(scope, receive, send)
