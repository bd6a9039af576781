"""What a viewer reads (issue 17, item 6), repeating the attacks: a container's env values
in its inspect JSON, build-argument values in a real build's history, output and
Dockerfile, registry usernames, host paths in a real operation's error — all masked for a
viewer and shown to operators; a demoted user's open console closed at once; top/diff/stats
snapshots in the audit log."""

from __future__ import annotations

import base64
import json
import os
import threading
import time

import pytest
import redis
from django.test import Client
from django.utils import timezone

from access import masking
from access.models import AuditEvent
from access.roles import ADMIN, OPERATOR, VIEWER, set_role
from containers import services as container_services
from containers.models import ConsoleSession, Container, ContainerOperation
from dockweb import jobs
from images import credentials
from images import services as image_services
from images.models import Image
from tests.support import images as im

PASSWORD = "a-long-test-password-42"
DB_PASSWORD = "hunter2-db-secret"
TOKEN = "s3cret-build-token"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers and builds need root")
needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set: run the tests with scripts/test"
)


@pytest.fixture
def make_client(django_user_model):
    def make(role: str, name: str | None = None) -> Client:
        user = django_user_model.objects.create_user(name or role, password=PASSWORD)
        set_role(user, role)
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return make


@pytest.fixture
def busybox(registry, settings, tmp_path, monkeypatch):
    settings.DOCKWEB_ROOT = tmp_path / "store"
    settings.DOCKWEB_DATA = tmp_path / "data"
    monkeypatch.setattr(jobs, "enqueue", lambda row: None)  # the test runs what it queues
    im.push_image(registry.host, "secrets/busybox", "1", im.busybox_base())
    ref = f"{registry.host}/secrets/busybox:1"
    image_services.pull_image(ref)
    yield ref
    mgr = container_services.get_manager()
    for c in mgr.list(all=True):
        mgr.remove(c.id, force=True, volumes=True)


# --- env values ---------------------------------------------------------------------------


@needs_root
@pytest.mark.django_db(transaction=True)
def test_a_viewer_reads_env_names_not_values_in_inspect(busybox, make_client, settings):
    cid = container_services.run_container(
        container_services.build_spec(
            busybox, ["true"], name="db", env=[f"DB_PASSWORD={DB_PASSWORD}", "MODE=prod"]
        )
    )
    container_services.wait_container(cid)
    store = str(settings.DOCKWEB_ROOT)
    assert DB_PASSWORD in json.dumps(Container.objects.get(container_id=cid).inspect)
    viewer = make_client(VIEWER).get(f"/containers/{cid}/").content.decode()
    assert "&quot;DB_PASSWORD=••••&quot;" in viewer and "&quot;MODE=••••&quot;" in viewer
    assert DB_PASSWORD not in viewer and "prod" not in viewer
    assert store not in viewer and "&lt;store&gt;/containers/" in viewer  # LogPath and the like
    operator = make_client(OPERATOR).get(f"/containers/{cid}/").content.decode()
    assert f"&quot;DB_PASSWORD={DB_PASSWORD}&quot;" in operator


# --- build arguments ----------------------------------------------------------------------


