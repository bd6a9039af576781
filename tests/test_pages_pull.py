"""The Pull pages: the form with a live normalized reference, a pull's live progress, the nav."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from images.models import Pull, PullLayer


@pytest.fixture
def role() -> str:
    return "operator"  # pulling is an operator's


def running_pull() -> Pull:
    pull = Pull.objects.create(
        reference="nginx:1.25",
        normalized="docker.io/library/nginx:1.25",
        status=Pull.Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=10),
        total_bytes=60_000_000,
        downloaded_bytes=20_000_000,
        messages=["1.25: Pulling from library/nginx"],
    )
    PullLayer.objects.create(
        pull=pull,
        position=0,
        short_id="a2abf6c4d29d",
        digest="sha256:" + "a2abf6c4d29d" + "0" * 52,
        status="Pull complete",
        current=31_000_000,
        total=31_000_000,
    )
    PullLayer.objects.create(
        pull=pull,
        position=1,
        short_id="a9edb18cadd1",
        digest="sha256:" + "a9edb18cadd1" + "0" * 52,
        status="Downloading",
        current=12_300_000,
        total=45_600_000,
    )
    return pull


def test_it_sends_anonymous_visitors_to_login(db):
    for path in ("/pull/", "/pulls/1/", "/pull/normalize/?reference=x", "/registries/"):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


def test_it_shows_the_pull_form_and_recent_pulls(client, db):
    running_pull()
    html = client.get("/pull/").content.decode()
    assert 'name="reference"' in html and 'name="csrfmiddlewaretoken"' in html
    assert 'hx-get="/pull/normalize/"' in html
    assert '<option value="linux/arm64"' in html
    assert 'href="/pulls/' in html and "nginx:1.25" in html


def test_it_shows_the_normalized_reference(client, db):
    response = client.get("/pull/normalize/", {"reference": "ubuntu"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="normalized"')
    assert "docker.io/library/ubuntu:latest" in html


def test_it_shows_dockers_error_for_an_invalid_reference(client, db):
    html = client.get("/pull/normalize/", {"reference": "Ubuntu"}).content.decode()
    assert "invalid reference format: repository name must be lowercase" in html


def test_it_queues_a_pull_and_goes_to_its_page(client, db):
    response = client.post("/pull/", {"reference": "busybox", "platform": "linux/arm64"})
    pull = Pull.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/pulls/{pull.pk}/"
    assert pull.normalized == "docker.io/library/busybox:latest"
    assert pull.platform == "linux/arm64"
    assert pull.created_by.username == "alice"


def test_it_refuses_an_invalid_reference(client, db):
    response = client.post("/pull/", {"reference": "Busybox"})
    assert response.status_code == 400
    assert b"repository name must be lowercase" in response.content
    assert not Pull.objects.exists()


def test_it_refuses_an_unknown_platform(client, db):
    response = client.post("/pull/", {"reference": "busybox", "platform": "plan9/mips"})
    assert response.status_code == 400
    assert not Pull.objects.exists()


def test_it_refuses_a_pull_without_csrf_token(user, db):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/pull/", {"reference": "busybox"}).status_code == 403
    assert not Pull.objects.exists()


def test_it_shows_live_progress_per_layer(client, db):
    pull = running_pull()
    html = client.get(f"/pulls/{pull.pk}/").content.decode()
    assert "a2abf6c4d29d" in html and "Pull complete" in html
    assert "a9edb18cadd1" in html and "Downloading" in html
    assert "12.3MB / 45.6MB" in html
    assert "20MB / 60MB" in html and "33%" in html
    assert "MB/s" in html and "left" in html  # speed and ETA
    assert "1.25: Pulling from library/nginx" in html
    assert f'action="/pulls/{pull.pk}/cancel/"' in html


def test_it_polls_only_while_the_pull_is_active(client, db):
    pull = running_pull()
    fragment = client.get(f"/pulls/{pull.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<section id="pull-progress"')
    assert "<html" not in fragment
    # 10 s old: the steady pace (bytes written every 0.2 s show at least every 0.5 s)
    assert f'hx-trigger="sse:pull-{pull.pk}, live:resync, every 350ms"' in fragment
    # queued, or younger than 2 s: fast, so that the first layer rows show at once
    young = running_pull()
    Pull.objects.filter(pk=young.pk).update(started_at=timezone.now())
    quick = client.get(f"/pulls/{young.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert 'live:resync, every 100ms"' in quick

    Pull.objects.filter(pk=pull.pk).update(
        status=Pull.Status.DONE,
        finished_at=timezone.now(),
        downloaded_bytes=60_000_000,
        image_id="sha256:" + "e4" * 32,
        messages=pull.messages
        + ["Digest: sha256:" + "d" * 64, "Status: Downloaded newer image for nginx:1.25"],
    )
    fragment = client.get(f"/pulls/{pull.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert "hx-trigger" not in fragment
    assert "Status: Downloaded newer image for nginx:1.25" in fragment
    assert 'href="/images/' + "e4" * 32 + '/"' in fragment
    assert "/cancel/" not in fragment


def test_it_explains_a_failed_pull(client, db):
    pull = Pull.objects.create(
        reference="private/thing",
        status=Pull.Status.FAILED,
        error=(
            "pull access denied for private/thing, "
            "repository does not exist or may require 'docker login'"
        ),
    )
    html = client.get(f"/pulls/{pull.pk}/").content.decode()
    assert "may require &#x27;docker login&#x27;" in html
    assert 'href="/registries/"' in html and "Pull again" in html
    assert 'hx-trigger="every' not in html


def test_it_cancels_a_pull(client, db):
    pull = running_pull()
    response = client.post(f"/pulls/{pull.pk}/cancel/")
    assert response["Location"] == f"/pulls/{pull.pk}/"
    pull.refresh_from_db()
    assert pull.cancel_requested
    assert client.get(f"/pulls/{pull.pk}/cancel/").status_code == 405


def test_it_shows_active_pulls_in_the_navigation(client, db):
    pull = running_pull()
    html = client.get("/registries/").content.decode()
    nav = re.search(r'<div id="nav-pulls".*?</div>\s*</div>', html, re.S).group(0)
    assert f'href="/pulls/{pull.pk}/"' in nav and "nginx:1.25" in nav
    assert 'hx-trigger="sse:pull, live:resync, every 2s"' in nav

    fragment = client.get("/pulls/active/", headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="nav-pulls"')
    Pull.objects.filter(pk=pull.pk).update(status=Pull.Status.DONE)
    fragment = client.get("/pulls/active/", headers={"HX-Request": "true"}).content.decode()
    # no pull: no polling, only the live notices of new pulls
    assert 'hx-trigger="sse:pull, live:resync"' in fragment and "nginx" not in fragment


def test_it_shows_the_pull_page_in_chinese(client, db):
    pull = running_pull()
    html = client.get(f"/pulls/{pull.pk}/", headers={"Accept-Language": "zh-hans"}).content.decode()
    assert "取消" in html  # Cancel
    html = client.get("/pull/", headers={"Accept-Language": "zh-hans"}).content.decode()
    assert "拉取镜像" in html


def test_it_accepts_a_pull_posted_with_the_htmx_csrf_header(user, db):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/pull/")
    match = re.search(rb'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page.content)
    assert match, "no CSRF token in <body hx-headers>"
    response = client.post(
        "/pull/", {"reference": "alpine:3.20"}, headers={"X-CSRFToken": match.group(1).decode()}
    )
    assert response.status_code == 302
    assert Pull.objects.get().normalized == "docker.io/library/alpine:3.20"
