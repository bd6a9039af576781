"""Host access is an admin's right on the web side (access/hostaccess.py): the attacks of
issue 17 as an operator — the Run form with ``/:/host``, a missing host path, the host's
network, ``--mount type=bind``, added capabilities and unconfined security options — are
refused before anything is queued; ``DOCKWEB_BIND_ROOTS`` lets operators bind-mount existing
paths under it (``..`` and symlinks cannot lead out); the worker checks again, as root, and
never creates a missing source for them. Real busybox containers for the worker's side."""

from __future__ import annotations

import os

import pytest

from access import hostaccess
from access.models import AuditEvent
from access.roles import ADMIN, OPERATOR, set_role
from containers import services
from containers.models import Container, ContainerOperation
from images import services as image_services
from tests.support import images as im

PASSWORD = "a-long-test-password-42"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Queued runs stay queued: the worker's side is run in this process where wanted."""
    from containers import tasks

    monkeypatch.setattr(tasks.run_operation, "delay", lambda pk: None)


@pytest.fixture
def make_client(django_user_model):
    from django.test import Client

    def make(role: str):
        user = django_user_model.objects.create_user(role, password=PASSWORD)
        set_role(user, role)
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return make


def run_form(client, **fields):
    return client.post("/containers/run/", {"image": "busybox", **fields})


# --- the form (pages) ---------------------------------------------------------------------


@pytest.mark.django_db
def test_an_operator_cannot_bind_mount_the_hosts_root(make_client, settings):
    settings.DOCKWEB_BIND_ROOTS = []
    operator = make_client(OPERATOR)
    response = run_form(operator, volumes="/:/host", command="cat /host/etc/shadow")
    body = response.content.decode()
    assert response.status_code == 400
    assert "/: bind mounts of host paths need the admin role" in body
    assert not ContainerOperation.objects.exists()
    refused = AuditEvent.objects.get(action="container.run_refused")
    assert (refused.actor, refused.target) == ("operator", "busybox")
    assert "bind mounts of host paths" in refused.detail["reason"]
    # the form says so before anyone tries
    page = operator.get("/containers/run/").content.decode()
    assert "Host paths need the admin role: use named volumes." in page
    assert '<option value="host" disabled>' in page


@pytest.mark.django_db
def test_an_operator_cannot_create_a_missing_host_path(make_client, settings, tmp_path):
    missing = tmp_path / "nonexistent-path"
    operator = make_client(OPERATOR)
    settings.DOCKWEB_BIND_ROOTS = []
    response = run_form(operator, volumes=f"{missing}:/x")
    assert response.status_code == 400 and "need the admin role" in response.content.decode()
    # even under a bind root: the source must exist, and is not made
    settings.DOCKWEB_BIND_ROOTS = [str(tmp_path)]
    response = run_form(operator, volumes=f"{missing}:/x")
    assert response.status_code == 400
    assert "bind source path does not exist" in response.content.decode()
    assert not missing.exists() and not ContainerOperation.objects.exists()


@pytest.mark.django_db
def test_an_operator_cannot_use_the_hosts_network(make_client):
    response = run_form(make_client(OPERATOR), network="host")
    assert response.status_code == 400
    assert (
        "network=host: the host&#x27;s network is host access, which needs the admin role "
        "(you are operator)." in response.content.decode()
    )
    assert not ContainerOperation.objects.exists()


@pytest.mark.django_db
def test_an_operator_keeps_named_volumes_and_an_admin_keeps_everything(make_client, tmp_path):
    response = run_form(make_client(OPERATOR), volumes="data:/data\n/anon")
    assert response.status_code == 302
    op = ContainerOperation.objects.get()
    assert op.args["volumes"] == ["data:/data", "/anon"] and op.args["host_access"] is False
    op.delete()
    admin = make_client(ADMIN)
    assert run_form(admin, volumes="/:/host", network="host").status_code == 302
    op = ContainerOperation.objects.get()
    assert op.args["volumes"] == ["/:/host"] and op.args["network"] == "host"
    assert op.args["host_access"] is True
    assert '<option value="host">' in admin.get("/containers/run/").content.decode()


