"""Hostile input is shown as text: an image whose labels, environment, history and file names
carry HTML, and a container whose logs, labels and environment do, render escaped on every
page (as an admin, who sees every button, and as a viewer).

A repository name cannot carry HTML (the reference grammar refuses it), so the image is
pulled as hostile/app from the test registry; the hostile text is everything else.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone

from access.roles import set_role
from containers.models import Container
from containers.services import log_path
from images import services
from images.models import Image
from tests.support import images as im

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root"),
    pytest.mark.django_db,
]

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
ESCAPED_IMG = "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
CID = "7e" * 32


@pytest.fixture(scope="module")
def hostile_image(registry) -> im.Image:
    image = im.Image(
        [
            im.Layer(
                [
                    # "<script>alert(1)<" / "script>": the layer page shows the whole path
                    im.dir_("<script>alert(1)<"),
                    im.file("<script>alert(1)</script>", b"x"),
                    im.file(IMG, b"y"),
                    im.dir_("etc"),
                    im.file(f"etc/{IMG}.conf", b"z"),
                ]
            )
        ],
        config={
            "Env": ["PATH=/bin", f"XSS={SCRIPT}", f"ATTR={IMG}"],
            "Labels": {"evil": SCRIPT, IMG: "attribute"},
            "Cmd": ["sh", "-c", SCRIPT],
            "WorkingDir": f"/{IMG}",
        },
        history=[{"created": im.CREATED, "created_by": f"RUN echo {SCRIPT} {IMG}"}],
    )
    im.push_image(registry.host, "hostile/app", "1", image)
    return image


@pytest.fixture
def pulled(settings, tmp_path, registry, hostile_image) -> Image:
    settings.DOCKWEB_ROOT = tmp_path / "store"
    services.pull_image(f"{registry.host}/hostile/app:1")
    services.sync_images()
    return Image.objects.get(image_id=hostile_image.image_id)


@pytest.fixture
def container(settings, pulled) -> Container:
    now = timezone.now()
    c = Container.objects.create(
        container_id=CID,
        name="web",
        image="hostile/app:1",
        image_id=pulled.image_id,
        path="sh",
        args=["-c", SCRIPT],
        status="exited",
        created=now - timedelta(minutes=3),
        started_at=now - timedelta(minutes=2),
        finished_at=now - timedelta(minutes=1),
        labels={"evil": SCRIPT, IMG: "x"},
        inspect={"Id": CID, "Name": "/web", "Config": {"Env": [f"XSS={SCRIPT}"]}},
    )
    log = Path(log_path(CID))
    log.parent.mkdir(parents=True)
    lines = [
        {"log": f"{SCRIPT}\n", "stream": "stdout", "time": "2024-01-01T00:00:00Z"},
        {"log": f"{IMG}\n", "stream": "stderr", "time": "2024-01-01T00:00:01Z"},
    ]
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return c


def pages(image: Image) -> list[str]:
    hexid = image.image_id[7:]
    return [
        "/",
        f"/images/{hexid}/",
        f"/images/{hexid}/layers/0/",
        f"/images/{hexid}/files/?path=/",
        f"/images/{hexid}/files/?path=/etc",
        f"/images/{hexid}/files/?{urlencode({'path': '/<script>alert(1)<'})}",
        "/containers/",
        f"/containers/{CID}/",
        f"/containers/{CID}/logs/?offset=0",
        f"/containers/run/?{urlencode({'image': IMG, 'command': SCRIPT})}",
        f"/pull/normalize/?{urlencode({'reference': SCRIPT})}",
        f"/images/?{urlencode({'reference': IMG})}",
    ]


def assert_escaped(body: str, where: str) -> None:
    assert "<script>alert" not in body, f"{where}: raw <script>"
    assert "<img src=x" not in body, f"{where}: raw <img>"
    assert '"><img' not in body, f"{where}: an attribute broken out of"


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_it_escapes_hostile_text_on_every_page(django_user_model, pulled, container, role):
    user = django_user_model.objects.create_user(role, password="a-long-test-password-42")
    set_role(user, role)
    client = Client()
    client.force_login(user)
    seen = ""
    for path in pages(pulled):
        response = client.get(path)
        assert response.status_code == 200, f"{path} answered {response.status_code}"
        body = response.content.decode()
        assert_escaped(body, path)
        seen += body
    # and the hostile text is there, as text: the test would pass on pages not showing it
    assert ESCAPED_SCRIPT in seen and ESCAPED_IMG in seen
    detail = client.get(f"/images/{pulled.image_id[7:]}/").content.decode()
    # env (a viewer reads its name only: access/masking.py)
    assert (f"XSS={ESCAPED_SCRIPT}" if role == "admin" else "XSS=••••") in detail
    assert f"evil={ESCAPED_SCRIPT}" in detail  # label
    assert f"RUN echo {ESCAPED_SCRIPT}" in detail  # history
    layer = client.get(f"/images/{pulled.image_id[7:]}/layers/0/").content.decode()
    assert f"/{ESCAPED_SCRIPT}" in layer and ESCAPED_IMG in layer  # file names
    logs = client.get(f"/containers/{CID}/").content.decode()
    assert f'<span class="log-line stdout">{ESCAPED_SCRIPT}' in logs


def test_it_escapes_hostile_input_echoed_in_errors(django_user_model, pulled):
    user = django_user_model.objects.create_user("op", password="a-long-test-password-42")
    set_role(user, "admin")
    client = Client()
    client.force_login(user)
    for path, data in [
        ("/pull/", {"reference": SCRIPT}),
        ("/images/remove/", {"target": IMG}),
        (f"/images/{pulled.image_id[7:]}/tag/", {"target": SCRIPT}),
        ("/containers/run/", {"image": IMG, "workdir": SCRIPT}),
        ("/registries/", {"registry": SCRIPT, "username": IMG, "password": "x"}),
    ]:
        response = client.post(path, data, follow=True)
        body = response.content.decode()
        assert_escaped(body, path)
        assert ESCAPED_SCRIPT in body or ESCAPED_IMG in body, f"{path}: the input is not shown"
