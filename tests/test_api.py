"""The JSON API: login required, CSRF on POST, and the shapes docs/api.md documents."""

from __future__ import annotations

import json
import os

import pytest
from django.conf import settings as django_settings
from django.test import Client

from dockweb.runtime import errors
from images import services
from images.api import _category_status
from images.models import Operation, Pull
from tests.support import images as im

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def role() -> str:
    return "admin"  # the API tests exercise every action


@pytest.fixture
def client() -> Client:
    """Anonymous, as pytest-django's (conftest's is signed in)."""
    return Client()


@pytest.fixture
def api(user):
    """A signed-in client that enforces CSRF and sends the token, as a browser script does."""
    client = Client(enforce_csrf_checks=True)
    client.get("/login/")  # the login form sets the CSRF cookie
    client.force_login(user)

    def post(path, data=None):
        token = client.cookies[django_settings.CSRF_COOKIE_NAME].value
        return client.post(path, json.dumps(data or {}), content_type="application/json",
                           headers={"X-CSRFToken": token})

    client.post_json = post
    return client


@pytest.fixture(scope="module")
def pushed(registry):
    return im.push_shared_base_pair(registry.host, "api")


@pytest.fixture
def pulled(store, registry, pushed):
    services.pull_image(f"{registry.host}/api/a:1")
    services.pull_image(f"{registry.host}/api/b:1")
    return pushed


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/images/"), ("get", "/api/images/abc/"), ("get", "/api/pulls/"),
        ("post", "/api/pulls/"), ("get", "/api/pulls/1/"), ("post", "/api/pulls/1/cancel/"),
        ("post", "/api/images/remove/"), ("get", "/api/operations/1/"),
    ],
)
def test_it_sends_anonymous_requests_to_login(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_it_refuses_a_post_without_the_csrf_token(store, user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/pulls/", {"reference": "busybox"})
    assert response.status_code == 403
    assert not Pull.objects.exists()


def test_it_lists_images_with_totals(api, registry, pulled):
    a, b = pulled
    body = api.get("/api/images/?digests=1").json()
    assert {r["repository"] for r in body["images"]} == {
        f"{registry.host}/api/a", f"{registry.host}/api/b"
    }
    row = next(r for r in body["images"] if r["image_id"] == a.image_id)
    assert set(row) == {
        "image", "image_id", "id", "repository", "tag", "digest", "created", "size",
        "compressed_size", "shared_size", "unique_size", "containers",
    }
    assert (row["id"], row["tag"], row["digest"]) == (a.image_id[7:19], "1", a.manifest_digest)
    assert row["created"] == "2024-01-01T00:00:00Z"
    assert set(body["totals"]) == {
        "images", "on_disk", "compressed", "sum_of_sizes", "shared_savings"
    }
    assert body["totals"]["images"] == 2
    assert api.get("/api/images/?dangling=true").json()["images"] == []
    assert api.get("/api/images/?dangling=maybe").status_code == 400


def test_it_details_an_image_by_prefix_or_reference(api, registry, pulled):
    a, _ = pulled
    body = api.get(f"/api/images/{a.image_id[7:19]}/").json()
    assert body["image_id"] == a.image_id
    assert body["tags"] == [f"{registry.host}/api/a:1"]
    assert [la["chain_id"] for la in body["layers"]] == a.chain_ids
    assert body["layers"][0]["shared_with"][0][2] == f"{registry.host}/api/b:1"
    assert body["config"]["Cmd"] == ["sh"]
    by_ref = api.get(f"/api/images/{registry.host}/api/a:1/")
    assert by_ref.json()["image_id"] == a.image_id
    missing = api.get("/api/images/0000000000/")
    assert missing.status_code == 404
    assert missing.json() == {"error": "No such image: 0000000000:latest"}


def test_it_starts_follows_and_lists_a_pull(api, store, registry, pushed):
    a, _ = pushed
    response = api.post_json("/api/pulls/", {"reference": f"{registry.host}/api/a:1"})
    assert response.status_code == 202
    started = response.json()
    assert response["Location"] == f"/api/pulls/{started['id']}/"
    assert (started["status"], started["normalized"]) == ("queued", f"{registry.host}/api/a:1")

    services.run_pull(started["id"])  # what the worker does with the queued task

    body = api.get(f"/api/pulls/{started['id']}/").json()
    assert body["status"] == "done"
    assert body["status_text"] == f"Downloaded newer image for {registry.host}/api/a:1"
    assert body["percent"] == 100
    assert body["eta"] is None
    assert body["total_bytes"] == body["downloaded_bytes"] == sum(la.size for la in a.layers)
    assert [la["status"] for la in body["layers"]] == ["Pull complete"] * 3
    assert set(body["layers"][0]) == {
        "position", "id", "digest", "status", "current", "total", "percent"
    }
    assert body["messages"][-1] == f"Status: Downloaded newer image for {registry.host}/api/a:1"

    listed = api.get("/api/pulls/").json()["pulls"]
    assert [p["id"] for p in listed] == [started["id"]]
    assert "layers" not in listed[0]
    assert api.get("/api/pulls/?active=1").json()["pulls"] == []


def test_it_answers_a_bad_reference_with_dockers_message(api, store):
    response = api.post_json("/api/pulls/", {"reference": "Bad:Ref!"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid reference format: repository name must be lowercase"
    }
    assert api.post_json("/api/pulls/", {}).json() == {"error": "reference is required"}


def test_it_answers_a_malformed_image_key_with_400(api, store):
    response = api.get("/api/images/UPPER/")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid reference format: repository name must be lowercase"
    }


def test_it_maps_each_error_category_to_its_http_status():
    assert _category_status(errors.ImageNotFound("No such image: x")) == 404
    assert _category_status(errors.ManifestUnknown("manifest unknown")) == 404
    assert _category_status(errors.VolumeInUse("remove v: volume is in use - [x]")) == 409
    assert _category_status(errors.InvalidReference("invalid reference format")) == 400
    assert _category_status(errors.RegistryUnavailable("i/o timeout")) == 503
    assert _category_status(errors.StoreError("disk full")) is None


def test_it_accepts_a_form_encoded_pull(api, store):
    token = api.cookies[django_settings.CSRF_COOKIE_NAME].value
    response = api.post("/api/pulls/", {"reference": "busybox", "platform": "linux/arm64"},
                        headers={"X-CSRFToken": token})
    assert response.status_code == 202
    assert response.json()["platform"] == "linux/arm64"


def test_it_cancels_a_pull(api, store):
    p = services.start_pull("busybox")
    response = api.post_json(f"/api/pulls/{p.id}/cancel/")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert api.get("/api/pulls/999999/").status_code == 404


def test_it_removes_an_image_through_an_operation(api, registry, pulled):
    a, _ = pulled
    response = api.post_json("/api/images/remove/", {"ref": f"{registry.host}/api/a:1"})
    assert response.status_code == 202
    op = response.json()
    assert (op["kind"], op["status"], op["args"]) == (
        "remove", "queued", {"ref": f"{registry.host}/api/a:1", "force": False, "prune": True}
    )
    services.run_operation(op["id"])
    body = api.get(response["Location"]).json()
    assert body["status"] == "done"
    assert body["result"][0] == ["Untagged", f"{registry.host}/api/a:1"]
    assert ["Deleted", a.image_id] in body["result"]
    assert body["summary"].startswith("Deleted: the image and 1 layer, ")
    assert body["conflict"] is False


def test_it_reports_a_conflict_the_page_can_force(api, registry, pulled):
    a, _ = pulled
    services.tag_image(f"{registry.host}/api/a:1", "team/a:2")
    op = api.post_json("/api/images/remove/", {"ref": a.image_id[7:19]}).json()
    services.run_operation(op["id"])
    body = api.get(f"/api/operations/{op['id']}/").json()
    assert (body["status"], body["conflict"]) == ("failed", True)
    assert "must be forced" in body["error"]

    forced = api.post_json("/api/images/remove/", {"ref": a.image_id[7:19], "force": True})
    assert Operation.objects.get(pk=forced.json()["id"]).args["force"] is True


def test_it_tags_an_image_through_an_operation(api, registry, pulled):
    response = api.post_json(
        "/api/images/tag/", {"source": f"{registry.host}/api/a:1", "target": "team/a:2"}
    )
    assert response.status_code == 202
    services.run_operation(response.json()["id"])
    body = api.get(response["Location"]).json()
    assert body["result"] == [["Tagged", "team/a:2"]]
    # two tags now; any other reference is the digest the pull recorded
    assert body["tags_left"] == 2 and body["references_left"] >= 2, body


def test_it_rejects_the_wrong_method(api):
    assert api.get("/api/images/remove/").status_code == 405
    assert api.post_json("/api/images/").status_code == 405
