"""References parse and normalize as Docker 20.10's distribution/reference does.

Cases come from upstream reference_test.go and normalize_test.go, and messages from
``docker pull`` of Docker 20.10.24.
"""

from __future__ import annotations

import pytest

from dockweb.runtime.errors import InvalidReference
from dockweb.runtime.reference import (
    Reference,
    parse,
    parse_any_reference,
    parse_docker_ref,
    parse_normalized_named,
    registry_host,
    tag_name_only,
    with_default_tag,
    with_name,
)

D64 = "sha256:" + "f" * 64
REDIS_HEX = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
BUSYBOX_DIGEST = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"


# (input, domain, path, tag, digest) from TestReferenceParse
PARSE_OK = [
    ("test_com", "", "test_com", None, None),
    ("test.com:tag", "", "test.com", "tag", None),
    ("test.com:5000", "", "test.com", "5000", None),
    ("test.com/repo:tag", "test.com", "repo", "tag", None),
    ("test:5000/repo", "test:5000", "repo", None, None),
    ("test:5000/repo:tag", "test:5000", "repo", "tag", None),
    ("test:5000/repo@" + D64, "test:5000", "repo", None, D64),
    ("test:5000/repo:tag@" + D64, "test:5000", "repo", "tag", D64),
    (
        "a/" * 127 + "a:tag-puts-this-over-max",
        "a",
        "a/" * 126 + "a",
        "tag-puts-this-over-max",
        None,
    ),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", None, None),
    (
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com",
        "bar/baz/quux",
        "some-long-tag",
        None,
    ),
    (
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io",
        "test.example.com/my-app",
        "test.example.com",
        None,
    ),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", None),
    ("foo_bar.com:8080", "", "foo_bar.com", "8080", None),
    ("foo/foo_bar.com:8080", "foo", "foo_bar.com", "8080", None),
]


@pytest.mark.parametrize(("text", "domain", "path", "tag", "digest"), PARSE_OK)
def test_it_parses_upstream_reference_cases(text, domain, path, tag, digest):
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.string() == text


