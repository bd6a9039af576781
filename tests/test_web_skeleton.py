"""The web skeleton: every page needs a login, login works, CSRF is enforced, admin is there."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from dockweb.runtime.errors import DockwebError
from images import views as image_views

PASSWORD = "a-long-test-password-42"

# The only routes an anonymous visitor may reach (admin:login is the admin's own form).
PUBLIC_ROUTES = {"login", "logout", "admin:login"}

SAMPLE = {"uuid": "00000000-0000-0000-0000-000000000001"}


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
    response = client.post("/images/pull/", {"reference": "busybox"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_it_accepts_a_signed_in_post_with_the_htmx_csrf_header(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/images/pull/")
    # The token that base.html puts in <body hx-headers> is what htmx sends back.
    match = re.search(rb'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page.content)
    assert match, "no CSRF token in <body hx-headers>"
    response = client.post(
        "/images/pull/", {"reference": ""}, headers={"X-CSRFToken": match.group(1).decode()}
    )
    assert response.status_code == 200


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
    for href in (b'href="/"', b'href="/containers/"', b'href="/images/pull/"'):
        assert href in response.content
    assert b'src="/static/vendor/htmx/htmx.min.js"' in response.content
    assert b"cdn" not in response.content.lower()
    vendored = Path(settings.BASE_DIR, "static/vendor/htmx/htmx.min.js").read_text()
    assert vendored.startswith("var htmx=")


class FakeServices:
    """images.services.list_images as it answers: Docker's ImageSummary dicts."""

    @staticmethod
    def list_images():
        created = int(time.time()) - 15 * 24 * 3600
        return [
            {
                "Id": "sha256:" + "1234567890ab" + "c" * 52,
                "ParentId": "",
                "RepoTags": ["busybox:latest", "busybox:1.36"],
                "RepoDigests": ["busybox@sha256:" + "d" * 64],
                "Created": created,
                "Size": 4_261_550,
                "VirtualSize": 4_261_550,
                "SharedSize": -1,
                "Containers": -1,
            }
        ]


class BrokenServices:
    @staticmethod
    def list_images():
        raise DockwebError("open store: permission denied")


@pytest.mark.django_db
def test_it_lists_images_from_the_service(client, user, monkeypatch):
    monkeypatch.setattr(image_views, "_services", lambda: FakeServices)
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    rows = re.findall(rb"<tr>\s*<td>(.*?)</td>\s*</tr>", response.content, re.S)
    cells = [re.split(rb"</td>\s*<td>", row) for row in rows]
    assert cells == [
        [b"busybox", b"latest", b"<code>1234567890ab</code>", b"2 weeks ago", b"4.26MB"],
        [b"busybox", b"1.36", b"<code>1234567890ab</code>", b"2 weeks ago", b"4.26MB"],
    ]


@pytest.mark.django_db
def test_it_lists_nothing_from_an_empty_store(client, user, settings, tmp_path):
    settings.DOCKWEB_ROOT = tmp_path / "store"
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    assert b"No images yet." in response.content


@pytest.mark.django_db
def test_it_shows_why_images_cannot_be_listed(client, user, monkeypatch):
    monkeypatch.setattr(image_views, "_services", lambda: BrokenServices)
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    assert b"Could not list images: open store: permission denied" in response.content


@pytest.mark.django_db
def test_it_answers_htmx_with_the_image_list_only(client, user, monkeypatch):
    monkeypatch.setattr(image_views, "_services", lambda: FakeServices)
    client.force_login(user)
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.content.lstrip().startswith(b'<section id="image-list">')
    assert b"<html" not in response.content
    assert b"busybox" in response.content
    assert "HX-Request" in response["Vary"]


@pytest.mark.django_db
def test_it_works_before_the_image_service_lands(client, user, monkeypatch):
    monkeypatch.setattr(image_views, "_services", lambda: None)
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    assert b"not connected yet" in response.content


@pytest.mark.django_db
def test_it_speaks_chinese_when_asked(client, user):
    client.force_login(user)
    response = client.get("/", headers={"Accept-Language": "zh-hans"})
    assert b'<html lang="zh-hans">' in response.content
