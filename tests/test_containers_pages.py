"""The Containers and Volumes pages, from database rows: lists, actions, run form, logs."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from containers.models import Container, ContainerOperation, Volume
from images.models import Image, Reference, Repository

CID = "9c" * 32


@pytest.fixture
def role() -> str:
    return "admin"  # runs, stops and removes


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Queued operations stay queued: the worker is not what these tests look at."""
    from containers import tasks

    sent = []
    monkeypatch.setattr(tasks.run_operation, "delay", lambda pk: sent.append(pk))
    return sent


def make_container(status="running", name="web", cid=CID, **kw) -> Container:
    now = timezone.now()
    return Container.objects.create(
        container_id=cid, name=name, image="busybox", image_id="sha256:" + "ab" * 32,
        path="sh", args=["-c", "sleep 100"], status=status, created=now - timedelta(minutes=3),
        started_at=None if status == "created" else now - timedelta(seconds=5),
        finished_at=now - timedelta(minutes=1) if status == "exited" else None,
        inspect={"Id": cid, "Name": "/" + name}, **kw,
    )


@pytest.mark.django_db
def test_it_requires_login():
    assert Client().get("/containers/").status_code == 302
    assert Client().get("/volumes/").status_code == 302


@pytest.mark.django_db
def test_it_lists_containers_with_the_actions_their_state_allows(client):
    c = make_container("running", "web")
    c.inspect.update({
        "State": {"Running": True},
        "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}},
    })
    c.save()
    make_container("exited", "old", cid="7e" * 32, exit_code=2)
    body = client.get("/containers/").content.decode()
    assert "Up 5 seconds" in body and "Exited (2) About a minute ago" in body
    assert "0.0.0.0:8080-&gt;80/tcp" in body  # docker ps's PORTS
    assert f'/containers/{CID}/stop/' in body and f'/containers/{CID}/pause/' in body
    assert f'/containers/{CID}/start/' not in body
    assert f'/containers/{"7e" * 32}/start/' in body
    assert f'/containers/{"7e" * 32}/stop/' not in body
    # a running container's "Up …" keeps changing: polled (the live notices aside); an
    # action done in place refreshes it too
    assert re.search(
        r'id="container-list"[^>]*hx-trigger="sse:containers[^"]*dockweb:changed from:body'
        r', every 5s"',
        body,
    )


@pytest.mark.django_db
def test_it_renders_only_the_list_for_htmx(client):
    make_container()
    body = client.get("/containers/", HTTP_HX_REQUEST="true").content.decode()
    assert body.lstrip().startswith('<section id="container-list"')


@pytest.mark.django_db
def test_it_queues_an_allowed_action(client, no_broker, django_capture_on_commit_callbacks):
    make_container("running")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/containers/{CID[:12]}/stop/", {"next": "/containers/"})
    assert response.status_code == 302 and response["Location"] == "/containers/"
    op = ContainerOperation.objects.get()
    assert (op.kind, op.args, op.container_id) == (
        "stop",
        {"container": CID, "container_name": "web"},
        CID,
    )
    assert no_broker == [op.pk]


@pytest.mark.django_db
def test_it_refuses_an_action_the_state_forbids(client, no_broker):
    make_container("exited")
    response = client.post(f"/containers/{CID}/pause/")
    assert response.status_code == 302
    assert not ContainerOperation.objects.exists()


@pytest.mark.django_db
def test_it_rejects_get_for_actions(client):
    make_container()
    assert client.get(f"/containers/{CID}/stop/").status_code == 405


@pytest.mark.django_db
def test_it_shows_a_container_with_logs_and_inspect(client, settings, tmp_path):
    settings.DOCKWEB_ROOT = tmp_path
    c = make_container()
    c.inspect["NetworkSettings"] = {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0",
                                                          "HostPort": "8080"}]}}
    c.save()
    log = tmp_path / "containers" / CID / "container.log"
    log.parent.mkdir(parents=True)
    lines = [{"log": "hello\n", "stream": "stdout", "time": "2024-01-01T00:00:00Z"},
             {"log": "oops\n", "stream": "stderr", "time": "2024-01-01T00:00:01Z"}]
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    body = client.get(f"/containers/{CID}/").content.decode()
    assert '<span class="log-line stdout">hello\n</span>' in body
    assert '<span class="log-line stderr">oops\n</span>' in body
    size = log.stat().st_size
    assert f"/containers/{CID}/logs/?offset={size}" in body
    assert "&quot;Name&quot;: &quot;/web&quot;" in body
    assert "0.0.0.0:8080 → 80/tcp" in body  # its published ports
    # follow: only what was written since
    with log.open("a") as f:
        f.write(json.dumps({"log": "more\n", "stream": "stdout", "time": "x"}) + "\n")
        f.write('{"log": "half')
    chunk = client.get(f"/containers/{CID}/logs/?offset={size}").content.decode()
    assert chunk.count("log-line") == 1 and "more" in chunk and "half" not in chunk


