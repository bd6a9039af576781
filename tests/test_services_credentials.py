"""Registry credentials: encrypted at rest, decrypted for the registry client."""

from __future__ import annotations

import pytest
from django.db import connection

from images import credentials
from images.models import RegistryCredential

pytestmark = pytest.mark.django_db

PASSWORD = "hunter2-very-secret"


def test_it_round_trips_credentials():
    credentials.save_credential("registry.local:5000", "alice", PASSWORD)
    assert credentials.credentials_map() == {"registry.local:5000": ("alice", PASSWORD)}


def test_it_never_stores_the_password_in_clear():
    credentials.save_credential("registry.local:5000", "alice", PASSWORD)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {RegistryCredential._meta.db_table}")
        row = cursor.fetchone()
    raw = b"".join(bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode()
                   for v in row)
    assert PASSWORD.encode() not in raw
    assert b"alice" in raw


def test_it_replaces_and_deletes_credentials():
    credentials.save_credential("registry.local:5000", "alice", PASSWORD)
    credentials.save_credential("registry.local:5000", "bob", "other")
    assert credentials.credentials_map() == {"registry.local:5000": ("bob", "other")}
    assert credentials.delete_credential("registry.local:5000")
    assert not credentials.delete_credential("registry.local:5000")
    assert credentials.credentials_map() == {}


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("Registry.Local:5000", "registry.local:5000"),
        ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
    ],
)
def test_it_names_registries_as_the_client_looks_them_up(typed, stored):
    credentials.save_credential(typed, "alice", PASSWORD)
    assert list(credentials.credentials_map()) == [stored]


def test_it_refuses_an_unusable_registry_or_empty_secret():
    with pytest.raises(ValueError, match="invalid registry"):
        credentials.save_credential("not a host", "alice", PASSWORD)
    with pytest.raises(ValueError, match="username and a password"):
        credentials.save_credential("registry.local", "alice", "")


def test_it_skips_secrets_it_cannot_decrypt_after_the_key_changed(settings):
    credentials.save_credential("registry.local", "alice", PASSWORD)
    settings.SECRET_KEY = "another-key-entirely"
    assert credentials.credentials_map() == {}
