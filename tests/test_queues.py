"""Work lanes: each kind of work on its own queue with its own worker, so that none starves
another (issue 17, item 8), and a stuck pull's cancel that takes effect at once.

Real components: one Celery worker per lane as scripts/run starts them
(tests.support.worker.lane_workers), the run's Redis, a loopback registry, and a
"registry" that accepts connections and never answers (each pull of it waits on a read
whose timeout is a minute).
"""

from __future__ import annotations

import os
import socket
import time

import pytest
import redis
from django.db import connection

import containers.console  # noqa: F401 - registers the console kind
import containers.services  # noqa: F401 - the container operations
import disk.services  # noqa: F401 - prunes
import images.services.builds  # noqa: F401 - builds
from containers.models import ConsoleSession
from dockweb import jobs
from dockweb.jobs import queues
from images import services
from images.models import Operation, Pull
from tests.support import images as im
from tests.support.worker import DEFAULT_QUEUES, lane_workers

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the workers unpack layers with their owners"),
    pytest.mark.django_db(transaction=True),
]


def test_each_kind_of_work_has_its_lanes_queue():
    assert queues.queue_for("pull") == "dockweb.pulls"
    assert queues.queue_for("build") == "dockweb.builds"
    for kind in ("image_operation", "container_operation", "prune"):
        assert queues.queue_for(kind) == "dockweb.quick"
    assert queues.queue_for("console") == "dockweb.consoles"
    # one place for the host dimension: one worker per machine on its own queue
    assert queues.queue_for("pull", host="node-2") == "dockweb.pulls@node-2"
    assert queues.default_queue() == "dockweb.quick"
    assert set(DEFAULT_QUEUES) == set(queues.all_queues())
    # every registered kind is in a lane that names it (a new kind must choose one)
    named = {k for lane in queues.LANES for k in lane.kinds}
    assert {k.name for k in jobs.kinds()} <= named


def test_a_lanes_concurrency_comes_from_its_setting():
    pulls = queues.LANES[0]
    assert queues.concurrency(pulls, {}) == pulls.concurrency
    assert queues.concurrency(pulls, {pulls.setting: "5"}) == 5
    with pytest.raises(ValueError, match=pulls.setting):
        queues.concurrency(pulls, {pulls.setting: "0"})


@pytest.fixture
def silent_registry():
    """host:port of a socket that accepts connections (the kernel's backlog) and never
    answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def lanes(settings, tmp_path):
    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker:
        pytest.skip("CELERY_BROKER_URL is not set: run the tests with scripts/test")
    db_path = str(connection.settings_dict["NAME"])
    if connection.vendor != "sqlite" or "memory" in db_path or not os.path.isabs(db_path):
        pytest.skip(f"the workers need the test database in a file, not {db_path!r}")
    redis.Redis.from_url(broker).delete(*DEFAULT_QUEUES)
    settings.DOCKWEB_ROOT = tmp_path / "store"
    workers = lane_workers(
        concurrency=2,
        db_path=db_path,
        store_root=settings.DOCKWEB_ROOT,
        data_dir=settings.DOCKWEB_DATA,
        broker_url=broker,
        log_path=tmp_path / "worker.log",
    )
    try:
        for worker in workers:
            worker.start()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def _wait(row, done, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        row.refresh_from_db()
        if done(row):
            return row
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}: {row.status}"
        time.sleep(0.05)


def test_two_stuck_pulls_starve_neither_a_tag_nor_a_console_and_cancel_at_once(
    lanes, silent_registry, registry, django_user_model
):
    image = im.busybox_base()
    im.push_image(registry.host, "lanes/busybox", "1", image)
    services.pull_image(f"{registry.host}/lanes/busybox:1")

    stuck = [services.start_pull(f"{silent_registry}/stuck/{name}:1") for name in "ab"]
    for p in stuck:  # both hold the pulls lane's two slots
        _wait(p, lambda r: r.status == Pull.Status.RUNNING, "the stuck pull to start")

    tag = services.start_tag(f"{registry.host}/lanes/busybox:1", "lanes/copy:1")
    _wait(tag, lambda r: not r.is_active, "the tag")
    assert tag.status == Operation.Status.DONE, tag.error

    # a console on a container that does not exist: it runs (and fails) instead of waiting
    user = django_user_model.objects.create_user("bob")
    session = ConsoleSession.objects.create(container_id="0" * 64, shell="/bin/sh", user=user)
    listener = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).pubsub()
    listener.subscribe(session.channel_out)  # the page listening: the shell starts at once
    try:
        jobs.enqueue(session)
        _wait(session, lambda r: not r.is_active, "the console")
    finally:
        listener.close()
    assert session.status == ConsoleSession.Status.FAILED
    assert "0" * 12 in session.error or "No such container" in session.error, session.error

    # the pulls still wait on their registry; a cancel ends one at once
    for p in stuck:
        p.refresh_from_db()
        assert p.status == Pull.Status.RUNNING
    asked = time.monotonic()
    services.cancel_pull(stuck[0])
    _wait(stuck[0], lambda r: not r.is_active, "the cancel", timeout=20)
    took = time.monotonic() - asked
    assert stuck[0].status == Pull.Status.CANCELLED
    # the bound is 1 s (0.2 s to see the request, 0.25 s of grace); the read it
    # waits on ends only at its one-minute timeout
    assert took < 3, f"cancel took {took:.2f} s"
    stuck[1].refresh_from_db()
    assert stuck[1].status == Pull.Status.RUNNING
    services.cancel_pull(stuck[1])
    _wait(stuck[1], lambda r: not r.is_active, "the second cancel", timeout=20)
