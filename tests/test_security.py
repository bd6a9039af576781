"""Web security: roles on every state-changing endpoint, CSRF and methods on every route,
the audit log, and the production settings passing Django's deployment checks.

Routes are walked from the URL map (tests.test_web_skeleton.routes), so an endpoint added
later is covered without editing this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import resolve

from access.models import AuditEvent
from access.roles import ADMIN, OPERATOR, VIEWER, set_role
from tests.test_web_skeleton import PUBLIC_ROUTES, routes

PASSWORD = "a-long-test-password-42"

# Pages that show a form on GET and change something on POST; every other state-changing
# endpoint must refuse GET.
FORM_PAGES = {
    "images:pull",
    "images:build",
    "images:registries",
    "containers:run",
    "containers:console",
    "volumes:list",
    "volumes:prune",
    "networks:list",
    "networks:prune",
    "disk:prune",
    "api:pulls",
}
# Pages a viewer reads; they show a viewer no action.
VIEWER_PAGES = (
    "/",
    "/pull/",
    "/registries/",
    "/containers/",
    "/containers/run/",
    "/volumes/",
    "/volumes/prune/",
    "/networks/",
    "/networks/prune/",
    "/disk/",
    "/disk/prune/",
)
# Routes with rules of their own: sign-in/out, the language switch, Django's admin (which
# checks its own permissions on staff users).
OWN_RULES = PUBLIC_ROUTES | {"set_language"}


def app_routes() -> list[tuple[str, str]]:
    return [
        (name, path)
        for name, path in routes()
        if name not in OWN_RULES and not name.startswith("admin:")
    ]


def required_role(path: str) -> str | None:
    return getattr(resolve(path).func, "required_role", None)


def gated_routes() -> list[tuple[str, str, str]]:
    return [(n, p, required_role(p)) for n, p in app_routes() if required_role(p)]


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Queued work stays queued: these tests look at who may queue it, not at the worker."""
    from containers import tasks as container_tasks
    from images import tasks as image_tasks

    for task in (image_tasks.pull_image, image_tasks.run_operation, container_tasks.run_operation):
        monkeypatch.setattr(task, "delay", lambda *a, **kw: None)


@pytest.fixture
def make_user(django_user_model):
    def make(role: str, name: str | None = None):
        user = django_user_model.objects.create_user(name or role, password=PASSWORD)
        set_role(user, role)
        return user

    return make


@pytest.fixture
def as_role(make_user):
    def client_for(role: str, **kw) -> Client:
        client = Client(**kw)
        client.force_login(make_user(role))
        return client

    return client_for


# --- the walk --------------------------------------------------------------------------


def test_it_finds_the_state_changing_endpoints():
    gated = {name for name, _, _ in gated_routes()}
    assert {
        "images:pull",
        "images:remove",
        "images:tag",
        "images:registries",
        "containers:run",
        "containers:action",
        "volumes:prune",
        "networks:list",
        "networks:remove",
        "networks:prune",
        "networks:connect",
        "networks:disconnect",
        "api:pulls",
        "api:image_remove",
    } <= gated


@pytest.mark.django_db
def test_it_refuses_every_post_without_a_csrf_token(as_role):
    client = as_role(ADMIN, enforce_csrf_checks=True)
    for name, path in routes():
        if name in PUBLIC_ROUTES:
            continue
        response = client.post(path, {"target": "x", "reference": "busybox"})
        assert response.status_code == 403, f"{name} {path} answered {response.status_code}"
        assert b"CSRF" in response.content, f"{name} {path}: not refused by the CSRF check"


@pytest.mark.django_db
def test_it_lets_a_viewer_post_nowhere(as_role):
    """Each route is either GET-only (405) or role-gated (403): a new endpoint that takes a
    POST without @role_required fails here."""
    client = as_role(VIEWER)
    for name, path in app_routes():
        response = client.post(path, {"target": "x", "reference": "busybox"})
        expected = 403 if required_role(path) else 405
        assert response.status_code == expected, f"{name} {path} answered {response.status_code}"


@pytest.mark.django_db
def test_it_refuses_get_on_state_changing_endpoints(as_role):
    client = as_role(ADMIN)
    for name, path, _ in gated_routes():
        if name in FORM_PAGES:
            continue
        response = client.get(path)
        assert response.status_code == 405, f"GET {name} {path} answered {response.status_code}"


@pytest.mark.django_db
def test_it_lets_a_viewer_read_every_page(as_role, settings, tmp_path):
    settings.DOCKWEB_ROOT = tmp_path / "store"
    client = as_role(VIEWER)
    for path in (*VIEWER_PAGES, "/api/images/", "/api/pulls/"):
        assert client.get(path).status_code == 200, path


