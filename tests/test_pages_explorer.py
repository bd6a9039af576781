"""The layer explorer's pages: the image page's summary, a layer's files, the file tree.

An image is pulled into a real store (the pull analyzes it, as the worker's pull does);
then DOCKWEB_ROOT points at an empty directory and the store is made unreachable, so the
pages are shown to come from the database alone.
"""

from __future__ import annotations

import os
import random
import re

import pytest
from django.core.management import call_command

from images import services
from images.models import Image, ImageAnalysis
from images.services import builds, explorer, listing, mirror, operations, pulls
from tests.support import images as im

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root"),
    pytest.mark.django_db,
]

MB = 1_000_000


@pytest.fixture(scope="module")
def dockerfile_like(registry) -> im.Image:
    """FROM base; ADD big; RUN rm big; COPY config over the base's; many files in /usr/lib."""
    image = im.Image(
        [
            im.Layer(
                [
                    im.dir_("etc"),
                    im.file("etc/app.conf", b"a" * 3000),
                    im.dir_("usr"),
                    im.dir_("usr/lib"),
                    *[im.file(f"usr/lib/lib{i:04d}.so", b"x" * 10) for i in range(1200)],
                ]
            ),
            im.Layer([im.dir_("tmp"), im.file("tmp/big", random.Random(0).randbytes(MB))]),
            im.Layer(
                [
                    im.dir_("tmp"),
                    im.whiteout("tmp/big"),
                    im.dir_("etc"),
                    im.file("etc/app.conf", b"b" * 100),
                    im.dir_("opt"),
                    im.opaque("opt"),
                ]
            ),
        ],
        history=[
            {"created": im.CREATED, "created_by": "ADD rootfs.tar /"},
            {"created": im.CREATED, "created_by": "RUN curl -o /tmp/big https://example.com"},
            {"created": im.CREATED, "created_by": "RUN rm /tmp/big && edit /etc/app.conf"},
        ],
    )
    im.push_image(registry.host, "explorer/app", "1", image)
    return image


@pytest.fixture
def pulled(settings, tmp_path, registry, dockerfile_like) -> Image:
    """The image pulled and analyzed; then the store is out of reach of the pages."""
    settings.DOCKWEB_ROOT = tmp_path / "store"
    services.pull_image(f"{registry.host}/explorer/app:1")
    empty = tmp_path / "empty"
    empty.mkdir()
    settings.DOCKWEB_ROOT = empty
    return Image.objects.get(image_id=dockerfile_like.image_id)


@pytest.fixture
def no_store(monkeypatch, tmp_path):
    def refuse():
        raise AssertionError("a page read the store")

    for module in (builds, explorer, listing, mirror, operations, pulls):
        monkeypatch.setattr(module, "get_store", refuse)
    yield
    assert os.listdir(tmp_path / "empty") == []


@pytest.fixture
def role() -> str:
    return "viewer"  # the explorer only reads


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_it_analyzes_an_image_when_it_is_pulled(pulled):
    analysis = ImageAnalysis.objects.get(image=pulled)
    assert analysis.wasted_bytes == MB + 3000
    assert analysis.total_bytes == 3000 + 12_000 + MB + 100
    assert analysis.directories.filter(path="/usr/lib").exists()
    assert analysis.layer_files.count() == 3


def test_it_shows_efficiency_and_each_layers_changes_on_the_image_page(pulled, client, no_store):
    response = client.get(f"/images/{pulled.image_id[7:]}/")
    assert response.status_code == 200
    page = text(response.content.decode())
    # (1 - 1,003,000 / 1,015,100) = 1.19 %
    assert "Efficiency 1.2% · 1MB wasted by files later layers overwrite or delete" in page
    assert "Browse its 1206 files" in page
    explorer = response.content.decode().split('id="layer-explorer"')[1]
    rows = re.findall(r"<tr>\s*<td class=\"muted\">(\d)</td>(.*?)</tr>", explorer, re.S)
    third = text(rows[2][1])
    # 1 changed (100 B), 1 deleted (1 MB), causes 1MB + 3kB of waste
    assert "RUN rm /tmp/big" in third
    assert "1 · 100B" in third and "1 · 1MB" in third and "1MB" in third
    second = text(rows[1][1])
    assert second.split()[-1] == "1MB"  # the megabyte is held in layer 2
    html = response.content.decode()
    assert f'hx-get="/images/{pulled.image_id[7:]}/layers/2/"' in html
    assert f'href="/images/{pulled.image_id[7:]}/layers/2/"' in html


