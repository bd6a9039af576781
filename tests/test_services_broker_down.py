"""Queuing work while the broker is down fails the row with a message, instead of hanging."""

from __future__ import annotations

import socket

import pytest
from django.db import transaction

from dockweb.celery import app
from images import services
from images.models import Operation, Pull


@pytest.fixture
def dead_broker():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"redis://127.0.0.1:{port}/0"
    old = app.conf.broker_url
    app.conf.broker_url = url
    app.pool.force_close_all()
    yield url
    app.conf.broker_url = old
    app.pool.force_close_all()


@pytest.mark.django_db(transaction=True)
def test_it_fails_a_pull_it_cannot_queue(dead_broker):
    with transaction.atomic():
        pull = services.start_pull("busybox")
    pull.refresh_from_db()
    assert pull.status == Pull.Status.FAILED
    assert "could not reach the task queue" in pull.error
    assert "redis-server" in pull.error


@pytest.mark.django_db(transaction=True)
def test_it_fails_an_operation_it_cannot_queue(dead_broker):
    op = services.start_removal("busybox")
    op.refresh_from_db()
    assert op.status == Operation.Status.FAILED
    assert "could not reach the task queue" in op.error