@pytest.mark.django_db
def test_bind_roots_let_operators_in_but_not_out(make_client, settings, tmp_path):
    shared = tmp_path / "shared"
    (shared / "in").mkdir(parents=True)
    (shared / "out").symlink_to("/")
    (shared / "inner").symlink_to(shared / "in")
    settings.DOCKWEB_BIND_ROOTS = [str(shared)]
    operator = make_client(OPERATOR)
    for escape in (f"{shared}/out", f"{shared}/in/../..", f"{shared}/../", "/etc"):
        response = run_form(operator, volumes=f"{escape}:/x")
        body = response.content.decode()
        assert response.status_code == 400, escape
        assert f"operators may bind-mount only host paths under {shared}" in body, escape
    assert not ContainerOperation.objects.exists()
    assert f"only existing ones under {shared}" in operator.get("/containers/run/").content.decode()
    for inside in (f"{shared}/in", f"{shared}/inner", str(shared)):
        assert run_form(operator, volumes=f"{inside}:/x:ro").status_code == 302, inside
    assert ContainerOperation.objects.count() == 3


@pytest.mark.django_db
def test_the_shared_check_covers_mount_flags_capabilities_and_security_opts(make_client):
    """The check runs on the parsed spec: ``--mount type=bind`` is the same bind mount, and
    the rules for options the form does not offer yet hold when a spec carries them."""
    operator = make_client(OPERATOR).user
    spec = services.build_spec("busybox", None, mount=["type=bind,src=/,dst=/host"])
    with pytest.raises(hostaccess.HostAccessRefused, match="bind mounts of host paths"):
        hostaccess.check(spec, operator)
    spec = services.build_spec("busybox", None, cap_add=["CHOWN"])  # a default one: no-op
    hostaccess.check(spec, operator)
    for attrs, message in [
        ({"cap_add": ["SYS_ADMIN"]}, "cap_add=SYS_ADMIN: an added capability"),
        ({"cap_add": ["ALL"]}, "cap_add=ALL"),
        ({"devices": ["/dev/sda"]}, "device=/dev/sda: a host device"),
        ({"privileged": True}, "privileged=privileged"),
        ({"security_opt": ["seccomp=unconfined"]}, "security_opt=seccomp=unconfined"),
        ({"security_opt": ["apparmor:unconfined"]}, "security_opt=apparmor:unconfined"),
        ({"security_opt": ["seccomp=/etc/profile.json"]}, "switching confinement off"),
    ]:
        spec = services.build_spec("busybox", None)
        for name, value in attrs.items():
            setattr(spec, name, value)
        with pytest.raises(hostaccess.HostAccessRefused, match=message):
            hostaccess.check(spec, operator)
        hostaccess.check(spec, None, admin=True)  # an admin's
    spec = services.build_spec("busybox", None)
    spec.security_opt = ["no-new-privileges", "seccomp=builtin", "apparmor=docker-default"]
    hostaccess.check(spec, operator)  # Docker's defaults, or tighter, are anyone's
    spec.security_opt = ["label=disable"]
    with pytest.raises(hostaccess.HostAccessRefused, match="label=disable"):
        hostaccess.check(spec, operator)
    # as written, before a parser reads the profile file it names
    with pytest.raises(hostaccess.HostAccessRefused, match="seccomp=/etc/shadow"):
        hostaccess.check_options({"security_opt": ["seccomp=/etc/shadow"]}, operator)
    with pytest.raises(hostaccess.HostAccessRefused, match="privileged"):
        hostaccess.check_options({"privileged": True}, operator)
    hostaccess.check_options({"security_opt": ["seccomp=/etc/shadow"]}, None, admin=True)


