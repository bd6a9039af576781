"""The web skeleton: every page needs a login, login works, CSRF is enforced, admin is there."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from access.roles import set_role

PASSWORD = "a-long-test-password-42"

# The only routes an anonymous visitor may reach (admin:login is the admin's own form).
# the favicon is a static file anyone may fetch (it names nothing)
PUBLIC_ROUTES = {"login", "logout", "admin:login", "favicon"}

SAMPLE = {"uuid": "00000000-0000-0000-0000-000000000001"}


@pytest.fixture
def client() -> Client:
    """Anonymous, as pytest-django's (conftest's is signed in)."""
    return Client()


def routes(patterns=None, prefix: str = "", namespace: str = ""):
    """(name, path) for every route built with path(); converters get sample values."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if not isinstance(entry.pattern, RoutePattern):
            continue  # re_path routes (admin's app index and catch-all) need real values
        route = re.sub(
            r"<(?:(\w+):)?\w+>", lambda m: SAMPLE.get(m.group(1) or "", "1"), str(entry.pattern)
        )
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from routes(entry.url_patterns, prefix + route, ns)
        elif isinstance(entry, URLPattern):
            yield f"{namespace}{entry.name}", "/" + prefix + route


def login_redirects(path: str) -> set[str]:
    """Where an anonymous visitor to ``path`` may be sent: a login form, then back."""
    logins = {settings.LOGIN_URL}
    if path.startswith("/admin/"):
        # The admin site's own views send visitors to the admin's login form.
        logins.add("/admin/login/")
    return {f"{login}?next={quote(path)}" for login in logins}


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", password=PASSWORD)


def csrf_token_from(response) -> str:
    return response.cookies[settings.CSRF_COOKIE_NAME].value


def test_it_covers_the_dashboard_pages():
    names = {name for name, _ in routes()}
    assert {"home", "images:list", "images:pull", "containers:list", "admin:index"} <= names


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name, path", [r for r in routes() if r[0] not in PUBLIC_ROUTES], ids=lambda v: str(v)
)
def test_it_redirects_anonymous_visitors_to_login(client, name, path):
    response = client.get(path)
    assert response.status_code == 302, f"{name} {path} answered {response.status_code}"
    assert response["Location"] in login_redirects(path)


@pytest.mark.django_db
def test_it_redirects_anonymous_htmx_requests_to_login(client):
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


@pytest.mark.django_db
def test_it_shows_the_login_page(client):
    response = client.get("/login/")
    assert response.status_code == 200
    assert b'name="password"' in response.content


@pytest.mark.django_db
def test_it_logs_in_and_returns_to_the_page_asked_for(user):
    client = Client(enforce_csrf_checks=True)
    token = csrf_token_from(client.get("/login/?next=/containers/"))
    response = client.post(
        "/login/",
        {"username": "alice", "password": PASSWORD, "next": "/containers/"},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 302
    assert response["Location"] == "/containers/"
    assert client.get("/containers/").status_code == 200


@pytest.mark.django_db
def test_it_refuses_a_wrong_password(client, user):
    response = client.post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_it_refuses_login_without_csrf_token(user):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_it_refuses_a_signed_in_post_without_csrf_token(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/pull/", {"reference": "busybox"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_it_accepts_a_signed_in_post_with_the_htmx_csrf_header(user):
    set_role(user, "operator")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/pull/")
    # The token that base.html puts in <body hx-headers> is what htmx sends back.
    match = re.search(rb'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page.content)
    assert match, "no CSRF token in <body hx-headers>"
    response = client.post(
        "/pull/", {"reference": ""}, headers={"X-CSRFToken": match.group(1).decode()}
    )
    # past the CSRF check: the empty reference is refused by the view itself
    assert response.status_code == 400


@pytest.mark.django_db
def test_it_logs_out_on_post_only(client, user):
    client.force_login(user)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response["Location"] == "/login/"
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_it_lets_a_superuser_into_the_admin(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b"Site administration" in response.content
    assert client.get("/admin/auth/user/").status_code == 200


@pytest.mark.django_db
def test_it_keeps_the_audit_log_and_the_store_mirror_read_only_in_the_admin(client, admin_user):
    client.force_login(admin_user)
    for model in ("access/auditevent", "images/image", "images/layer", "images/pull"):
        assert client.get(f"/admin/{model}/").status_code == 200
        assert client.get(f"/admin/{model}/add/").status_code == 403


@pytest.mark.django_db
def test_it_keeps_a_plain_user_out_of_the_admin(client, user):
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_it_shows_navigation_and_vendored_htmx(client, user):
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    for href in (b'href="/"', b'href="/containers/"', b'href="/pull/"'):
        assert href in response.content
    assert b'src="/static/vendor/htmx/htmx.min.js"' in response.content
    assert b"cdn" not in response.content.lower()
    vendored = Path(settings.BASE_DIR, "static/vendor/htmx/htmx.min.js").read_text()
    assert vendored.startswith("var htmx=")


@pytest.mark.django_db
def test_it_lists_nothing_from_an_empty_store(client, user, settings, tmp_path):
    settings.DOCKWEB_ROOT = tmp_path / "store"
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    assert b"No images yet." in response.content


@pytest.mark.django_db
def test_it_speaks_chinese_when_asked(client, user):
    client.force_login(user)
    response = client.get("/", headers={"Accept-Language": "zh-hans"})
    assert b'<html lang="zh-hans">' in response.content
