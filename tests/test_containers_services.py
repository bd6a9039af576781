"""Container services: the database mirror, the exit hook and queued operations, on real
busybox containers."""

from __future__ import annotations

import os
import time

import pytest
from django.core.management import call_command

from containers import services
from containers.models import Container, ContainerOperation, Volume
from images import services as image_services
from tests.support import images as im

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def busybox(registry, settings, tmp_path):
    settings.DOCKWEB_ROOT = tmp_path / "store"
    image = im.busybox_base()
    im.push_image(registry.host, "svc/busybox", "1", image)
    ref = f"{registry.host}/svc/busybox:1"
    image_services.pull_image(ref)
    yield ref
    mgr = services.get_manager()
    for c in mgr.list(all=True):
        mgr.remove(c.id, force=True, volumes=True)


def test_it_mirrors_containers_and_their_exit(busybox):
    cid = services.run_container(services.build_spec(busybox, ["sleep", "100"], name="sleeper"))
    row = Container.objects.get(container_id=cid)
    assert (row.name, row.status, row.image, row.path, row.args) == (
        "sleeper", "running", busybox, "sleep", ["100"]
    )
    assert row.inspect["State"]["Running"] is True
    services.kill_container(cid)
    services.wait_container(cid)
    call_command("container_exited", cid)  # what the supervisor runs
    row.refresh_from_db()
    assert (row.status, row.exit_code) == ("exited", 137)
    assert row.status_text().startswith("Exited (137) ")


def test_it_forgets_a_removed_container_and_keeps_named_volumes(busybox):
    spec = services.build_spec(busybox, ["true"], volumes=["keep:/k", "/anon"])
    cid = services.create_container(spec)
    assert {v.name for v in Volume.objects.all()} >= {"keep"}
    assert Volume.objects.filter(anonymous=True).count() == 1
    services.remove_container(cid, volumes=True)
    assert not Container.objects.filter(container_id=cid).exists()
    assert list(Volume.objects.values_list("name", flat=True)) == ["keep"]


def test_it_runs_queued_operations_and_records_conflicts(busybox):
    op = ContainerOperation.objects.create(
        kind="run", args={"image": busybox, "cmd": ["sleep", "100"], "name": "queued"}
    )
    services.run_operation(op.pk)
    op.refresh_from_db()
    assert op.status == "done" and len(op.container_id) == 64
    services.run_operation(op.pk)  # a duplicate delivery does nothing
    rm = ContainerOperation.objects.create(kind="remove", args={"container": "queued"})
    services.run_operation(rm.pk)
    rm.refresh_from_db()
    assert rm.status == "failed" and rm.conflict
    assert rm.error.startswith("You cannot remove a running container")
    diff = ContainerOperation.objects.create(kind="diff", args={"container": "queued"})
    services.run_operation(diff.pk)
    diff.refresh_from_db()
    assert diff.status == "done" and diff.result["changes"] == []


def test_it_reports_image_use_for_removal_conflicts(busybox):
    cid = services.create_container(services.build_spec(busybox, ["true"]))
    used = image_services.containers_using_images()
    assert [(c, running) for c, _, running in used] == [(cid, False)]
    with pytest.raises(Exception, match="conflict: unable to remove repository reference"):
        image_services.remove_image(busybox)


def test_it_reads_logs_by_offset(busybox):
    cid = services.run_container(services.build_spec(busybox, ["sh", "-c", "echo a; echo b"]))
    for _ in range(100):
        entries, offset = services.read_log(cid)
        if len(entries) == 2:
            break
        time.sleep(0.05)
    assert [e["log"] for e in entries] == ["a\n", "b\n"]
    assert services.read_log(cid, offset) == ([], offset)
    assert services.tail_offset(cid, 1) > 0
    assert [e["log"] for e in services.read_log(cid, services.tail_offset(cid, 1))[0]] == ["b\n"]
