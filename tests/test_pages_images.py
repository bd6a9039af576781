"""The Images pages: the list with `image ls` toggles, one image, removal and tag operations."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from images.models import Image, ImageLayer, Layer, Operation, Reference, Repository

BASE_ID = "sha256:" + "a1" * 32
APP_ID = "sha256:" + "b2" * 32
OLD_ID = "sha256:" + "c3" * 32


@pytest.fixture
def role() -> str:
    return "admin"  # removes images


def make_layer(n: int, size: int, compressed: int) -> Layer:
    return Layer.objects.create(
        chain_id=f"sha256:{n:064x}",
        diff_id=f"sha256:{n + 1000:064x}",
        blob_digest=f"sha256:{n + 2000:064x}",
        size=size,
        compressed_size=compressed,
    )


def make_image(image_id: str, layers: list[Layer], refs: list[str], *, days: int, config=None):
    image = Image.objects.create(
        image_id=image_id,
        created=timezone.now() - timedelta(days=days),
        size=sum(la.size for la in layers),
        compressed_size=sum(la.compressed_size for la in layers),
        os="linux",
        architecture="amd64",
        config=config or {},
    )
    for position, layer in enumerate(layers):
        ImageLayer.objects.create(image=image, layer=layer, position=position)
    for ref in refs:
        name, _, tag = ref.partition(":")
        repo, _ = Repository.objects.get_or_create(
            name=f"docker.io/library/{name}", defaults={"familiar_name": name}
        )
        Reference.objects.create(repository=repo, tag=tag, image=image)
    return image


@pytest.fixture
def images(db):
    """Two images sharing a 4MB base layer, and an untagged (dangling) one."""
    base = make_layer(1, 4_000_000, 2_000_000)
    app = make_layer(2, 6_000_000, 3_000_000)
    old = make_layer(3, 1_000_000, 500_000)
    config = {
        "config": {
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "Env": ["PATH=/usr/local/bin:/usr/bin", "NGINX_VERSION=1.25.3"],
            "WorkingDir": "/srv",
            "User": "nginx",
            "Labels": {"maintainer": "ops@example.com"},
            "ExposedPorts": {"80/tcp": {}},
            "Volumes": {"/data": {}},
        },
        "history": [
            {
                "created": "2024-01-01T00:00:00Z",
                "created_by": "/bin/sh -c #(nop) ADD file:base in /",
            },
            {
                "created": "2024-01-02T00:00:00Z",
                "created_by": '/bin/sh -c #(nop) CMD ["sh"]',
                "empty_layer": True,
            },
            {"created": "2024-01-03T00:00:00Z", "created_by": "/bin/sh -c apk add nginx"},
        ],
    }
    return {
        "base": make_image(BASE_ID, [base], ["busybox:latest"], days=20),
        "app": make_image(
            APP_ID, [base, app], ["webapp:1.0", "webapp:latest"], days=3, config=config
        ),
        "old": make_image(OLD_ID, [old], [], days=40),
    }


def test_it_sends_anonymous_visitors_to_login(db):
    for path in ("/", "/images/", f"/images/{APP_ID[7:19]}/", "/operations/1/"):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


def test_it_lists_images_with_sizes_and_links(client, images):
    response = client.get("/images/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "webapp" in html and "1.0" in html and "busybox" in html
    assert f'href="/images/{APP_ID[7:]}/"' in html
    assert ">b2b2b2b2b2b2<" in html
    assert "10MB" in html  # webapp's size: 4MB + 6MB
    assert "3\xa0days ago" in html  # Django's timesince keeps number and unit together
    # The dangling image is shown as <none>, as `docker images` does.
    assert "&lt;none&gt;" in html


def test_it_sums_shared_layers_once(client, images):
    html = client.get("/images/").content.decode()
    summary = re.sub(r"\s+", " ", re.search(r'<p class="summary">(.*?)</p>', html, re.S).group(1))
    summary = re.sub(r"<[^>]+>", "", summary)
    # 4MB + 6MB + 1MB on disk; 4MB + 10MB + 1MB counted per image: 4MB saved by sharing.
    assert "3 images" in summary
    assert "11MB on disk (shared layers counted once)" in summary
    assert "5.5MB compressed" in summary
    assert "4MB saved by sharing" in summary


def table(client, **params) -> str:
    response = client.get("/images/", params, headers={"HX-Request": "true"})
    return response.content.decode()


def test_it_filters_by_reference_and_dangling(client, images):
    html = table(client, reference="web*")
    assert "webapp" in html and "busybox" not in html
    html = table(client, dangling="1")
    assert "c3c3c3c3c3c3" in html and "webapp" not in html
    html = table(client, reference="nothing-here")
    assert "No images match these filters." in html


def test_it_shows_full_ids_and_digests_when_asked(client, images):
    html = client.get("/images/", {"no_trunc": "1", "digests": "1"}).content.decode()
    assert APP_ID in html
    assert "<th>Digest</th>" in html


def test_it_answers_htmx_with_the_table_only(client, images):
    response = client.get("/images/", {"all": "1"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.content.lstrip().startswith(b'<section id="image-list" ')
    assert b"<html" not in response.content and b"webapp" in response.content
    assert "HX-Request" in response["Vary"]


def test_it_keeps_the_toggles_working_without_javascript(client, images):
    html = client.get("/images/", {"all": "1"}).content.decode()
    assert '<form class="toolbar" method="get" action="/images/"' in html
    assert re.search(r'name="all" value="1" checked', html)


def test_it_shows_an_empty_store(client, db):
    html = client.get("/").content.decode()
    assert "No images yet." in html
    assert 'href="/pull/"' in html


def test_it_shows_an_image_by_short_or_full_id(client, images):
    for key in (APP_ID[7:19], APP_ID[7:]):
        response = client.get(f"/images/{key}/")
        assert response.status_code == 200
    html = response.content.decode()
    assert "webapp:1.0" in html and "webapp:latest" in html
    assert "apk add nginx" in html  # the top layer's command
    assert "nginx -g daemon off;" in html and "/docker-entrypoint.sh" in html
    assert "NGINX_VERSION=1.25.3" in html and "maintainer=ops@example.com" in html
    assert "80/tcp" in html and "/data" in html and "/srv" in html
    # The base layer is shared with busybox, linked to its page.
    assert f'href="/images/{BASE_ID[7:19]}/"' in html and "busybox:latest" in html


def test_it_answers_404_for_an_unknown_image(client, images):
    assert client.get("/images/ffffffffffff/").status_code == 404


def test_it_offers_tag_untag_and_remove_forms_with_csrf(client, images):
    html = client.get(f"/images/{APP_ID[7:19]}/").content.decode()
    for action in (f"/images/{APP_ID[7:]}/tag/", "/images/remove/"):
        form = re.search(rf'<form method="post" action="{action}"[^>]*>(.*?)</form>', html, re.S)
        assert form, action
        assert "csrfmiddlewaretoken" in form.group(1)
    assert 'name="target" value="webapp:1.0"' in html


def test_it_refuses_removal_without_csrf_token(user, images):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/images/remove/", {"target": "webapp:1.0"})
    assert response.status_code == 403
    assert not Operation.objects.exists()


def test_it_queues_a_removal_and_shows_it(client, images):
    response = client.post("/images/remove/", {"target": "webapp:1.0"})
    op = Operation.objects.get()
    assert response["Location"] == f"/operations/{op.pk}/"
    assert op.kind == "remove" and op.args["ref"] == "webapp:1.0" and not op.args["force"]
    html = client.get(response["Location"]).content.decode()
    assert f'hx-trigger="sse:image_operation-{op.pk}, live:resync, every 500ms"' in html


def test_it_rejects_get_on_removal(client, images):
    assert client.get("/images/remove/").status_code == 405


def test_it_queues_a_tag(client, images):
    response = client.post(f"/images/{APP_ID[7:19]}/tag/", {"target": "webapp:2.0"})
    op = Operation.objects.get()
    assert response["Location"] == f"/operations/{op.pk}/"
    # the source as an ID for the worker, and as the name the page shows it by
    assert op.kind == "tag" and op.args == {
        "source": APP_ID,
        "target": "webapp:2.0",
        "source_name": "webapp:1.0",
    }


def test_it_explains_an_invalid_tag(client, images):
    response = client.post(f"/images/{APP_ID[7:19]}/tag/", {"target": "Bad:Name"}, follow=True)
    assert b"invalid reference format" in response.content
    assert not Operation.objects.exists()


def finished_removal(**fields) -> Operation:
    op = Operation.objects.create(kind="remove", args={"ref": "webapp:1.0", "force": False})
    Operation.objects.filter(pk=op.pk).update(finished_at=timezone.now(), **fields)
    op.refresh_from_db()
    return op


def test_it_shows_an_untag_plainly(client, images):
    op = finished_removal(
        status="done", result=[["Untagged", "webapp:1.0"]], references_left=1, tags_left=1
    )
    response = client.get(f"/operations/{op.pk}/", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="operation-status">')
    assert "hx-trigger" not in html
    assert "Untagged: webapp:1.0" in html
    assert "Untagged only: 1 other tag keeps this image" in html


def test_it_says_a_digest_reference_is_not_a_tag(client, images):
    # the image page lists tags and digests apart; so does the summary
    op = finished_removal(
        status="done", result=[["Untagged", "webapp:1.0"]], references_left=2, tags_left=1
    )
    html = client.get(f"/operations/{op.pk}/").content.decode()
    assert "Untagged only: 1 other tag keeps this image (and 1 digest reference)" in html
    op = finished_removal(
        status="done", result=[["Untagged", "webapp:1.0"]], references_left=1, tags_left=0
    )
    html = client.get(f"/operations/{op.pk}/").content.decode()
    assert "Untagged only: 1 digest reference keeps this image" in html


def test_it_shows_a_deletion_plainly(client, images):
    op = finished_removal(
        status="done",
        result=[["Untagged", "webapp:1.0"], ["Deleted", APP_ID], ["Deleted", "sha256:" + "9" * 64]],
        freed_bytes=6_000_000,
        deleted_layers=1,
    )
    html = client.get(f"/operations/{op.pk}/").content.decode()
    assert f"Deleted: {APP_ID}" in html
    assert "Deleted: the image and 1 layer, 6MB freed" in html


def test_it_offers_force_removal_after_a_conflict(client, images):
    op = finished_removal(
        status="failed",
        conflict=True,
        error='conflict: unable to remove repository reference "webapp:1.0" (must force)',
    )
    html = client.get(f"/operations/{op.pk}/").content.decode()
    assert "must force" in html
    assert "Force removal" in html and 'name="force" value="1"' in html
    response = client.post("/images/remove/", {"target": "webapp:1.0", "force": "1"})
    forced = Operation.objects.exclude(pk=op.pk).get()
    assert response["Location"] == f"/operations/{forced.pk}/"
    assert forced.args["force"] is True


def test_it_speaks_chinese_on_the_images_page(client, images):
    response = client.get("/images/", headers={"Accept-Language": "zh-hans"})
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html
    assert "镜像" in html and "仓库" in html
    assert "共享层只计一次" in html
    assert settings.LANGUAGE_CODE == "en"


@pytest.mark.django_db
def test_it_pages_a_long_image_list(client):
    from images.models import Image, Reference, Repository

    repo = Repository.objects.create(name="docker.io/library/many", familiar_name="many")
    for i in range(130):
        image = Image.objects.create(image_id=f"sha256:{i:064x}", size=1000 + i)
        Reference.objects.create(repository=repo, tag=f"t{i}", image=image)
    first = client.get("/images/")
    assert first.content.count(b'<td class="repo"') == 100
    assert b"Rows 1\xe2\x80\x93100 of 130" in first.content
    second = client.get("/images/?page=2", headers={"HX-Request": "true"})
    assert second.content.count(b'<td class="repo"') == 30
    assert b"Rows 101\xe2\x80\x93130 of 130" in second.content
    assert b"<html" not in second.content
