"""Actions in place and their confirmations, without a browser: the confirmation page a
destructive form leads to without JavaScript, the status fragment an htmx form gets, names
instead of IDs in results, and the details of the pull page (issue 19). The browser side is
tests/test_browser_pages.py."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.utils import timezone

from containers.models import Container, ContainerOperation
from images.models import Image, Operation, Pull, PullLayer, Reference, Repository
from images.templatetags import docker_words

IMAGE_ID = "sha256:" + "b2" * 32
CID = "9c" * 32
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


def shown(html: str) -> str:
    """The text a person reads in the page's main part (links' addresses left out)."""
    main = html[html.index("<main>") : html.index("</main>")]
    return re.sub(r"<[^>]+>", " ", main)


@pytest.fixture
def role() -> str:
    return "admin"  # removes images and containers


@pytest.fixture
def image(db):
    img = Image.objects.create(image_id=IMAGE_ID, size=1, compressed_size=1, config={})
    repo = Repository.objects.create(name="docker.io/library/webapp", familiar_name="webapp")
    Reference.objects.create(repository=repo, tag="1.0", image=img)
    return img


@pytest.fixture
def container(db):
    now = timezone.now()
    return Container.objects.create(
        container_id=CID,
        name="web",
        image="busybox",
        image_id="sha256:" + "ab" * 32,
        path="sh",
        args=[],
        status="running",
        created=now - timedelta(minutes=3),
        started_at=now - timedelta(seconds=5),
        inspect={"Id": CID, "Name": "/web"},
    )


def test_removing_an_image_without_javascript_asks_on_a_page_naming_it(client, image):
    asked = {"target": IMAGE_ID, "image": "b2" * 32, "ask": "1"}
    response = client.post("/images/remove/", asked)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Remove this image?" in html
    assert '<span class="mono">webapp:1.0</span>' in html  # its name, not its ID
    assert not Operation.objects.exists()
    # the page's form sends the same fields again, confirmed
    form = re.search(r'<form method="post" action="/images/remove/".*?</form>', html, re.S)
    assert form, html
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group()))
    assert fields["target"] == IMAGE_ID and fields["confirmed"] == "1"
    assert "ask" not in fields
    # Cancel leads back to the image
    assert f'href="/images/{"b2" * 32}/"' in html

    response = client.post("/images/remove/", {**asked, "confirmed": "1"})
    op = Operation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/operations/{op.pk}/"
    assert op.args["ref"] == IMAGE_ID


def test_a_form_without_ask_acts_at_once(client, image):
    response = client.post("/images/remove/", {"target": "webapp:1.0"})
    assert response.status_code == 302 and Operation.objects.count() == 1


def test_an_htmx_removal_answers_with_its_status_in_place(client, image):
    response = client.post(
        "/images/remove/",
        {"target": "webapp:1.0", "ask": "1", "confirmed": "1"},
        headers={"HX-Request": "true"},
    )
    op = Operation.objects.get()
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="operation-status"')
    assert f'hx-get="/operations/{op.pk}/?inline=1"' in html
    assert response["HX-Trigger"] == "dockweb:changed"
    assert "Remove" in html and "webapp:1.0" in html

    # its poll, once the worker is done: the result, no more polling, the page refreshes
    Operation.objects.filter(pk=op.pk).update(
        status="done",
        finished_at=timezone.now(),
        result=[["Untagged", "webapp:1.0"]],
        references_left=0,
    )
    polled = client.get(f"/operations/{op.pk}/?inline=1", headers={"HX-Request": "true"})
    html = polled.content.decode()
    assert "hx-trigger" not in html and "Untagged: webapp:1.0" in html
    assert 'class="inline-heading"' in html
    assert polled["HX-Trigger"] == "dockweb:changed"


def test_a_tag_result_names_the_image_not_its_id(client, image):
    client.post(f"/images/{'b2' * 12}/tag/", {"target": "webapp:2.0"})
    op = Operation.objects.get()
    Operation.objects.filter(pk=op.pk).update(
        status="done", finished_at=timezone.now(), result=[["Tagged", "webapp:2.0"]]
    )
    html = client.get(f"/operations/{op.pk}/").content.decode()
    assert "Tagged webapp:1.0 as webapp:2.0." in html
    assert not HEX64.search(shown(html)), HEX64.search(shown(html))


def test_killing_a_container_without_javascript_asks_on_a_page_naming_it(client, container):
    response = client.post(f"/containers/{CID}/kill/", {"ask": "1", "next": "/containers/"})
    html = response.content.decode()
    assert "Kill this container?" in html and '<span class="mono">web</span>' in html
    assert 'href="/containers/"' in html  # Cancel goes back where the button was
    assert not ContainerOperation.objects.exists()
    client.post(f"/containers/{CID}/kill/", {"ask": "1", "confirmed": "1"})
    op = ContainerOperation.objects.get()
    assert op.kind == "kill" and op.args == {"container": CID, "container_name": "web"}


def test_stopping_does_not_ask(client, container):
    response = client.post(f"/containers/{CID}/stop/", {"ask": "1"})
    assert response.status_code == 302 and ContainerOperation.objects.get().kind == "stop"


def test_a_container_removal_says_what_docker_says(client, container):
    op = ContainerOperation.objects.create(
        kind="remove", args={"container": CID, "container_name": "web"}, container_id=CID
    )
    ContainerOperation.objects.filter(pk=op.pk).update(status="done", finished_at=timezone.now())
    html = client.get(f"/containers/operations/{op.pk}/").content.decode()
    assert "Removed container web." in html and "Done." not in html
    assert re.search(r'<pre class="console">web\s*</pre>', html)
    assert not HEX64.search(shown(html)), HEX64.search(shown(html))


def test_the_containers_list_names_its_operations(client, container):
    ContainerOperation.objects.create(kind="stop", args={"container": CID}, container_id=CID)
    html = client.get("/containers/").content.decode()
    table = html[html.index('class="data operations"') :]
    assert CID[:12] in table and CID not in table  # an operation asked by ID: the short ID


def test_a_pull_says_downloaded_once_and_its_failure_readably(client, db):
    done = Pull.objects.create(
        reference="busybox",
        status=Pull.Status.DONE,
        messages=["Digest: sha256:" + "d" * 64, "Status: Downloaded newer image for busybox"],
        status_text="Downloaded newer image for busybox",
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    PullLayer.objects.create(
        pull=done, position=0, short_id="d" * 12, digest="sha256:" + "d" * 64,
        status="Pull complete", current=10, total=10,
    )  # fmt: skip
    html = client.get(f"/pulls/{done.pk}/").content.decode()
    assert html.count("Downloaded newer image for busybox") == 1
    assert 'role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="100"' in html

    failed = Pull.objects.create(
        reference="nosuch:tag",
        status=Pull.Status.FAILED,
        error="manifest for nosuch:tag not found: manifest unknown: manifest unknown",
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    html = client.get(f"/pulls/{failed.pk}/").content.decode()
    assert "manifest for nosuch:tag not found: manifest unknown" in html
    assert "manifest unknown: manifest unknown" not in html
    assert "took" not in html


def test_every_layer_state_the_runtime_writes_has_words_in_chinese():
    source = Path(settings.BASE_DIR, "dockweb/runtime/pull.py").read_text()
    states = set(re.findall(r'progress\.layer\(job, "([^"]+)"', source))
    assert len(states) >= 7, states
    assert states <= set(docker_words.LAYER_STATES), states - set(docker_words.LAYER_STATES)
    from django.utils import translation

    with translation.override("zh-hans"):
        for state in [*docker_words.LAYER_STATES, "Retrying in 3 seconds"]:
            words = docker_words.layer_state(state)
            assert not re.search(r"[A-Za-z]", words), (state, words)
        for status in [
            "Up 3 seconds",
            "Up About a minute (Paused)",
            "Up 2 hours (healthy)",
            "Exited (137) Less than a second ago",
            "Exited (0) 3 weeks ago",
            "Restarting (1) 5 seconds ago",
            "Created",
            "Removal In Progress",
            "Dead",
        ]:
            words = docker_words.container_status(status)
            assert not re.search(r"[A-Za-z]", words), (status, words)
        for message in [
            "1: Pulling from library/busybox",
            "Status: Image is up to date for busybox:latest",
        ]:
            assert docker_words.pull_message(message) != message


def test_the_favicon_is_a_static_file(client, db):
    assert finders.find("dockweb/favicon.svg")
    html = client.get("/pull/").content.decode()
    assert '<link rel="icon" href="/static/dockweb/favicon.svg"' in html
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/dockweb/favicon.svg"