@needs_root
@pytest.mark.django_db(transaction=True)
def test_a_viewer_reads_no_build_argument_values(busybox, make_client, registry):
    build = image_services.start_build(
        f"FROM {busybox}\nARG TOKEN=default-token-value\nENV DB_PASSWORD={DB_PASSWORD}\n"
        'RUN echo "token is $TOKEN" && echo "$TOKEN" > /t\n',
        tags=["secrets:1"],
        build_args={"TOKEN": TOKEN},
    )
    image_services.run_build(build.pk)
    build.refresh_from_db()
    assert build.status == "done", build.error
    assert f"token is {TOKEN}" in build.output  # what the attack read
    image_hex = build.image_id.removeprefix("sha256:")
    secrets = (TOKEN, DB_PASSWORD, "default-token-value")

    viewer = make_client(VIEWER)
    pages = {
        "build": viewer.get(f"/builds/{build.pk}/").content.decode(),
        "image": viewer.get(f"/images/{image_hex}/").content.decode(),
        "api": viewer.get(f"/api/images/{image_hex}/").content.decode(),
    }
    layers = Image.objects.get(image_id=build.image_id).layers.count()
    for position in range(layers):  # the layer pages (the RUN's is the last)
        response = viewer.get(f"/images/{image_hex}/layers/{position}/")
        assert response.status_code == 200
        pages[f"layer {position}"] = response.content.decode()
    assert "|1 TOKEN=•••• /bin/sh -c" in pages[f"layer {layers - 1}"]
    for name, body in pages.items():
        for secret in secrets:
            assert secret not in body, (name, secret)
    assert "ARG TOKEN=••••" in pages["build"] and "ENV DB_PASSWORD=••••" in pages["build"]
    assert "token is ••••" in pages["build"]
    assert "|1 TOKEN=•••• /bin/sh -c" in pages["image"]
    assert "DB_PASSWORD=••••" in pages["image"]
    detail = json.loads(pages["api"])
    assert "DB_PASSWORD=••••" in detail["config"]["Env"]
    assert any(h["created_by"].startswith("|1 TOKEN=•••• ") for h in detail["history"])

    operator = make_client(OPERATOR)
    body = operator.get(f"/images/{image_hex}/").content.decode()
    assert f"|1 TOKEN={TOKEN} /bin/sh -c" in body and f"DB_PASSWORD={DB_PASSWORD}" in body
    assert f"token is {TOKEN}" in operator.get(f"/builds/{build.pk}/").content.decode()
    api = operator.get(f"/api/images/{image_hex}/").json()
    assert f"DB_PASSWORD={DB_PASSWORD}" in api["config"]["Env"]


def test_it_masks_dockerfiles_and_history_commands():
    assert masking.dockerfile(
        'FROM x\nARG A=1\narg B\nENV C="a b" D=2 \\\n    E=3\nENV F legacy value\nRUN echo $A\n'
    ) == ("FROM x\nARG A=••••\narg B\nENV C=•••• D=•••• \\\n    E=••••\nENV F ••••\nRUN echo $A\n")
    assert masking.created_by("|2 A=1 B=two /bin/sh -c echo $A") == (
        "|2 A=•••• B=•••• /bin/sh -c echo $A"
    )
    assert masking.created_by("/bin/sh -c #(nop)  ENV PATH=/usr/bin") == (
        "/bin/sh -c #(nop)  ENV PATH=••••"
    )
    assert masking.created_by('/bin/sh -c #(nop)  CMD ["sh"]') == '/bin/sh -c #(nop)  CMD ["sh"]'
    assert masking.values("a 1 and abcd", ["1", "abcd"]) == "a 1 and ••••"


# --- registry usernames -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_viewer_reads_no_registry_username(make_client):
    credentials.save_credential("registry.test:5000", "deploy-bot-7", "a-token")
    body = make_client(VIEWER).get("/registries/").content.decode()
    assert "registry.test:5000" in body and "deploy-bot-7" not in body and "••••" in body
    assert "deploy-bot-7" in make_client(ADMIN).get("/registries/").content.decode()


# --- host paths ---------------------------------------------------------------------------


@needs_root
@pytest.mark.django_db(transaction=True)
def test_a_viewer_reads_no_host_path_in_an_error(busybox, make_client, settings):
    made = container_services.start_operation(
        ContainerOperation.Kind.VOLUME_CREATE, {"name": "kept", "labels": []}
    )
    container_services.run_operation(made.pk)  # listed with its mount point
    op = container_services.start_operation(
        ContainerOperation.Kind.VOLUME_CREATE, {"name": "v" * 300, "labels": []}
    )
    container_services.run_operation(op.pk)
    op.refresh_from_db()
    store = str(settings.DOCKWEB_ROOT)
    assert store in make_client(ADMIN).get("/volumes/").content.decode()  # kept's mount point
    assert op.status == "failed" and store in op.error  # the attack: File name too long
    for url in (f"/containers/operations/{op.pk}/", "/volumes/"):
        body = make_client(VIEWER, f"viewer-{len(url)}").get(url).content.decode()
        assert store not in body, url
    body = make_client(VIEWER, "v2").get(f"/containers/operations/{op.pk}/").content.decode()
    assert "&lt;store&gt;/volumes/" in body
    assert store in make_client(OPERATOR).get(f"/containers/operations/{op.pk}/").content.decode()