# --- the role matrix -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("role", [VIEWER, OPERATOR, ADMIN])
def test_it_applies_the_role_matrix(as_role, role):
    client = as_role(role)
    rank = {VIEWER: 0, OPERATOR: 1, ADMIN: 2}
    for name, path, needed in gated_routes():
        response = client.post(path, {})
        if rank[role] < rank[needed]:
            assert response.status_code == 403, f"{role} POST {name} {path}"
            assert needed in response.content.decode(), f"{name}: the 403 does not say why"
        else:
            assert response.status_code != 403, f"{role} POST {name} {path} was refused"


@pytest.mark.django_db
def test_it_keeps_container_removal_for_admins(as_role):
    path = "/containers/abc/remove/"
    assert as_role(OPERATOR).post(path).status_code == 403
    assert as_role(ADMIN).post(path).status_code == 404  # allowed; there is no such container
    # an operator may still stop one
    assert Client().post("/containers/abc/stop/").status_code == 302  # anonymous: to login


@pytest.mark.django_db
def test_it_answers_the_api_with_a_json_403(as_role):
    response = as_role(VIEWER).post("/api/pulls/", {"reference": "busybox"})
    assert response.status_code == 403
    assert response.json()["required_role"] == OPERATOR
    assert "operator" in response.json()["error"]


@pytest.mark.django_db
def test_it_explains_a_refusal_on_the_page(as_role):
    response = as_role(VIEWER).post("/pull/", {"reference": "busybox"})
    assert response.status_code == 403
    body = response.content.decode()
    assert "needs the operator role and you are viewer" in body
    assert "Ask an admin" in body


@pytest.mark.django_db
def test_it_shows_a_viewer_no_action_buttons(as_role, settings, tmp_path):
    settings.DOCKWEB_ROOT = tmp_path / "store"
    client = as_role(VIEWER)
    for path in VIEWER_PAGES:
        body = client.get(path).content.decode()
        forms = body.count('method="post"')
        # the language menu and "Log out" only
        assert forms == 2, f"{path} shows {forms - 2} action forms to a viewer"
        assert 'href="/pull/">Pull an image' not in body
        assert "Audit log" not in body


@pytest.mark.django_db
def test_it_treats_a_user_without_a_group_as_a_viewer(django_user_model):
    from access.roles import role_of

    user = django_user_model.objects.create_user("nobody", password=PASSWORD)
    assert role_of(user) == VIEWER
    client = Client()
    client.force_login(user)
    assert client.post("/pull/", {"reference": "busybox"}).status_code == 403


@pytest.mark.django_db
def test_it_makes_superusers_admins(django_user_model):
    from access.roles import role_of

    root = django_user_model.objects.create_superuser("root", password=PASSWORD)
    assert role_of(root) == ADMIN


# --- the audit log ---------------------------------------------------------------------