PARSE_ERRORS = [
    ("", "repository name must have at least one component"),
    (":justtag", "invalid reference format"),
    ("@" + D64, "invalid reference format"),
    ("validname@invaliddigest:" + "f" * 64, "unsupported digest algorithm"),
    ("a/" * 128 + "a:tag", "repository name must not be more than 255 characters"),
    ("aa/asdf$$^/aa", "invalid reference format"),
    ("foo/Bar", "repository name must be lowercase"),
    ("Upper.Domain/name", None),
    ("busybox@sha256:" + "f" * 63, "invalid checksum digest length"),
    ("busybox@sha256:" + "F" * 64, "invalid checksum digest format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("busybox\n", "invalid reference format"),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS)
def test_it_refuses_bad_references_with_dockers_message(text, message):
    if message is None:  # domains may hold capitals: Parse accepts them
        assert parse(text).domain == text.split("/")[0]
        return
    with pytest.raises(InvalidReference) as exc:
        parse(text)
    assert str(exc.value) == message


# ParseNormalizedNamed messages, as `docker pull X` (20.10.24) prints them.
NORMALIZED_ERRORS = [
    ("Busybox", "invalid reference format: repository name must be lowercase"),
    ("foo/Bar:tag", "invalid reference format: repository name must be lowercase"),
    ("localhost/Foo", "invalid reference format: repository name must be lowercase"),
    ("", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("a..b", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    ("busybox@", "invalid reference format"),
    ("[fc00::1]:5000/debian", "invalid reference format"),
    ("a" * 256, "repository name must not be more than 255 characters"),
    (
        REDIS_HEX,
        f"invalid repository name ({REDIS_HEX}), cannot specify 64-byte hexadecimal strings",
    ),
    ("busybox@sha256:" + "0" * 63, "invalid checksum digest length"),
    ("busybox@sha256:" + "A" * 64, "invalid checksum digest format"),
    ("busybox@md5:" + "0" * 32, "unsupported digest algorithm"),
]


@pytest.mark.parametrize(("text", "message"), NORMALIZED_ERRORS)
def test_it_refuses_what_docker_pull_refuses(text, message):
    with pytest.raises(InvalidReference) as exc:
        parse_normalized_named(text)
    assert str(exc.value) == message


VALID_NAMES = [
    "docker/docker",
    "library/debian",
    "debian",
    "docker.io/docker/docker",
    "docker.io/library/debian",
    "docker.io/debian",
    "index.docker.io/docker/docker",
    "index.docker.io/library/debian",
    "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker",
    "127.0.0.1:5000/library/debian",
    "127.0.0.1:5000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "docker-rules/docker",
    "docker---rules/docker",
    "doc/docker",
    "d/docker",
    "jess/t",
    "dock__er/docker",
]
INVALID_NAMES = [
    "https://github.com/docker/docker",
    "docker/Docker",
    "-docker",
    "-docker/docker",
    "-docker.io/docker/docker",
    "docker///docker",
    "docker.io/docker/Docker",
    "docker.io/docker///docker",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "docker-/docker",
    "-docker-/docker",
    "____/____",
    "_docker/_docker",
    "dock..er/docker",
    "dock_.er/docker",
    "dock-.er/docker",
    "docker/",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255" * 4 + "/docker",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_it_accepts_upstream_valid_names(name):
    assert parse_normalized_named(name).domain


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_it_rejects_upstream_invalid_names(name):
    with pytest.raises(InvalidReference):
        parse_normalized_named(name)


# (familiar, full, also-accepted spelling, domain, path) from TestParseRepositoryInfo
REPOSITORY_INFO = [
    ("fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io", "fooo/bar"),
    ("ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io", "library/ubuntu"),
    ("nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", None, "docker.io", "nonlibrary/ubuntu"),
    ("other/library", "docker.io/other/library", None, "docker.io", "other/library"),
    (
        "127.0.0.1:8000/private/moonbase",
        "127.0.0.1:8000/private/moonbase",
        None,
        "127.0.0.1:8000",
        "private/moonbase",
    ),
    (
        "example.com:8000/privatebasee",
        "example.com:8000/privatebasee",
        None,
        "example.com:8000",
        "privatebasee",
    ),
    (
        "ubuntu-12.04-base",
        "docker.io/library/ubuntu-12.04-base",
        "index.docker.io/library/ubuntu-12.04-base",
        "docker.io",
        "library/ubuntu-12.04-base",
    ),
    ("foo", "docker.io/library/foo", "docker.io/foo", "docker.io", "library/foo"),
    ("library/foo/bar", "docker.io/library/foo/bar", None, "docker.io", "library/foo/bar"),
    ("store/foo/bar", "docker.io/store/foo/bar", None, "docker.io", "store/foo/bar"),
    ("localhost:5000/app", "localhost:5000/app", None, "localhost:5000", "app"),
    ("localhost/app", "localhost/app", None, "localhost", "app"),
]


@pytest.mark.parametrize(("familiar", "full", "other", "domain", "path"), REPOSITORY_INFO)
def test_it_normalizes_and_familiarizes_names(familiar, full, other, domain, path):
    for text in filter(None, (familiar, full, other)):
        ref = parse_normalized_named(text)
        assert ref.familiar_name == familiar
        assert ref.name == full
        assert ref.string() == full
        assert (ref.domain, ref.path) == (domain, path)


def test_it_keeps_both_tag_and_digest_when_normalizing():
    short = "busybox:latest@" + BUSYBOX_DIGEST
    ref = parse_normalized_named(short)
    assert ref.string() == "docker.io/library/" + short
    assert ref.tag == "latest"
    assert ref.is_digested
    assert ref.familiar_string() == short


def test_it_adds_latest_in_parse_docker_ref():
    assert parse_docker_ref("busybox").string() == "docker.io/library/busybox:latest"
    assert parse_docker_ref("user/app:1.0").string() == "docker.io/user/app:1.0"
    assert parse_docker_ref("localhost:5000/app").familiar_string() == "localhost:5000/app:latest"


def test_it_drops_the_tag_when_parse_docker_ref_gets_a_digest():
    ref = parse_docker_ref("busybox:latest@" + BUSYBOX_DIGEST)
    assert ref.string() == "docker.io/library/busybox@" + BUSYBOX_DIGEST
    assert ref.tag is None
    digested = parse_docker_ref("busybox@" + BUSYBOX_DIGEST)
    assert digested.tag is None and digested.digest == BUSYBOX_DIGEST


ANY_REFERENCES = [
    ("redis", "docker.io/library/redis"),
    ("redis:latest", "docker.io/library/redis:latest"),
    ("docker.io/library/redis:latest", "docker.io/library/redis:latest"),
    ("redis@sha256:" + REDIS_HEX, "docker.io/library/redis@sha256:" + REDIS_HEX),
    ("dmcgowan/myapp", "docker.io/dmcgowan/myapp"),
    ("docker.io/mcgowan/myapp:latest", "docker.io/mcgowan/myapp:latest"),
    (REDIS_HEX, "sha256:" + REDIS_HEX),
    ("sha256:" + REDIS_HEX, "sha256:" + REDIS_HEX),
    (REDIS_HEX[:-1], "docker.io/library/" + REDIS_HEX[:-1]),
]


@pytest.mark.parametrize(("text", "expected"), ANY_REFERENCES)
def test_it_parses_any_reference(text, expected):
    assert parse_any_reference(text).string() == expected


def test_it_makes_an_id_of_64_hex():
    ref = parse_any_reference(REDIS_HEX)
    assert ref.is_digest_only
    assert ref.digest == "sha256:" + REDIS_HEX
    assert ref.name == ""


def test_it_tags_only_name_only_references():
    assert tag_name_only(parse_normalized_named("busybox")).tag == "latest"
    assert tag_name_only(parse_normalized_named("busybox:1.36")).tag == "1.36"
    digested = tag_name_only(parse_normalized_named("busybox@" + BUSYBOX_DIGEST))
    assert digested.tag is None
    assert with_default_tag is tag_name_only


def test_it_combines_names_with_tags_and_digests():
    assert with_name("test.com:8000/foo").with_tag("TAG5").string() == "test.com:8000/foo:TAG5"
    short = "sha256:1234567890098765432112345667890098765"
    assert with_name("foo").with_digest(short).string() == "foo@" + short
    both = parse_normalized_named("busybox:1").with_digest(BUSYBOX_DIGEST)
    assert both.string() == "docker.io/library/busybox:1@" + BUSYBOX_DIGEST
    assert both.familiar_string() == "busybox:1@" + BUSYBOX_DIGEST


def test_it_refuses_bad_tags_and_digests():
    ref = parse_normalized_named("busybox")
    with pytest.raises(InvalidReference, match="^invalid tag format$"):
        ref.with_tag("-foo")
    with pytest.raises(InvalidReference, match="^invalid digest format$"):
        ref.with_digest("foo")
    with pytest.raises(InvalidReference, match="^invalid reference format$"):
        with_name(":justtag")


def test_it_is_a_frozen_value():
    a = parse_normalized_named("busybox")
    assert a == Reference("docker.io", "library/busybox")
    assert hash(a) == hash(Reference("docker.io", "library/busybox"))
    with pytest.raises(AttributeError):
        a.tag = "x"  # type: ignore[misc]


def test_it_maps_docker_io_to_its_registry_host():
    assert registry_host("docker.io") == "registry-1.docker.io"
    assert registry_host("localhost:5000") == "localhost:5000"
    assert registry_host("ghcr.io") == "ghcr.io"
