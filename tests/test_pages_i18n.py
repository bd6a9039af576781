"""English and Simplified Chinese: every page string translated, chosen by browser or menu."""

from __future__ import annotations

import re
import subprocess
from gettext import GNUTranslations
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from images.models import Pull

PO = Path(settings.BASE_DIR, "locale/zh_Hans/LC_MESSAGES/django.po")
MO = PO.with_suffix(".mo")


@pytest.fixture
def role() -> str:
    return "admin"  # every button shows, to be translated


def test_it_translates_every_message():
    stats = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(PO)],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    assert re.fullmatch(r"\d+ translated messages\.\n", stats), stats
    assert "#, fuzzy" not in PO.read_text()


def test_it_ships_the_compiled_catalog_up_to_date(tmp_path):
    assert MO.exists(), "run: manage.py compilemessages -l zh_Hans -i .venv -i var"
    fresh = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "-o", str(fresh), str(PO)], check=True)
    with MO.open("rb") as shipped, fresh.open("rb") as compiled:
        assert GNUTranslations(shipped)._catalog == GNUTranslations(compiled)._catalog, (
            "django.mo is older than django.po: run compilemessages"
        )


@pytest.mark.parametrize(
    "path, words",
    [
        ("/images/", ["镜像", "拉取镜像", "还没有镜像。"]),
        ("/pull/", ["拉取镜像", "镜像引用", "本机平台（默认）", "最近的拉取"]),
        ("/registries/", ["镜像仓库", "添加或替换", "密码或令牌"]),
    ],
)
def test_it_speaks_chinese_to_a_chinese_browser(client, path, words):
    response = client.get(path, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html
    for word in words:
        assert word in html
    assert "退出登录" in html  # the navigation too


def test_it_speaks_english_by_default(client, db):
    html = client.get("/pull/").content.decode()
    assert '<html lang="en">' in html and "Recent pulls" in html


def test_it_translates_htmx_fragments(client, db):
    pull = Pull.objects.create(reference="busybox", status=Pull.Status.CANCELLED)
    fragment = client.get(
        f"/pulls/{pull.pk}/", headers={"HX-Request": "true", "Accept-Language": "zh-hans"}
    ).content.decode()
    assert "已取消" in fragment and "拉取已取消" in fragment


def test_it_switches_language_from_the_menu(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/pull/").content.decode()
    form = re.search(r'<form action="/i18n/setlang/" method="post">(.*?)</form>', page, re.S)
    assert form and 'value="zh-hans"' in form.group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.group(1)).group(1)
    response = client.post(
        "/i18n/setlang/", {"language": "zh-hans", "next": "/pull/", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302 and response["Location"] == "/pull/"
    html = client.get("/pull/").content.decode()
    assert '<html lang="zh-hans">' in html and "最近的拉取" in html


def test_it_shows_the_login_page_in_chinese(db):
    html = Client().get("/login/", headers={"Accept-Language": "zh-hans"}).content.decode()
    assert "登录" in html and "用户名" in html
