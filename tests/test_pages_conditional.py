"""Conditional GETs and caches behind the Images page and the pull-progress fragment: 304
while nothing shown has changed, never a stale table, login and roles as before."""

from __future__ import annotations

import pytest
from django.contrib import messages
from django.test import Client
from django.utils import timezone

from access.roles import role_of, set_role
from images import services
from images.models import MirrorGeneration, Pull, PullLayer, Reference
from tests.test_pages_images import APP_ID, images  # noqa: F401 (images: a fixture)
from tests.test_pages_pull import running_pull

PASSWORD = "a-long-test-password-42"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def role() -> str:
    return "operator"


@pytest.fixture
def client(client) -> Client:
    client.get("/images/")  # the first page also sets the CSRF cookie, which ETags cover
    return client


def finished_pull() -> Pull:
    pull = running_pull()
    now = timezone.now()
    Pull.objects.filter(pk=pull.pk).update(
        status=Pull.Status.DONE, finished_at=now, updated_at=now, downloaded_bytes=60_000_000
    )
    return pull


def test_it_answers_an_unchanged_fragment_304_without_rendering(client, db):
    pull = finished_pull()
    first = client.get(f"/pulls/{pull.pk}/", **HX)
    assert first.status_code == 200
    assert first["ETag"].startswith('"')
    assert "no-cache" in first["Cache-Control"] and "private" in first["Cache-Control"]
    again = client.get(f"/pulls/{pull.pk}/", HTTP_IF_NONE_MATCH=first["ETag"], **HX)
    assert again.status_code == 304
    assert again.content == b""
    assert again.templates == []
    assert again["ETag"] == first["ETag"]
    assert "HX-Request" in again["Vary"]


def test_it_renders_the_fragment_again_when_a_layer_moves(client, db):
    pull = running_pull()
    first = client.get(f"/pulls/{pull.pk}/", **HX)
    assert "12.3MB / 45.6MB" in first.content.decode()
    layer = PullLayer.objects.get(pull=pull, position=1)
    layer.current = 40_000_000
    layer.save()
    again = client.get(f"/pulls/{pull.pk}/", HTTP_IF_NONE_MATCH=first["ETag"], **HX)
    assert again.status_code == 200
    assert again["ETag"] != first["ETag"]
    assert "12.3MB" not in again.content.decode()


def test_it_renders_the_fragment_again_when_the_pull_ends(client, db):
    pull = running_pull()
    first = client.get(f"/pulls/{pull.pk}/", **HX)
    assert "hx-trigger" in first.content.decode()
    Pull.objects.filter(pk=pull.pk).update(
        status=Pull.Status.DONE, finished_at=timezone.now(), updated_at=timezone.now()
    )
    again = client.get(f"/pulls/{pull.pk}/", HTTP_IF_NONE_MATCH=first["ETag"], **HX)
    assert again.status_code == 200
    assert "hx-trigger" not in again.content.decode()


def test_it_renders_the_fragment_again_for_another_role_or_language(client, user, db):
    pull = finished_pull()
    first = client.get(f"/pulls/{pull.pk}/", **HX)
    chinese = client.get(
        f"/pulls/{pull.pk}/", HTTP_IF_NONE_MATCH=first["ETag"], HTTP_ACCEPT_LANGUAGE="zh-hans", **HX
    )
    assert chinese.status_code == 200
    set_role(user, "viewer")
    viewer = client.get(f"/pulls/{pull.pk}/", HTTP_IF_NONE_MATCH=first["ETag"], **HX)
    assert viewer.status_code == 200
    assert viewer["ETag"] != first["ETag"]


def test_it_still_requires_login_for_a_conditional_request(client, db):
    pull = finished_pull()
    etag = client.get(f"/pulls/{pull.pk}/", **HX)["ETag"]
    anonymous = Client().get(f"/pulls/{pull.pk}/", HTTP_IF_NONE_MATCH=etag, **HX)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/login/?next=")