@pytest.mark.django_db
def test_the_api_hides_host_paths_in_errors_from_viewers(make_client, settings):
    from images.models import Pull

    pull = Pull.objects.create(
        reference="x:1",
        normalized="docker.io/library/x:1",
        status="failed",
        error=f"write {settings.DOCKWEB_ROOT}/blobs/sha256/ab: no space left on device",
    )
    for url in (f"/api/pulls/{pull.pk}/", "/api/pulls/"):
        body = make_client(VIEWER, f"viewer{len(url)}").get(url).content.decode()
        assert str(settings.DOCKWEB_ROOT) not in body and "<store>/blobs/sha256/ab" in body
    assert (
        str(settings.DOCKWEB_ROOT)
        in make_client(OPERATOR).get(f"/api/pulls/{pull.pk}/").json()["error"]
    )


# --- consoles of a demoted user -------------------------------------------------------------


CID = "5e" * 32


@pytest.fixture
def r():
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    client.close()


def _console_of(user) -> ConsoleSession:
    now = timezone.now()
    Container.objects.get_or_create(
        container_id=CID,
        defaults=dict(
            name="web",
            image="busybox",
            image_id="sha256:" + "ab" * 32,
            path="sh",
            args=[],
            status="running",
            created=now,
            started_at=now,
        ),
    )
    return ConsoleSession.objects.create(
        container_id=CID, user=user, status=ConsoleSession.Status.RUNNING
    )


def _queued(r, session) -> list[dict]:
    return [json.loads(m) for m in r.lrange(session.queue_in, 0, -1)]


def _closed(r, session) -> bool:
    """Whether the worker was asked to end the session (once or more: set_role removes
    and adds groups, each a change)."""
    queued = _queued(r, session)
    return bool(queued) and all(m == {"t": "close"} for m in queued)


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_demoted_users_console_closes_at_once(make_client, r):
    operator = make_client(OPERATOR)
    user = operator.user
    session = _console_of(user)
    response = operator.get(f"/containers/consoles/{session.session_id}/stream/")
    chunks = iter(response.streaming_content)
    assert next(chunks) == b": connected\n\n"
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(chunks), daemon=True)
    reader.start()
    # output flows while the user is an operator
    r.publish(session.channel_out, json.dumps({"t": "out", "d": base64.b64encode(b"$ ").decode()}))
    set_role(user, OPERATOR)  # setting the same role again closes nothing
    assert _queued(r, session) == []
    started = time.monotonic()
    set_role(user, VIEWER)
    # the worker is told at once (it ends the shell within its next second)...
    assert _queued(r, session)[:1] == [{"t": "close"}]
    # ...and the stream stops serving the demoted user within its role check
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert time.monotonic() - started < 5
    events = b"".join(got).decode()
    assert events.startswith("event: out\ndata: JCA=\n\n")
    assert "event: end" in events and "your role no longer allows consoles" in events
    # and cannot be opened again
    assert operator.get(f"/containers/consoles/{session.session_id}/stream/").status_code == 403
    assert (
        operator.post(
            f"/containers/consoles/{session.session_id}/input/", {"data": "id\r"}
        ).status_code
        == 403
    )


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_every_way_of_losing_the_role_closes_consoles(make_client, django_user_model, r):
    from django.contrib.auth.models import Group, Permission

    users = [make_client(OPERATOR, f"op{i}").user for i in range(4)]
    sessions = [_console_of(u) for u in users]
    operators = Group.objects.get(name=OPERATOR)
    users[0].groups.remove(operators)  # Django admin's user form
    operators.user_set.remove(users[1])  # the group's side
    users[2].is_active = False
    users[2].save()
    assert [_closed(r, s) for s in sessions] == [True, True, True, False]
    # the operator group losing its permission demotes everyone in it
    operators.permissions.remove(Permission.objects.get(codename="operate"))
    assert _closed(r, sessions[3])
    # a deleted user's console closes too (its row goes with the user)
    admin = make_client(ADMIN, "boss")
    s = _console_of(admin.user)
    admin.user.delete()
    assert _closed(r, s)
    # a queued session that never started is ended on the spot
    operators.permissions.add(Permission.objects.get(codename="operate"))
    fresh = make_client(OPERATOR, "fresh").user
    waiting = ConsoleSession.objects.create(container_id=CID, user=fresh)
    set_role(fresh, VIEWER)
    waiting.refresh_from_db()
    assert waiting.status == ConsoleSession.Status.ENDED


