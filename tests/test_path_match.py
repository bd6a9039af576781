"""Go's ``path.Match`` for ``reference=`` filters (dockweb.docker.filters.go_path_match):
the cases of Go's own test table (src/path/match_test.go), and linear time on the
patterns that made the old regular-expression translation backtrack for minutes."""

from __future__ import annotations

import time

import pytest

from dockweb.docker import filters
from dockweb.docker.filters import BadPattern, go_path_match

BAD = "bad"

# (pattern, name, expected): Go's matchTests, with ErrBadPattern as BAD.
GO_MATCH_TESTS = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("[]a]", "]", BAD),
    ("[-]", "-", BAD),
    ("[x-]", "x", BAD),
    ("[x-]", "-", BAD),
    ("[x-]", "z", BAD),
    ("[-x]", "x", BAD),
    ("[-x]", "-", BAD),
    ("[-x]", "a", BAD),
    ("\\", "a", BAD),
    ("[a-b-c]", "a", BAD),
    ("[", "a", BAD),
    ("[^", "a", BAD),
    ("[^bc", "a", BAD),
    ("a[", "a", BAD),
    ("a[", "ab", BAD),
    ("a[", "x", BAD),
    ("a/b[", "x", BAD),
    ("*x", "xxx", True),
]

# More of Go's behaviour, worked out from its algorithm: the first fit of a starred chunk is
# kept (no backtracking), a class may match "/", a star skips bytes (so "??" can read the
# two halves of one multi-byte character as two invalid runes), and a malformed tail is
# reported even when the start already failed.
MORE = [
    ("[]", "x", BAD),
    ("[^]", "x", BAD),
    ("x*[", "y", BAD),
    ("*\\", "", BAD),
    ("a[^x]b", "a/b", True),
    ("a[/]b", "a/b", True),
    ("*", "", True),
    ("", "", True),
    ("", "a", False),
    ("**", "ab", True),
    ("a**b", "axxb", True),
    ("[*]", "*", True),
    ("[*]x", "*x", True),
    ("*??", "☺", True),
    ("busybox:*", "busybox:latest", True),
    ("busybox*", "library/busybox", False),
    ("*/*", "library/busybox", True),
    ("127.0.0.1:5000/*:*", "127.0.0.1:5000/app:v1", True),
]


@pytest.mark.parametrize("pattern,name,expected", GO_MATCH_TESTS + MORE)
def test_it_matches_as_go_path_match(pattern, name, expected):
    if expected is BAD:
        with pytest.raises(BadPattern, match="syntax error in pattern"):
            go_path_match(pattern, name)
    else:
        assert go_path_match(pattern, name) is expected


def test_a_bad_pattern_is_an_invalid_argument():
    from dockweb.runtime.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        go_path_match("[]", "busybox")


def _steps(pattern: str, name: str) -> int:
    """Chunk attempts go_path_match makes, counted by wrapping the chunk matcher."""
    count = 0
    inner = filters._match_chunk

    def counting(items, s, i):
        nonlocal count
        count += 1
        return inner(items, s, i)

    filters._match_chunk = counting
    try:
        go_path_match(pattern, name)
    finally:
        filters._match_chunk = inner
    return count


@pytest.mark.parametrize("stars", [18, 40, 200])
def test_many_stars_take_linear_steps(stars):
    """The attack: many stars and a letter the name lacks. Chunk attempts stay within
    (pattern length + 1) x (name length + 1), never exponential."""
    pattern = "*" * stars + "Q"
    for name in ["a" * 60, "busybox:latest", "127.0.0.1:5000/" + "x" * 200 + ":tag"]:
        assert go_path_match(pattern, name) is False
        assert _steps(pattern, name) <= (len(pattern) + 1) * (len(name) + 1)
    interleaved = "a*" * stars + "Q"
    name = "a" * 300
    assert go_path_match(interleaved, name) is False
    assert _steps(interleaved, name) <= (len(interleaved) + 1) * (len(name) + 1)


def test_forty_stars_answer_at_once():
    """A generous wall-clock bound (the structural bound is above): the old translation
    took 49 s for 18 stars."""
    pattern = "*" * 40 + "Q"
    names = ["a" * 100] * 200
    started = time.perf_counter()
    for name in names:
        go_path_match(pattern, name)
    assert time.perf_counter() - started < 2.0


# -- the attack through the web doors -----------------------------------------------------


@pytest.fixture
def role() -> str:
    return "viewer"  # the attacker of the issue: a viewer may list images


@pytest.fixture
def many_images(db):
    """60 images with long repository names, as database rows (the pages' and the API's
    source): the more names, the longer a backtracking matcher would take."""
    from datetime import UTC, datetime

    from images.models import Image, Reference, Repository

    for n in range(60):
        image = Image.objects.create(
            image_id="sha256:" + f"{n:04d}".ljust(64, "a"),
            created=datetime(2024, 1, 1, tzinfo=UTC),
            size=1,
            compressed_size=1,
            config={},
        )
        name = f"127.0.0.1:5000/team/{'a' * 40}-{n}"
        repo = Repository.objects.create(name=name, familiar_name=name)
        Reference.objects.create(repository=repo, image=image, tag="latest")
    busybox = Repository.objects.create(name="docker.io/library/busybox", familiar_name="busybox")
    Reference.objects.create(repository=busybox, image=image, tag="1.36")


def test_forty_stars_through_the_api_answer_fast(client, many_images):
    for stars in (18, 40):
        started = time.perf_counter()
        response = client.get("/api/images/", {"reference": "*" * stars + "Q"})
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        assert response.json()["images"] == []
        assert elapsed < 5.0  # generous: 49 s before for 18 stars
    found = client.get("/api/images/", {"reference": "*" * 40 + "box:1.3?"}).json()["images"]
    assert [(r["repository"], r["tag"]) for r in found] == [("busybox", "1.36")]
    found = client.get("/api/images/", {"reference": "127.0.0.1:5000/*/*-1?"}).json()["images"]
    assert len(found) == 10


def test_sixteen_stars_on_the_images_page_answer_fast(client, many_images):
    started = time.perf_counter()
    response = client.get("/images/", {"reference": "*" * 16 + "Q"})
    assert response.status_code == 200
    assert time.perf_counter() - started < 5.0  # generous: 90 s before


def test_a_malformed_pattern_is_a_400_with_gos_message(client, many_images):
    for pattern in ("[]", "[", "a\\", "[x-]", "[^"):
        response = client.get("/api/images/", {"reference": pattern})
        assert response.status_code == 400, pattern
        assert response.json() == {"error": "syntax error in pattern"}
    page = client.get("/images/", {"reference": "[]"})
    assert page.status_code == 200
    assert "syntax error in pattern" in page.content.decode()


@pytest.mark.parametrize("path", ["/api/images/", "/images/", "/containers/", "/audit/"])
def test_an_overlong_query_parameter_is_refused(client, settings, path):
    settings.DOCKWEB_MAX_QUERY_PARAM = 1024
    response = client.get(path, {"reference": "*" * 1025})
    assert response.status_code == 400
    assert b"longer than 1024 characters" in response.content
    response = client.get(path, {"x" * 2000: "1"})
    assert response.status_code == 400
    assert client.get(path, {"reference": "*" * 1024}).status_code != 400