def test_it_lists_a_layers_files_marking_whiteouts_and_opaque_dirs(pulled, client, no_store):
    url = f"/images/{pulled.image_id[7:]}/layers/2/"
    partial = client.get(url, headers={"HX-Request": "true"})
    assert partial.status_code == 200
    html = partial.content.decode()
    assert "<html" not in html and 'class="layer-file-list"' in html
    rows = {
        m.group(2): text(m.group(0))
        for m in re.finditer(
            r'<tr class="change-(\w+)">.*?class="wide mono path">(.*?)</td>.*?</tr>', html, re.S
        )
    }
    assert set(rows) == {"/etc/app.conf", "/opt/", "/tmp/big"}
    assert "deleted" in rows["/tmp/big"] and "whiteout" in rows["/tmp/big"]
    assert "1MB" in rows["/tmp/big"] and "still in layer 2" in rows["/tmp/big"]
    assert "opaque directory" in rows["/opt/"] and "added" in rows["/opt/"]
    assert "replaces 3kB of layer 1" in rows["/etc/app.conf"]

    full = client.get(url)
    assert "<html" in full.content.decode() and "Layer 3 of 3" in text(full.content.decode())
    only_deleted = client.get(url, {"change": "deleted"}, headers={"HX-Request": "true"})
    only_deleted = text(only_deleted.content.decode())
    assert "/tmp/big" in only_deleted and "/etc/app.conf" not in only_deleted


def test_it_caps_a_layers_file_list_and_filters_it(pulled, client, no_store):
    url = f"/images/{pulled.image_id[7:]}/layers/0/"
    html = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert html.count('<tr class="change-added">') == services.EXPLORER_ROWS
    assert "1204 paths" in text(html) and "Page 1 of 3" in text(html)
    last = client.get(url, {"page": 3}, headers={"HX-Request": "true"}).content.decode()
    assert last.count('<tr class="change-added">') == 1204 - 2 * services.EXPLORER_ROWS
    found = text(client.get(url, {"q": "LIB0042"}, headers={"HX-Request": "true"}).content.decode())
    assert "1 path of 1204" in found and "/usr/lib/lib0042.so" in found


def test_it_browses_the_merged_tree_one_directory_at_a_time(pulled, client, no_store):
    url = f"/images/{pulled.image_id[7:]}/files/"
    root = client.get(url)
    assert root.status_code == 200
    html = root.content.decode()
    names = re.findall(r'<td class="wide mono path"><a href="[^"]*">([^<]+)</a>', html)
    assert names == ["etc/", "opt/", "tmp/", "usr/"]
    # /etc comes from layer 3, which changed it; /usr from layer 1
    hex_id = pulled.image_id[7:]
    etc = re.search(r"etc/</a>.*?</tr>", html, re.S).group(0)
    assert f'href="/images/{hex_id}/layers/2/"' in etc and "#3" in etc
    usr = re.search(r"usr/</a>.*?</tr>", html, re.S).group(0)
    assert f'href="/images/{hex_id}/layers/0/"' in usr and "12kB" in usr

    tmp = text(client.get(url, {"path": "/tmp"}).content.decode())
    assert "Empty directory." in tmp  # big was deleted
    lib = client.get(url, {"path": "usr//lib/"}).content.decode()
    assert lib.count("-rw-r--r--") == services.EXPLORER_ROWS and "1200 entries" in text(lib)
    found = client.get(url, {"path": "/usr/lib", "q": "lib1199"}, headers={"HX-Request": "true"})
    assert "<html" not in found.content.decode() and "lib1199.so" in found.content.decode()
    assert client.get(url, {"path": "/etc/app.conf"}).status_code == 404
    assert client.get(url, {"path": "/nope"}).status_code == 404


def test_it_says_when_an_image_was_not_analyzed_and_the_command_backfills_it(
    pulled, client, settings, tmp_path
):
    ImageAnalysis.objects.all().delete()
    html = text(client.get(f"/images/{pulled.image_id[7:]}/").content.decode())
    assert "Not analyzed yet" in html and "manage.py analyze_images" in html
    assert client.get(f"/images/{pulled.image_id[7:]}/files/").status_code == 404
    assert client.get(f"/images/{pulled.image_id[7:]}/layers/0/").status_code == 404

    settings.DOCKWEB_ROOT = tmp_path / "store"
    call_command("analyze_images")
    assert ImageAnalysis.objects.get(image=pulled).wasted_bytes == MB + 3000