def test_it_answers_an_unchanged_images_page_304(client, images):  # noqa: F811
    first = client.get("/images/")
    assert first.status_code == 200
    again = client.get("/images/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again.content == b""
    table = client.get("/images/", **HX)
    assert table["ETag"] != first["ETag"]  # the table alone is another answer
    assert client.get("/images/", HTTP_IF_NONE_MATCH=table["ETag"], **HX).status_code == 304


def test_it_renders_the_images_page_again_when_a_pull_starts(client, images):  # noqa: F811
    first = client.get("/images/")
    running_pull()
    again = client.get("/images/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200
    assert "nginx:1.25" in again.content.decode()  # in the navigation's active pulls


def test_it_renders_a_page_with_messages_waiting(client, user, images):  # noqa: F811
    first = client.get("/images/")
    # a message left by a redirecting POST (here: a tag without its target)
    client.post(f"/images/{APP_ID[7:19]}/tag/", {"target": ""})
    again = client.get("/images/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200
    assert "ETag" not in again
    assert [m.level for m in again.context["messages"]] == [messages.ERROR]


def test_it_shows_a_tag_changed_behind_the_cache(client, images):  # noqa: F811
    assert "webapp" in client.get("/images/").content.decode()
    # a queryset update sends no signal: the database triggers still renew the generation
    Reference.objects.filter(tag="1.0").update(tag="2.0")
    html = client.get("/images/").content.decode()
    assert ">2.0<" in html and ">1.0<" not in html


def test_it_renews_the_generation_on_any_mirror_write(images):  # noqa: F811
    before = MirrorGeneration.current()
    assert before is not None
    Reference.objects.filter(tag="latest").delete()
    assert MirrorGeneration.current() != before


def test_it_serves_an_unchanged_table_from_the_cache_in_one_query(
    images,  # noqa: F811
    django_assert_num_queries,
):
    rows, _ = services.image_table()
    with django_assert_num_queries(1):
        again, _ = services.image_table()
    assert again is rows
    Reference.objects.filter(tag="latest").delete()
    fresh, _ = services.image_table()
    assert fresh is not rows
    assert "latest" in {row["tag"] for row in rows}
    assert "latest" not in {row["tag"] for row in fresh}


def test_it_reads_the_role_in_one_query(user, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert role_of(user) == "operator"
        assert role_of(user) == "operator"


# --- pages and fragments kept per process, shared between the people watching ----------


def _csrf_value(html: str) -> str:
    import re

    found = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert found, "no CSRF field"
    return found[0]


def test_a_kept_fragment_carries_each_requests_own_valid_csrf_token(user, db):
    pull = running_pull()
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    for c in (first, second):
        c.force_login(user)
        c.get("/images/")
    one = first.get(f"/pulls/{pull.pk}/", **HX).content.decode()
    two = second.get(f"/pulls/{pull.pk}/", **HX).content.decode()  # the kept render
    assert "\x00" not in one and "\x00" not in two
    token = _csrf_value(two)
    # the token the kept fragment carried is the second client's: its Cancel works
    resp = second.post(f"/pulls/{pull.pk}/cancel/", {"csrfmiddlewaretoken": token})
    assert resp.status_code == 302
    assert Pull.objects.get(pk=pull.pk).cancel_requested
    # and it is no good to a client with another CSRF cookie
    stranger = Client(enforce_csrf_checks=True)
    stranger.force_login(user)
    stranger.get("/images/")
    assert (
        stranger.post(f"/pulls/{pull.pk}/cancel/", {"csrfmiddlewaretoken": token}).status_code
        == 403
    )
    assert _csrf_value(one) != token


def test_a_fragment_kept_for_an_operator_is_not_shown_to_a_viewer(user, django_user_model, db):
    pull = running_pull()
    operator = Client()
    operator.force_login(user)
    assert "Cancel" in operator.get(f"/pulls/{pull.pk}/", **HX).content.decode()
    viewer_user = django_user_model.objects.create_user("victor", password=PASSWORD)
    set_role(viewer_user, "viewer")
    viewer = Client()
    viewer.force_login(viewer_user)
    html = viewer.get(f"/pulls/{pull.pk}/", **HX).content.decode()
    assert "12.3MB / 45.6MB" in html
    assert "Cancel" not in html and "csrfmiddlewaretoken" not in html


def test_a_kept_images_page_shows_each_user_their_own_name_and_token(
    user,
    django_user_model,
    images,  # noqa: F811
):
    other = django_user_model.objects.create_user("bob-the-second", password=PASSWORD)
    set_role(other, "operator")
    pages = {}
    for u in (user, other, user):
        c = Client(enforce_csrf_checks=True)
        c.force_login(u)
        c.get("/images/")
        html = c.get("/images/").content.decode()
        assert f'<span class="user">{u.get_username()}</span>' in html
        assert "\x00" not in html
        # the page's token (the logout form's) is valid for this client
        assert c.post("/logout/", {"csrfmiddlewaretoken": _csrf_value(html)}).status_code == 302
        pages.setdefault(u.pk, []).append(html)
    assert "bob-the-second" not in pages[user.pk][0]


def test_a_kept_images_page_follows_its_query_and_language(client, images):  # noqa: F811
    plain = client.get("/images/").content.decode()
    digests = client.get("/images/?digests=1").content.decode()
    assert plain != digests and "DIGEST" in digests.upper()
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/images/"})
    chinese = client.get("/images/").content.decode()
    assert 'lang="zh-hans"' in chinese


def test_a_session_logged_out_elsewhere_stops_at_once(user, db):
    pull = running_pull()
    c = Client()
    c.force_login(user)
    assert c.get(f"/pulls/{pull.pk}/", **HX).status_code == 200
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()  # as logging out in another server process does
    assert c.get(f"/pulls/{pull.pk}/", **HX).status_code == 302
    assert c.get("/images/").status_code == 302


def test_a_password_change_or_deactivation_ends_other_sessions(user, db):
    c = Client()
    c.force_login(user)
    assert c.get("/images/").status_code == 200
    user.set_password("another-long-password-43")
    user.save()
    assert c.get("/images/").status_code == 302
    c.force_login(user)
    assert c.get("/images/").status_code == 200
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert c.get("/images/").status_code == 302


def test_an_expired_session_is_refused(user, db):
    from datetime import timedelta

    from django.contrib.sessions.models import Session

    c = Client()
    c.force_login(user)
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert c.get("/images/").status_code == 302


@pytest.mark.parametrize(
    "seconds",
    [
        0,
        59,
        60,
        61,
        89,
        119,
        120,
        3599,
        3600,
        3661,
        86399,
        86400,
        86400 * 13 + 5,
        86400 * 45,
        86400 * 400,
        86400 * 800 + 7,
    ],
)
def test_since_words_are_djangos_timesince_however_often_asked(seconds):
    from datetime import timedelta

    from django.utils import translation
    from django.utils.timesince import timesince

    from images.templatetags.dockweb_extras import since

    for language in ("en", "zh-hans", "en"):
        with translation.override(language):
            now = timezone.now()
            value = now - timedelta(seconds=seconds, microseconds=250_000)
            words = [since(value) for _ in range(3)]  # asked again: the kept words
            assert len(set(words)) == 1
            if seconds < 60:
                expected = translation.gettext("less than a minute ago")
            else:
                expected = translation.gettext("%(time)s ago") % {
                    "time": timesince(value, now, depth=1)
                }
            assert words[0] == expected