def test_a_bind_root_must_be_absolute(monkeypatch):
    import subprocess
    import sys

    from tests.support.worker import REPO_ROOT

    env = {**os.environ, "DOCKWEB_BIND_ROOTS": "srv/data"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ.setdefault("
            "'DJANGO_SETTINGS_MODULE', 'dockweb.settings'); django.setup()",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "DOCKWEB_BIND_ROOTS" in proc.stderr


# --- the worker (root, real containers) ---------------------------------------------------


@pytest.fixture
def busybox(registry, settings, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("containers need root")
    settings.DOCKWEB_ROOT = tmp_path / "store"
    im.push_image(registry.host, "hostaccess/busybox", "1", im.busybox_base())
    ref = f"{registry.host}/hostaccess/busybox:1"
    image_services.pull_image(ref)
    yield ref
    mgr = services.get_manager()
    for c in mgr.list(all=True):
        mgr.remove(c.id, force=True, volumes=True)


def run_queued(op: ContainerOperation) -> ContainerOperation:
    services.run_operation(op.pk)
    op.refresh_from_db()
    return op


@pytest.mark.django_db(transaction=True)
def test_the_worker_checks_again_and_never_creates_an_operators_source(
    busybox, make_client, settings, tmp_path
):
    shared = tmp_path / "shared"
    (shared / "data").mkdir(parents=True)
    (shared / "data" / "hello").write_text("from the host\n")
    settings.DOCKWEB_BIND_ROOTS = [str(shared)]
    operator = make_client(OPERATOR)
    # accepted: an existing directory under the root, seen by the container
    assert (
        run_form(
            operator,
            image=busybox,
            command="cat /x/hello",
            volumes=f"{shared}/data:/x",
            name="inside",
        ).status_code
        == 302
    )
    op = run_queued(ContainerOperation.objects.get())
    assert op.status == "done", op.error
    assert services.get_manager().wait("inside") == 0
    logs = [line for _stream, line, _t in services.container_logs("inside")]
    assert logs == ["from the host\n"]
    # swapped for a symlink to / after the form accepted it: the worker refuses
    assert (
        run_form(operator, image=busybox, volumes=f"{shared}/data:/x", name="swapped").status_code
        == 302
    )
    op = ContainerOperation.objects.latest("pk")
    (shared / "data" / "hello").unlink()
    (shared / "data").rmdir()
    (shared / "data").symlink_to("/")
    op = run_queued(op)
    assert op.status == "failed" and "operators may bind-mount only host paths" in op.error
    assert not Container.objects.filter(name="swapped").exists()
    # removed after the form accepted it: not made again
    (shared / "data").unlink()
    (shared / "gone").mkdir()
    assert (
        run_form(operator, image=busybox, volumes=f"{shared}/gone:/x", name="gone").status_code
        == 302
    )
    op = ContainerOperation.objects.latest("pk")
    (shared / "gone").rmdir()
    op = run_queued(op)
    assert op.status == "failed" and "bind source path does not exist" in op.error
    assert not (shared / "gone").exists()


@pytest.mark.django_db(transaction=True)
def test_an_operators_container_never_makes_its_source_again_at_start(
    busybox, make_client, settings, tmp_path
):
    """A stopped container whose bind source was removed since: ``-v`` (an admin's, as
    dockerd's) makes it again at start; an operator's fails to start."""
    shared = tmp_path / "shared"
    (shared / "mine").mkdir(parents=True)
    (shared / "admins").mkdir()
    settings.DOCKWEB_BIND_ROOTS = [str(shared)]
    for client, name in ((make_client(OPERATOR), "mine"), (make_client(ADMIN), "admins")):
        assert (
            run_form(
                client, image=busybox, command="true", volumes=f"{shared}/{name}:/x", name=name
            ).status_code
            == 302
        )
        op = run_queued(ContainerOperation.objects.latest("pk"))
        assert op.status == "done", op.error
        assert services.get_manager().wait(name) == 0
        (shared / name).rmdir()
    with pytest.raises(Exception, match="bind source path does not exist"):
        services.start_container("mine")
    assert not (shared / "mine").exists()
    services.start_container("admins")
    assert (shared / "admins").is_dir()