@pytest.mark.django_db
def test_it_audits_a_pull(as_role):
    response = as_role(OPERATOR).post("/pull/", {"reference": "busybox:1.36"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="image.pull")
    assert (event.actor, event.user.username, event.target) == (
        "operator",
        "operator",
        "busybox:1.36",
    )
    assert event.remote_addr == "127.0.0.1"
    assert event.detail["pull"] > 0


@pytest.mark.django_db
def test_it_audits_a_removal(as_role):
    response = as_role(ADMIN).post("/images/remove/", {"target": "busybox:1.36", "force": "1"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="image.remove")
    assert (event.actor, event.target, event.detail["force"]) == ("admin", "busybox:1.36", True)


@pytest.mark.django_db
def test_it_audits_a_run_without_env_values(as_role):
    response = as_role(OPERATOR).post(
        "/containers/run/",
        {"image": "busybox", "command": "sleep 5", "env": "PASSWORD=hunter2\nMODE=x"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="container.run")
    assert event.target == "busybox"
    assert event.detail["cmd"] == ["sleep", "5"]
    assert event.detail["env"] == ["PASSWORD", "MODE"]
    assert "hunter2" not in str(event.detail)


@pytest.mark.django_db
def test_it_audits_nothing_that_was_refused(as_role):
    as_role(VIEWER).post("/pull/", {"reference": "busybox"})
    as_role(OPERATOR).post("/images/remove/", {"target": "busybox"})
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_it_audits_credentials_without_the_secret(as_role):
    as_role(ADMIN).post(
        "/registries/",
        {"registry": "registry.example.com", "username": "bob", "password": "s3cret"},
    )
    event = AuditEvent.objects.get(action="registry.save")
    assert event.target == "registry.example.com"
    assert "s3cret" not in str(event.detail)


@pytest.mark.django_db
def test_it_shows_the_audit_log_to_admins_only(as_role):
    from access.audit import audit

    audit("cli:root", "image.pull", "busybox", exit=0)
    audit("cli:alice", "image.remove", "<script>alert(1)</script>")
    admin = as_role(ADMIN)
    body = admin.get("/audit/").content.decode()
    assert "cli:root" in body and "cli:alice" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert" not in body
    filtered = admin.get("/audit/?actor=cli:root").content.decode()
    assert "image.pull</td>" in filtered and "image.remove</td>" not in filtered
    filtered = admin.get("/audit/?action=image.remove").content.decode()
    assert "cli:alice</td>" in filtered and "cli:root</td>" not in filtered
    assert as_role(OPERATOR).get("/audit/").status_code == 403
    assert admin.get("/admin/access/auditevent/").status_code == 200


@pytest.mark.django_db
def test_it_records_cli_commands_as_the_unix_user(monkeypatch, settings, tmp_path):
    from access.audit import cli_actor
    from dockweb.cli import main as cli

    settings.DOCKWEB_ROOT = tmp_path / "store"
    monkeypatch.setattr(cli, "setup_django", lambda: None)
    code = cli.main(["rmi", "nosuch:image"])
    assert code == 1
    event = AuditEvent.objects.get()
    assert event.actor == cli_actor() and event.actor.startswith("cli:")
    assert (event.action, event.target, event.detail) == (
        "image.remove",
        "rmi nosuch:image",
        {"exit": 1},
    )
    cli.main(["images", "-q"])  # reading is not audited
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db
def test_it_creates_users_with_a_role_from_the_command_line(tmp_path, django_user_model):
    from django.core.management import call_command

    from access.roles import role_of

    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    call_command("createuser", "carol", "--role", "operator", "--password-file", str(secret))
    carol = django_user_model.objects.get(username="carol")
    assert role_of(carol) == OPERATOR and carol.check_password(PASSWORD)
    call_command("createuser", "carol", "--role", "admin")  # idempotent: changes the role
    carol = django_user_model.objects.get(username="carol")
    assert role_of(carol) == ADMIN and carol.is_staff
    assert AuditEvent.objects.filter(action__startswith="user.").count() == 2


# --- deployment ------------------------------------------------------------------------


def _manage(tmp_path: Path, extra_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DEBUG", "SECRET_KEY", "DOCKWEB_HTTPS", "DJANGO_ENV", "DATABASE_URL")
    }
    env.update(DOCKWEB_DATA=str(tmp_path), **extra_env)
    return subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR, "manage.py")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_passes_the_deployment_checks_in_production(tmp_path):
    result = _manage(
        tmp_path, {"DJANGO_ENV": "production"}, "check", "--deploy", "--fail-level", "WARNING"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_would_fail_the_deployment_checks_in_development(tmp_path):
    # the check above is real: without production mode the same command fails
    result = _manage(tmp_path, {}, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W004" in result.stderr


def test_it_refuses_debug_in_production(tmp_path):
    result = _manage(tmp_path, {"DJANGO_ENV": "production", "DEBUG": "true"}, "check")
    assert result.returncode != 0
    assert "DEBUG=true with DJANGO_ENV=production" in result.stderr


# --- Content-Security-Policy ------------------------------------------------------------


@pytest.mark.django_db
def test_it_sends_a_policy_that_refuses_inline_script(as_role):
    client = as_role(VIEWER)
    for path in ("/images/", "/containers/", "/disk/", "/login/"):
        policy = client.get(path)["Content-Security-Policy"]
        directives = dict(
            (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
        )
        assert directives["script-src"] == ["'self'"], policy
        assert directives["default-src"] == ["'self'"]
        assert directives["object-src"] == ["'none'"]
        assert directives["frame-ancestors"] == ["'none'"]
        assert "'unsafe-eval'" not in policy


def test_no_template_has_inline_script_or_handlers():
    """What the policy would refuse in a browser: an inline <script> or an on...= handler."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    templates = [
        p
        for p in root.rglob("*.html")
        if ".venv" not in p.parts and "node_modules" not in p.parts and "static" not in p.parts
    ]
    assert len(templates) > 20
    for path in templates:
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, f"{path}: inline script {tag}"
        handlers = re.findall(r"<[^>]*\son[a-z]+\s*=", text)
        assert not handlers, f"{path}: inline handler {handlers[0]}"
        assert "javascript:" not in text, path
