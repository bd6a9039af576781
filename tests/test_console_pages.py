"""The console's pages and endpoints, from rows and a real Redis (no worker): who may use a
session, what goes onto its input list, the SSE stream of its channel."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from datetime import timedelta

import pytest
import redis
from django.test import Client
from django.utils import timezone

from containers.models import ConsoleSession, Container

CID = "5e" * 32

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set: run the tests with scripts/test"
)


@pytest.fixture
def role() -> str:
    return "operator"  # consoles are an operator's


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    from containers import tasks

    sent = []
    monkeypatch.setattr(tasks.run_console, "delay", lambda pk: sent.append(pk))
    return sent


@pytest.fixture
def r():
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    client.close()


def make_container(status="running") -> Container:
    now = timezone.now()
    return Container.objects.create(
        container_id=CID, name="web", image="busybox", image_id="sha256:" + "ab" * 32,
        path="sh", args=[], status=status, created=now - timedelta(minutes=3),
        started_at=now - timedelta(seconds=5),
    )


def session_of(user, status=ConsoleSession.Status.RUNNING) -> ConsoleSession:
    return ConsoleSession.objects.create(container_id=CID, user=user, status=status)


@pytest.mark.django_db
def test_it_requires_login():
    make_container()
    assert Client().get(f"/containers/{CID}/console/").status_code == 302


@pytest.mark.django_db(transaction=True)
def test_it_opens_a_session_and_queues_its_worker_task(client, user, no_broker):
    make_container()
    page = client.get(f"/containers/{CID}/console/")
    assert page.status_code == 200
    assert b'<option value="/bin/sh">' in page.content
    response = client.post(f"/containers/{CID}/console/", {"shell": "/bin/sh"})
    session = ConsoleSession.objects.get()
    assert response["Location"] == f"/containers/consoles/{session.session_id}/"
    assert len(session.session_id) >= 32 and session.user == user
    assert no_broker == [session.pk]
    page = client.get(response["Location"])
    assert b'id="terminal"' in page.content and b"vendor/xterm/xterm.js" in page.content


@pytest.mark.django_db
def test_it_refuses_a_console_for_a_stopped_container_or_an_unknown_shell(client, no_broker):
    make_container("exited")
    response = client.post(f"/containers/{CID}/console/", {"shell": "/bin/sh"}, follow=True)
    assert "is not running: start it to open a console." in response.content.decode()
    Container.objects.update(status="running")
    client.post(f"/containers/{CID}/console/", {"shell": "/usr/bin/python"})
    assert not ConsoleSession.objects.exists() and no_broker == []


@pytest.mark.django_db
def test_it_queues_input_resizes_and_close_for_the_worker(client, user, r):
    s = session_of(user)
    base = f"/containers/consoles/{s.session_id}"
    assert client.post(base + "/input/", {"data": "ls\r"}).status_code == 204
    assert client.post(base + "/resize/", {"cols": "120", "rows": "40"}).status_code == 204
    assert client.post(base + "/resize/", {"cols": "0", "rows": "40"}).status_code == 409
    assert client.post(base + "/resize/", {"cols": "x", "rows": "40"}).status_code == 400
    assert client.post(base + "/close/").status_code == 204
    queued = [json.loads(m) for m in r.lrange(s.queue_in, 0, -1)]
    assert queued == [
        {"t": "in", "d": "ls\r"},
        {"t": "resize", "cols": 120, "rows": 40},
        {"t": "close"},
    ]


@pytest.mark.django_db
def test_it_serves_a_session_only_to_its_owner(client, django_user_model):
    bob = django_user_model.objects.create_user("bob", password="another-long-password-43")
    s = session_of(bob)
    base = f"/containers/consoles/{s.session_id}"
    assert client.get(base + "/").status_code == 404
    assert client.get(base + "/stream/").status_code == 404
    assert client.post(base + "/input/", {"data": "x"}).status_code == 404


@pytest.mark.django_db
def test_it_rejects_input_without_a_csrf_token(user):
    s = session_of(user)
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    assert c.post(f"/containers/consoles/{s.session_id}/input/", {"data": "x"}).status_code == 403
    assert c.get(f"/containers/consoles/{s.session_id}/input/").status_code == 405


@pytest.mark.django_db
def test_it_refuses_input_to_an_ended_session(client, user):
    s = session_of(user, ConsoleSession.Status.ENDED)
    response = client.post(f"/containers/consoles/{s.session_id}/input/", {"data": "x"})
    assert response.status_code == 409
    assert response.content == b"This console session has ended."


@pytest.mark.django_db
def test_it_streams_the_channel_as_server_sent_events(client, user, r):
    s = session_of(user)
    response = client.get(f"/containers/consoles/{s.session_id}/stream/")
    assert response["Content-Type"] == "text/event-stream"
    chunks = iter(response.streaming_content)
    assert next(chunks) == b": connected\n\n"  # subscribed from here on

    def publish():
        time.sleep(0.2)
        r.publish(s.channel_out, json.dumps({"t": "out", "d": base64.b64encode(b"$ ").decode()}))
        r.publish(s.channel_out, json.dumps({"t": "end", "status": "ended", "exit_code": 0,
                                             "error": ""}))

    threading.Thread(target=publish).start()
    rest = b"".join(chunks)
    assert rest.startswith(b"event: out\ndata: JCA=\n\n")
    assert b"event: end\ndata: " in rest
