"""The Registries page: list, add or replace, delete credentials; secrets never shown."""

from __future__ import annotations

import pytest
from django.test import Client

from images import credentials
from images.models import RegistryCredential


@pytest.fixture
def role() -> str:
    return "admin"  # credentials are an admin's


def test_it_sends_anonymous_visitors_to_login(db):
    response = Client().get("/registries/")
    assert response["Location"] == "/login/?next=/registries/"


def test_it_lists_credentials_without_secrets(client, db):
    credentials.save_credential("registry.example.com:5000", "deploy", "s3cret-token-value")
    html = client.get("/registries/").content.decode()
    assert "registry.example.com:5000" in html and "deploy" in html
    assert "s3cret-token-value" not in html


def test_it_saves_and_replaces_credentials(client, db):
    response = client.post(
        "/registries/",
        {"registry": "https://index.docker.io/v1/", "username": "bob", "password": "pw-1"},
    )
    assert response["Location"] == "/registries/"
    client.post("/registries/", {"registry": "docker.io", "username": "carol", "password": "pw-2"})
    cred = RegistryCredential.objects.get()
    assert (cred.registry, cred.username) == ("docker.io", "carol")
    assert credentials.credentials_map() == {"docker.io": ("carol", "pw-2")}
    html = client.get("/registries/").content.decode()
    assert "Saved the credentials for docker.io." in html
    assert "pw-2" not in html


def test_it_explains_what_is_missing(client, db):
    response = client.post(
        "/registries/", {"registry": "ghcr.io", "username": "bob", "password": ""}
    )
    assert response.status_code == 400
    assert b"Enter the registry, a username and a password or token." in response.content
    response = client.post(
        "/registries/", {"registry": "not a host", "username": "b", "password": "p"}
    )
    assert response.status_code == 400
    assert b"use host or host:port" in response.content
    assert not RegistryCredential.objects.exists()


def test_it_deletes_credentials(client, db):
    credentials.save_credential("ghcr.io", "bob", "pw")
    response = client.post("/registries/delete/", {"registry": "ghcr.io"})
    assert response["Location"] == "/registries/"
    assert not RegistryCredential.objects.exists()
    assert client.get("/registries/delete/").status_code == 405


def test_it_refuses_to_save_without_csrf_token(user, db):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(
        "/registries/", {"registry": "ghcr.io", "username": "b", "password": "p"}
    )
    assert response.status_code == 403
