"""Sign-in throttling (django-axes with dockweb's AXES_* settings, unchanged here): after
the failure limit a username, and an address, are locked out, the right password
included; an admin lifts the lock; each lockout is in the audit log."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client

from access.models import AuditEvent
from access.roles import set_role
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = django_settings.AXES_FAILURE_LIMIT


@pytest.fixture
def role() -> str:
    return "viewer"


@pytest.fixture
def bob(django_user_model):
    user = django_user_model.objects.create_user("bob", password=PASSWORD)
    set_role(user, "viewer")
    return user


@pytest.fixture
def boss(django_user_model):
    """An admin by role (not a superuser): staff, in the admin group."""
    user = django_user_model.objects.create_user("boss", password=PASSWORD, is_staff=True)
    set_role(user, "admin")
    return user


def sign_in(address: str, username: str, password: str):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/login/", {"username": username, "password": password})
    return response, client


def signed_in(client: Client) -> bool:
    return client.get("/images/").status_code == 200


def test_the_real_settings_throttle():
    """The settings the other tests rely on are the production defaults."""
    assert LIMIT == 5
    assert django_settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert django_settings.AXES_LOCKOUT_PARAMETERS == ["username", "ip_address"]
    assert django_settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"


def test_wrong_passwords_lock_the_username_out_and_are_audited(user, bob):
    for _ in range(LIMIT - 1):
        response, _client = sign_in("10.0.0.1", "alice", "wrong")
        assert response.status_code == 200
        assert b"Please enter a correct username and password" in response.content
    response, _client = sign_in("10.0.0.1", "alice", "wrong")
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    # the attack of the issue: then the right password, and from another address too
    for address in ("10.0.0.1", "10.0.0.2"):
        response, client = sign_in(address, "alice", PASSWORD)
        assert response.status_code == 429
        assert not signed_in(client)
    # the locked address is refused for every username; bob elsewhere is not affected
    response, client = sign_in("10.0.0.1", "bob", PASSWORD)
    assert response.status_code == 429
    assert not signed_in(client)
    response, client = sign_in("10.0.0.3", "bob", PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)
    lockouts = AuditEvent.objects.filter(action="auth.lockout")
    assert [(e.target, e.remote_addr, e.detail["address"]) for e in lockouts] == [
        ("alice", "10.0.0.1", "10.0.0.1")
    ]


def test_one_address_guessing_many_usernames_is_locked_out(user, bob):
    for n in range(LIMIT):
        sign_in("10.0.0.9", f"guess{n}", "wrong")
    response, client = sign_in("10.0.0.9", "bob", PASSWORD)
    assert response.status_code == 429
    assert not signed_in(client)
    response, client = sign_in("10.0.0.8", "alice", PASSWORD)
    assert signed_in(client)


def test_a_forged_forwarded_for_header_does_not_escape_the_count(user):
    for n in range(LIMIT):
        client = Client(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        client.post("/login/", {"username": "alice", "password": "wrong"})
    client = Client(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="192.0.2.200")
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429


def test_an_admin_lifts_the_lock_in_the_admin(user, boss):
    for _ in range(LIMIT):
        sign_in("10.0.0.1", "alice", "wrong")
    assert sign_in("10.0.0.1", "alice", PASSWORD)[0].status_code == 429
    admin = Client(REMOTE_ADDR="10.0.0.7")
    admin.force_login(boss)
    listing = admin.get("/admin/axes/accessattempt/?locked_out=yes")
    assert listing.status_code == 200
    assert b"alice" in listing.content
    from axes.models import AccessAttempt

    ids = list(AccessAttempt.objects.filter(username="alice").values_list("pk", flat=True))
    response = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username="alice").exists()
    unlock = AuditEvent.objects.get(action="auth.unlock")
    assert (unlock.actor, unlock.target, unlock.detail["address"]) == ("boss", "alice", "10.0.0.1")
    response, client = sign_in("10.0.0.1", "alice", PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_a_viewer_cannot_lift_a_lock(user, bob):
    for _ in range(LIMIT):
        sign_in("10.0.0.1", "alice", "wrong")
    viewer = Client()
    viewer.force_login(bob)
    assert viewer.get("/admin/axes/accessattempt/").status_code == 302  # not staff: to login


def test_manage_py_axes_reset_lifts_the_lock(user):
    for _ in range(LIMIT):
        sign_in("10.0.0.1", "alice", "wrong")
    assert sign_in("10.0.0.1", "alice", PASSWORD)[0].status_code == 429
    call_command("axes_reset_username", "alice")
    call_command("axes_reset_ip", "10.0.0.1")
    response, client = sign_in("10.0.0.1", "alice", PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)
    for _ in range(LIMIT):
        sign_in("10.0.0.1", "alice", "wrong")
    call_command("axes_reset")
    assert sign_in("10.0.0.1", "alice", PASSWORD)[0].status_code == 302


def test_the_lock_ends_after_the_cool_off(user, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    for _ in range(LIMIT):
        sign_in("10.0.0.1", "alice", "wrong")
    assert sign_in("10.0.0.1", "alice", PASSWORD)[0].status_code == 429
    time.sleep(1.5)
    response, client = sign_in("10.0.0.1", "alice", PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_a_success_clears_the_count(user):
    for _ in range(LIMIT - 1):
        sign_in("10.0.0.1", "alice", "wrong")
    assert sign_in("10.0.0.1", "alice", PASSWORD)[0].status_code == 302
    for _ in range(LIMIT - 1):
        sign_in("10.0.0.1", "alice", "wrong")
    assert sign_in("10.0.0.1", "alice", PASSWORD)[0].status_code == 302
