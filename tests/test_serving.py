"""The production server as scripts/run starts it: uvicorn serving dockweb.asgi (pages on the
WSGI thread pool, the live stream on Django's ASGI handler), static files collected with
hashed names and served by WhiteNoise with far-future caching."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest
import urllib3

from dockweb import live
from tests.support.cli import REPO

pytestmark = pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL"), reason="needs the run's Redis: use scripts/test"
)


@pytest.fixture
def role() -> str:
    return "viewer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(transactional_db, tmp_path):
    """uvicorn with scripts/run's options on the test database, after collectstatic."""
    from django.conf import settings
    from django.db import connection

    env = dict(
        os.environ,
        DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
        SECRET_KEY=settings.SECRET_KEY,  # the test client's session stays valid
        DOCKWEB_DATA=str(tmp_path / "data"),
        DOCKWEB_STATIC_HASHED="1",
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=REPO,
        env=env,
        check=True,
    )
    port = free_port()
    log = open(tmp_path / "uvicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "dockweb.asgi:application", "--port", str(port),
         "--workers", "2", "--loop", "uvloop", "--http", "httptools", "--no-proxy-headers",
         "--lifespan", "off", "--log-level", "warning"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    http = urllib3.PoolManager(retries=False)
    deadline = time.monotonic() + 30
    while True:
        try:
            http.request("GET", url + "/login/", timeout=1)
            break
        except urllib3.exceptions.HTTPError:
            assert proc.poll() is None, (tmp_path / "uvicorn.log").read_text()
            assert time.monotonic() < deadline, "uvicorn did not answer"
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(15)
    log.close()


def test_uvicorn_serves_the_pages_the_stream_and_cached_static_files(server, client):
    http = urllib3.PoolManager(retries=False)
    cookie = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}

    page = http.request("GET", server + "/images/", headers=cookie)
    assert page.status == 200
    html = page.data.decode()
    assert 'sse-connect="/events/"' in html
    # hashed names, served with a year's immutable caching, compressed when asked
    script = re.search(r'src="(/static/vendor/htmx-ext-sse/sse\.[0-9a-f]{12}\.js)"', html)
    assert script, html[:2000]
    static = http.request("GET", server + script.group(1), headers={"Accept-Encoding": "gzip"})
    assert static.status == 200
    assert "immutable" in static.headers["Cache-Control"]
    assert "max-age=315360000" in static.headers["Cache-Control"]

    assert http.request("GET", server + "/events/", redirect=False).status == 302
    stream = http.request(
        "GET", server + "/events/", headers=cookie, preload_content=False,
        timeout=urllib3.Timeout(connect=5, read=10),
    )  # fmt: skip
    try:
        assert stream.status == 200
        received = stream.read1(4096)
        assert received.startswith(b"retry: ")  # subscribed
        live.publish("containers")
        while b"event: containers" not in received:
            chunk = stream.read1(4096)
            assert chunk, received
            received += chunk
    finally:
        stream.release_conn()
        stream.close()