def _decoded(events: bytes) -> str:
    """The pty's output in a console's SSE stream."""
    out = b""
    for block in events.decode().split("\n\n"):
        if block.startswith("event: out\ndata: "):
            out += base64.b64decode(block.split("data: ", 1)[1])
    return out.decode(errors="replace")


@needs_root
@needs_redis
def test_a_demoted_users_real_console_ends(live_worker, registry, make_client, settings):
    """End to end: a real worker pumps a real shell in a busybox container; demoting its
    user ends the shell and the stream (the container keeps running)."""
    im.push_image(registry.host, "secrets/console", "1", im.busybox_base())
    ref = f"{registry.host}/secrets/console:1"
    image_services.pull_image(ref)  # into the worker's store (settings.DOCKWEB_ROOT)
    cid = container_services.run_container(
        container_services.build_spec(ref, ["sleep", "300"], name="shell-host")
    )
    try:
        operator = make_client(OPERATOR)
        response = operator.post(f"/containers/{cid}/console/", {"shell": "/bin/sh"})
        sid = response["Location"].rstrip("/").split("/")[-1]
        stream = operator.get(f"/containers/consoles/{sid}/stream/")
        chunks = iter(stream.streaming_content)
        assert next(chunks) == b": connected\n\n"
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.extend(chunks), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while "hi-42" not in _decoded(b"".join(got)):
            assert time.monotonic() < deadline, f"no shell output: {b''.join(got)!r}"
            operator.post(f"/containers/consoles/{sid}/input/", {"data": "echo hi-$((6*7))\r"})
            time.sleep(1)
        set_role(operator.user, VIEWER)
        started = time.monotonic()
        reader.join(timeout=15)
        assert not reader.is_alive(), "the stream went on after the demotion"
        session = ConsoleSession.objects.get(session_id=sid)
        while session.is_active and time.monotonic() - started < 15:
            time.sleep(0.2)
            session.refresh_from_db()
        assert session.status == ConsoleSession.Status.ENDED, (session.status, session.error)
        assert time.monotonic() - started < 15
        assert container_services.get_manager().get(cid).state.status.value == "running"
    finally:
        container_services.get_manager().remove(cid, force=True, volumes=True)


# --- snapshots in the audit log -------------------------------------------------------------


@pytest.mark.django_db
def test_snapshots_are_audited(make_client, monkeypatch):
    from containers import tasks

    monkeypatch.setattr(tasks.run_operation, "delay", lambda pk: None)
    now = timezone.now()
    Container.objects.create(
        container_id=CID,
        name="web",
        image="busybox",
        image_id="sha256:" + "ab" * 32,
        path="sh",
        args=[],
        status="running",
        created=now,
        started_at=now,
    )
    operator = make_client(OPERATOR)
    for kind in ("top", "diff", "stats"):
        assert operator.post(f"/containers/{CID}/{kind}/").status_code == 302
    rows = AuditEvent.objects.filter(
        action__in=["container.top", "container.diff", "container.stats"]
    )
    assert sorted(rows.values_list("action", "actor", "target")) == [
        ("container.diff", "operator", "web"),
        ("container.stats", "operator", "web"),
        ("container.top", "operator", "web"),
    ]
    ops = set(ContainerOperation.objects.values_list("pk", flat=True))
    assert {row.detail["operation"] for row in rows} == ops