@pytest.mark.django_db
def test_it_stops_following_logs_of_a_stopped_container(client, settings, tmp_path):
    settings.DOCKWEB_ROOT = tmp_path
    make_container("exited")
    chunk = client.get(f"/containers/{CID}/logs/?offset=0").content.decode()
    assert "hx-trigger" not in chunk


@pytest.mark.django_db
def test_it_404s_for_an_unknown_container(client):
    assert client.get("/containers/nope/").status_code == 404


@pytest.mark.django_db
def test_it_prefills_the_run_form_and_queues_a_run(client, no_broker):
    image = Image.objects.create(image_id="sha256:" + "ab" * 32, created=timezone.now())
    repo = Repository.objects.create(name="docker.io/library/busybox", familiar_name="busybox")
    Reference.objects.create(repository=repo, tag="latest", image=image)
    body = client.get("/containers/run/?image=busybox:latest").content.decode()
    assert 'value="busybox:latest"' in body and '<option value="busybox:latest">' in body
    response = client.post("/containers/run/", {
        "image": "busybox:latest", "command": "sh -c 'echo hi'", "env": "A=1\n\nB=2",
        "volumes": "data:/data", "name": "hi", "network": "host", "auto_remove": "1",
        "memory": "64m", "cpus": "0.5", "add_host": "db:10.0.0.5\n", "read_only": "1",
        "publish": "8080:80\n127.0.0.1::9000", "restart": "no",
    })
    op = ContainerOperation.objects.get()
    assert response["Location"] == f"/containers/operations/{op.pk}/"
    assert op.kind == "run"
    assert op.args["cmd"] == ["sh", "-c", "echo hi"]
    assert op.args["env"] == ["A=1", "B=2"] and op.args["volumes"] == ["data:/data"]
    assert op.args["network"] == "host" and op.args["auto_remove"] is True
    assert (op.args["memory"], op.args["cpus"], op.args["add_host"], op.args["read_only"]) == (
        "64m", "0.5", ["db:10.0.0.5"], True
    )
    assert op.args["publish"] == ["8080:80", "127.0.0.1::9000"]
    assert op.args["restart"] == "no"


@pytest.mark.django_db
def test_it_shows_run_form_mistakes(client):
    response = client.post("/containers/run/", {"image": "busybox", "volumes": "data:rel"})
    assert response.status_code == 400
    assert "invalid volume specification: &#x27;data:rel&#x27;" in response.content.decode()
    for field, value, message in [
        ("memory", "1m", "Minimum memory limit allowed is 6MB"),
        ("memory", "lots", "invalid size: &#x27;lots&#x27;"),
        ("cpus", "x", "failed to parse x as a rational number"),
        ("add_host", "db", "bad format for add-host"),
        ("publish", "80:x", "Invalid containerPort: x"),
        ("restart", "sometimes", "invalid restart policy &#x27;sometimes&#x27;"),
    ]:
        response = client.post("/containers/run/", {"image": "busybox", field: value})
        assert response.status_code == 400 and message in response.content.decode()
    response = client.post(
        "/containers/run/", {"image": "busybox", "restart": "always", "auto_remove": "1"}
    )
    assert "Conflicting options: --restart and --rm" in response.content.decode()
    assert not ContainerOperation.objects.exists()


@pytest.mark.django_db
def test_it_polls_an_operation_only_while_active(client):
    op = ContainerOperation.objects.create(kind="stop", args={"container": CID})
    status = re.compile(r'<section id="operation-status"[^>]*>')
    body = client.get(f"/containers/operations/{op.pk}/").content.decode()
    assert f'hx-trigger="sse:container_operation-{op.pk}, live:resync, every' in (
        status.search(body).group(0)
    )
    op.status = "failed"
    op.error = "Container x is not running"
    op.save()
    body = client.get(f"/containers/operations/{op.pk}/").content.decode()
    assert "hx-trigger" not in status.search(body).group(0)
    assert "Container x is not running" in body


@pytest.mark.django_db
def test_it_lists_volumes_and_previews_prune(client):
    make_container(mounts=[{"Type": "volume", "Name": "used", "Destination": "/d"}])
    Volume.objects.create(name="used", mountpoint="/v/used/_data")
    Volume.objects.create(name="spare", mountpoint="/v/spare/_data")
    body = client.get("/volumes/").content.decode()
    assert "used" in body and "spare" in body
    preview = client.get("/volumes/prune/").content.decode()
    will = preview.split("Will be removed")[1].split("Kept")[0]
    assert "spare" in will and "used" not in will
    response = client.post("/volumes/prune/")
    op = ContainerOperation.objects.get()
    assert op.kind == "volume_prune" and response["Location"] == f"/containers/operations/{op.pk}/"


@pytest.mark.django_db
def test_it_speaks_chinese(client):
    make_container()
    body = client.get("/containers/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "运行容器" in body
