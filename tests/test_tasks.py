"""The Celery tasks and the worker's start-up repair, with real Redis as the broker."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
import redis
from django.conf import settings as django_settings

from dockweb import jobs
from dockweb.jobs import queues
from dockweb.runtime import reference as refs
from dockweb.runtime.pull import pull
from images import services, tasks
from images.models import Image, Operation, Pull
from tests.support import images as im

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def broker():
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    client.delete(*queues.all_queues())
    yield client
    client.delete(*queues.all_queues())


def _queued(broker, lane: str) -> list[tuple[str, list]]:
    out = []
    for raw in broker.lrange(queues.queue_name(lane), 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        out.append((message["headers"]["task"], args))
    return out


def test_it_enqueues_a_pull_after_commit_on_the_pulls_queue(store, broker):
    p = services.start_pull("busybox")
    assert ("images.tasks.pull_image", [p.id]) in _queued(broker, "pulls")
    assert _queued(broker, "quick") == []


def test_it_enqueues_an_operation_after_commit_on_the_quick_queue(store, broker):
    op = services.start_removal("busybox")
    assert ("images.tasks.run_operation", [op.id]) in _queued(broker, "quick")
    assert _queued(broker, "pulls") == []


def test_it_is_declared_thin_late_acked_and_never_retried():
    for task in (tasks.pull_image, tasks.run_operation):
        assert task.acks_late
        assert task.ignore_result
        assert not getattr(task, "autoretry_for", ())


def test_the_pull_task_runs_a_pull(store, registry):
    image = im.busybox_base()
    im.push_image(registry.host, "tasks/busybox", "1", image)
    p = services.start_pull(f"{registry.host}/tasks/busybox:1")
    tasks.pull_image.apply(args=[p.id]).get()
    p.refresh_from_db()
    assert p.status == "done", p.error
    assert Image.objects.filter(image_id=image.image_id).exists()
    # a second delivery of the same message does nothing
    tasks.pull_image.apply(args=[p.id]).get()
    p.refresh_from_db()
    assert p.status == "done"


def test_the_operation_task_runs_an_operation(store, registry):
    image = im.busybox_base()
    im.push_image(registry.host, "tasks/busybox", "1", image)
    services.pull_image(f"{registry.host}/tasks/busybox:1")
    op = services.start_tag(f"{registry.host}/tasks/busybox:1", "tasks/copy:1")
    tasks.run_operation.apply(args=[op.id]).get()
    op.refresh_from_db()
    assert op.status == "done", op.error
    assert store.resolve_reference(refs.parse_normalized_named("tasks/copy:1")) == image.image_id


def _dead_worker() -> str:
    """The identity of a process that has exited."""
    code = "from dockweb import jobs; print(jobs.worker_identity())"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="dockweb.settings")
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        capture_output=True, text=True, env=env, check=True,
    )
    return out.stdout.strip()


def test_the_worker_start_fails_pulls_left_by_a_dead_worker(store, registry):
    dead = Pull.objects.create(reference="x", normalized="docker.io/library/x:latest",
                               status="running", worker=_dead_worker())
    alive = Pull.objects.create(reference="y", normalized="docker.io/library/y:latest",
                                status="running", worker=jobs.worker_identity())
    op = Operation.objects.create(kind="remove", args={"ref": "x"}, status="running",
                                  worker=_dead_worker())
    scratch = os.path.join(store.tmp_dir, "write-left-behind")
    open(scratch, "w").close()
    os.utime(scratch, (0, 0))
    image = im.busybox_base()
    im.push_image(registry.host, "tasks/busybox", "1", image)
    # pulled by the runtime alone: in the store, not yet in the database
    pull(store, services.get_client(), f"{registry.host}/tasks/busybox:1")
    assert not Image.objects.exists()

    tasks.recover_after_restart()

    dead.refresh_from_db()
    alive.refresh_from_db()
    op.refresh_from_db()
    assert dead.status == "failed"
    assert dead.error == (
        "the worker stopped during the pull; pull again to resume — finished layers are reused"
    )
    assert alive.status == "running"
    assert op.status == "failed"
    assert not os.path.exists(scratch)
    assert Image.objects.filter(image_id=image.image_id).exists()


def test_the_worker_start_fails_every_kind_of_job_left_by_a_dead_worker(store, django_user_model):
    from containers import services as container_services
    from containers import tasks as container_tasks
    from containers.console import CONSOLE_ABANDONED
    from containers.models import ConsoleSession, ContainerOperation
    from disk import tasks as disk_tasks
    from disk.models import PruneOperation
    from disk.services import PRUNE_ABANDONED
    from images.models import Build
    from networks import services as network_services
    from networks import tasks as network_tasks
    from networks.models import NetworkOperation

    dead = {"status": "running", "worker": _dead_worker()}
    user = django_user_model.objects.create_user("alice")
    rows = {
        Pull.objects.create(reference="x", normalized="docker.io/library/x:latest", **dead):
            services.WORKER_STOPPED,
        Operation.objects.create(kind="remove", args={"ref": "x"}, **dead):
            "the worker stopped during the operation; look at the image and try again",
        Build.objects.create(dockerfile="FROM scratch", **dead):
            "the worker stopped during the build; start the build again",
        ContainerOperation.objects.create(kind="stop", args={"container": "x"}, **dead):
            container_services.OPERATION_ABANDONED,
        PruneOperation.objects.create(preview={}, **dead): PRUNE_ABANDONED,
        ConsoleSession.objects.create(container_id="ab" * 32, user=user, **dead):
            CONSOLE_ABANDONED,
        NetworkOperation.objects.create(kind="create", args={"name": "n"}, **dead):
            network_services.OPERATION_ABANDONED,
    }
    alive = PruneOperation.objects.create(status="running", worker=jobs.worker_identity())

    tasks.recover_after_restart()
    container_tasks.recover_after_restart()
    disk_tasks.recover_after_restart()
    network_tasks.fail_abandoned()

    for row, message in rows.items():
        row.refresh_from_db()
        assert (type(row).__name__, row.status, row.error) == (
            type(row).__name__, "failed", message
        )
    alive.refresh_from_db()
    assert alive.status == "running"


def test_it_claims_no_row_of_any_kind_that_is_no_longer_queued(django_user_model):
    from containers import tasks as container_tasks  # noqa: F401 - registers the console kind
    from containers.models import ConsoleSession, ContainerOperation
    from disk import tasks as disk_tasks  # noqa: F401 - registers the prune kind
    from disk.models import PruneOperation
    from images.models import Build
    from networks import tasks as network_tasks  # noqa: F401 - registers the network kind
    from networks.models import NetworkOperation

    user = django_user_model.objects.create_user("alice")
    finished = [
        Pull.objects.create(reference="x", normalized="docker.io/library/x:latest", status="done"),
        Operation.objects.create(kind="remove", args={"ref": "x"}, status="failed"),
        Build.objects.create(dockerfile="FROM scratch", status="done"),
        ContainerOperation.objects.create(kind="stop", args={"container": "x"}, status="done"),
        PruneOperation.objects.create(preview={}, status="failed"),
        ConsoleSession.objects.create(container_id="ab" * 32, user=user, status="ended"),
        NetworkOperation.objects.create(kind="prune", args={}, status="done"),
    ]
    assert {jobs.kind_of(type(row)).name for row in finished} == {k.name for k in jobs.kinds()}
    for row in finished:
        status = row.status
        jobs.run_job(jobs.kind_of(type(row)).name, row.pk)  # a late or duplicate delivery
        row.refresh_from_db()
        assert (type(row).__name__, row.status, row.worker) == (type(row).__name__, status, "")
