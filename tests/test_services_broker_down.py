"""Queuing work while the broker is down fails the row with a message, instead of hanging."""

from __future__ import annotations

import socket
from datetime import timedelta

import kombu.pools
import pytest
from django.db import transaction
from django.utils import timezone

from containers import console
from containers import services as container_services
from containers.models import Container
from disk import services as disk_services
from dockweb.celery import app
from images import services
from images.models import Operation, Pull


def _reset_pools():
    # force_close_all() would close kombu's shared pool for good, and every later .delay()
    # in this process would fail: drop the pools instead, so fresh ones are made on demand
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def dead_broker(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"redis://127.0.0.1:{port}/0"
    # Celery reads CELERY_BROKER_URL from the environment before its own settings
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setattr(app.conf, "broker_url", url)
    _reset_pools()
    yield url
    monkeypatch.undo()
    _reset_pools()


@pytest.mark.django_db(transaction=True)
def test_it_fails_a_pull_it_cannot_queue(dead_broker):
    with transaction.atomic():
        pull = services.start_pull("busybox")
    pull.refresh_from_db()
    assert pull.status == Pull.Status.FAILED
    assert f"could not reach the task queue at {dead_broker}" in pull.error
    assert "redis-server" in pull.error


@pytest.mark.django_db(transaction=True)
def test_it_fails_an_operation_it_cannot_queue(dead_broker):
    op = services.start_removal("busybox")
    op.refresh_from_db()
    assert op.status == Operation.Status.FAILED
    assert "could not reach the task queue" in op.error


def assert_failed_at_once(row, broker: str) -> None:
    row.refresh_from_db()
    assert row.status == "failed"
    assert f"could not reach the task queue at {broker}" in row.error
    assert "redis-server" in row.error


@pytest.mark.django_db(transaction=True)
def test_it_fails_a_tag_it_cannot_queue(dead_broker):
    assert_failed_at_once(services.start_tag("busybox", "copy:1"), dead_broker)


@pytest.mark.django_db(transaction=True)
def test_it_fails_a_build_it_cannot_queue(dead_broker, settings, tmp_path):
    settings.DOCKWEB_DATA = tmp_path
    assert_failed_at_once(services.start_build("FROM scratch\n"), dead_broker)


@pytest.mark.django_db(transaction=True)
def test_it_fails_a_container_operation_it_cannot_queue(dead_broker):
    op = container_services.start_operation("start", {"container": "web"})
    assert_failed_at_once(op, dead_broker)


@pytest.mark.django_db(transaction=True)
def test_it_fails_a_prune_it_cannot_queue(dead_broker):
    preview = {"options": {}, "containers": [], "volumes": [], "images": [], "layers": []}
    assert_failed_at_once(disk_services.start_prune(preview), dead_broker)


@pytest.mark.django_db(transaction=True)
def test_it_fails_a_console_it_cannot_queue(dead_broker, django_user_model):
    now = timezone.now()
    container = Container.objects.create(
        container_id="5e" * 32,
        name="web",
        image="busybox",
        status="running",
        created=now - timedelta(minutes=1),
        started_at=now,
    )
    user = django_user_model.objects.create_user("alice")
    session = console.open_console(container, "/bin/sh", user)
    session.refresh_from_db()
    assert session.ended_at is not None
    assert_failed_at_once(session, dead_broker)
