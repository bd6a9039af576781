"""The live notices (dockweb/live.py) and their stream (/events/, dockweb/stream.py) against
the run's real Redis, and the Images page's Containers column that the notices keep true."""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta

import pytest
import redis
import urllib3
from django.test import Client
from django.utils import timezone

from containers.models import Container
from dockweb import live
from images import services
from tests.test_pages_images import APP_ID, images  # noqa: F401 - fixture

pytestmark = pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL"), reason="needs the run's Redis: use scripts/test"
)


@pytest.fixture
def role() -> str:
    """A viewer: every signed-in user may follow the notices (they carry no data)."""
    return "viewer"


class Listener:
    """Every notice on the live channel while it is open: a list of topic lists."""

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(live.CHANNEL)
        self.pubsub.get_message(timeout=1)  # the subscription's confirmation

    def topics(self, wait: float = 2.0) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            msg = self.pubsub.get_message(timeout=0.1)
            if msg is not None:
                seen += live.parse(msg["data"])
        return seen

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def listener():
    listening = Listener()
    yield listening
    listening.close()


def make_container(cid: str, image_id: str) -> Container:
    now = timezone.now()
    return Container.objects.create(
        container_id=cid,
        name="c" + cid[:6],
        image="webapp:1.0",
        image_id=image_id,
        path="sh",
        status="exited",
        created=now - timedelta(minutes=1),
        inspect={"Id": cid},
    )


def test_it_parses_only_known_topics():
    assert live.parse(b"images pull-12 pull-x nothing containers-3; disk") == [
        "images",
        "pull-12",
        "disk",
    ]


@pytest.mark.django_db
def test_the_stream_needs_a_signed_in_user():
    response = Client().get("/events/")
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_a_notice_reaches_an_open_stream_as_an_event(live_server, client):
    cookie = client.cookies["sessionid"].value
    http = urllib3.PoolManager()
    response = http.request(
        "GET",
        f"{live_server.url}/events/",
        headers={"Cookie": f"sessionid={cookie}"},
        preload_content=False,
        timeout=urllib3.Timeout(connect=5, read=10),
    )
    try:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        received = b""
        # the subscription is made before the first bytes ("retry:") are sent
        received += response.read1(4096)
        assert received.startswith(b"retry: ")
        live.publish("images", "bogus", "pull-7")
        while b"event: pull-7" not in received:
            chunk = response.read1(4096)
            assert chunk, received
            received += chunk
        assert b"event: images\ndata: \n\n" in received
        assert b"bogus" not in received
    finally:
        response.release_conn()
        response.close()


@pytest.mark.django_db(transaction=True)
def test_a_mirror_write_publishes_after_its_commit(listener):
    from django.db import transaction

    from containers import services as container_services

    heard: list[list[str]] = []
    with transaction.atomic():
        container_services.sync_containers("0" * 64)  # no such container: its row deleted
        # inside the transaction nothing is said yet: a page would fetch the old rows
        heard.append(listener.topics(wait=0.3))
    heard.append(listener.topics())
    assert heard[0] == []
    assert {"containers", "volumes", "images", "disk"} <= set(heard[1])


def test_the_containers_column_counts_the_containers_of_each_image(
    client,
    images,  # noqa: F811
):
    def counts() -> dict[str, int]:
        rows, _ = services.image_table()
        return {row["image_id"]: row["containers"] for row in rows}

    assert counts()[APP_ID] == 0
    make_container("c1" * 32, APP_ID)
    make_container("c2" * 32, APP_ID)
    # a container row is no mirror write: the cached table still follows it
    assert counts()[APP_ID] == 2
    assert all(n == 0 for image_id, n in counts().items() if image_id != APP_ID)
    html = client.get("/images/").content.decode()
    assert re.search(r'<td class="num" data-label="Containers">2</td>', html)
    Container.objects.filter(container_id="c1" * 32).delete()
    assert counts()[APP_ID] == 1


def test_publishing_without_redis_is_dropped_quickly():
    started = time.monotonic()
    url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    live.publish("images", url=url)
    live.publish("images", url=url)  # within the back-off: not even tried
    assert time.monotonic() - started < 2.0
    assert live._down_until[url] > time.monotonic()
