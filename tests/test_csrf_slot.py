"""Kept pages and fragments (images/views.py ``_render_kept``) get each answer's own CSRF
token in a slot no untrusted text can contain: a registry error message that holds the old
fixed marker, or anything token-like, stays as it was."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from images import views
from images.models import Pull

OLD_MARKER = "\x00csrf-token\x00"


@pytest.fixture
def role() -> str:
    return "operator"  # the fragment has a cancel form (with a token) for operators


def _failed_pull(error: str) -> Pull:
    return Pull.objects.create(
        reference="127.0.0.1:5000/evil:1",
        normalized="127.0.0.1:5000/evil:1",
        status=Pull.Status.FAILED,
        finished_at=timezone.now(),
        error=error,
    )


def _tokens(html: str) -> list[str]:
    return re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)


def test_a_marker_in_a_registry_error_is_not_replaced_by_the_token(client, db):
    error = f"denied: {OLD_MARKER} and csrf-slot-{'0' * 32} from the registry"
    pull = _failed_pull(error)
    page = client.get(f"/pulls/{pull.pk}/").content.decode()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    for _ in range(2):  # rendered, then from the kept fragment
        fragment = client.get(f"/pulls/{pull.pk}/", headers={"HX-Request": "true"})
        html = fragment.content.decode()
        assert OLD_MARKER in html
        assert f"csrf-slot-{'0' * 32}" in html
        assert token not in html.split("denied:", 1)[1].split("from the registry", 1)[0]


def test_each_answer_gets_its_own_token_in_the_kept_fragment(db, user):
    pull = Pull.objects.create(
        reference="busybox",
        normalized="docker.io/library/busybox:latest",
        status=Pull.Status.RUNNING,
        started_at=timezone.now(),
    )
    views._fragments.clear()
    answers = []
    for _ in range(2):
        client = Client()
        client.force_login(user)
        response = client.get(f"/pulls/{pull.pk}/", headers={"HX-Request": "true"})
        answers.append(response.content.decode())
    assert len(views._fragments) == 1  # the second answer came from the kept fragment
    (first,), (second,) = _tokens(answers[0]), _tokens(answers[1])
    assert first != second  # each session's own token, masked afresh
    assert "csrf-slot-" not in answers[0] + answers[1]


def test_the_slot_is_drawn_for_each_rendering(db, user, monkeypatch):
    drawn = []
    real = views.secrets.token_hex

    def spy(n):
        drawn.append(real(n))
        return drawn[-1]

    monkeypatch.setattr(views.secrets, "token_hex", spy)
    views._fragments.clear()
    client = Client()
    client.force_login(user)
    for status in (Pull.Status.RUNNING, Pull.Status.FAILED):
        pull = Pull.objects.create(reference="busybox", status=status, started_at=timezone.now())
        client.get(f"/pulls/{pull.pk}/", headers={"HX-Request": "true"})
    assert len(drawn) == 2 and drawn[0] != drawn[1] and all(len(d) == 32 for d in drawn)
