"""WWW-Authenticate parsing, config.json lookup and the token cache (no network)."""

from __future__ import annotations

import base64

import pytest

from dockweb.runtime.auth import (
    INDEX_SERVER,
    AuthConfig,
    Challenge,
    DockerConfig,
    Token,
    TokenCache,
    credential_key,
    parse_www_authenticate,
    repository_scope,
)
from dockweb.runtime.errors import AuthError

HUB = (
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
    'scope="repository:library/busybox:pull"'
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            HUB,
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/busybox:pull",
                    },
                )
            ],
        ),
        ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
        (
            'Bearer realm="r", scope="repository:a:pull,push", error="insufficient_scope"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "r",
                        "scope": "repository:a:pull,push",
                        "error": "insufficient_scope",
                    },
                )
            ],
        ),
        (
            'Basic realm="a, b", Bearer realm="https://x/token",service=y',
            [
                Challenge("basic", {"realm": "a, b"}),
                Challenge("bearer", {"realm": "https://x/token", "service": "y"}),
            ],
        ),
        (r'Bearer realm="quo\"te"', [Challenge("bearer", {"realm": 'quo"te'})]),
        ("BEARER Realm=x", [Challenge("bearer", {"realm": "x"})]),
        (
            "Negotiate, Basic realm=x",
            [Challenge("negotiate", {}), Challenge("basic", {"realm": "x"})],
        ),
        ("", []),
    ],
)
def test_it_parses_www_authenticate(header, expected):
    assert parse_www_authenticate(header) == expected


def test_it_parses_several_header_values_in_order():
    got = parse_www_authenticate(['Basic realm="a"', HUB])
    assert [c.scheme for c in got] == ["basic", "bearer"]


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("docker.io", INDEX_SERVER),
        ("registry-1.docker.io", INDEX_SERVER),
        ("index.docker.io", INDEX_SERVER),
        ("https://index.docker.io/v1/", INDEX_SERVER),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://ghcr.io", "ghcr.io"),
        ("http://myreg.example:5000/v2/", "myreg.example:5000"),
    ],
)
def test_it_normalises_credential_keys_like_docker_cli(host, key):
    assert credential_key(host) == key


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.mark.parametrize(
    ("auths", "host", "expected"),
    [
        ({INDEX_SERVER: {"auth": b64("hub:pw")}}, "docker.io", AuthConfig("hub", "pw")),
        (
            {"https://index.docker.io/v1/": {"auth": b64("hub:a:b")}},
            "registry-1.docker.io",
            AuthConfig("hub", "a:b"),
        ),
        ({"https://myreg:5000": {"auth": b64("u:p")}}, "myreg:5000", AuthConfig("u", "p")),
        ({"myreg:5000": {"username": "u", "password": "p"}}, "myreg:5000", AuthConfig("u", "p")),
        ({"ghcr.io": {"identitytoken": "tok"}}, "ghcr.io", AuthConfig(identity_token="tok")),
        ({"other:5000": {"auth": b64("u:p")}}, "myreg:5000", AuthConfig()),
    ],
)
def test_it_finds_credentials_in_config_json(auths, host, expected):
    assert DockerConfig({"auths": auths}).get(host) == expected


def test_it_refuses_a_malformed_auth_entry():
    with pytest.raises(AuthError, match="Invalid auth configuration file"):
        DockerConfig({"auths": {"r": {"auth": b64("no-colon")}}}).get("r")


def test_it_prefers_a_registry_specific_helper_over_creds_store():
    asked = []

    def helper(name, server):
        asked.append((name, server))
        return {"Username": "<token>", "Secret": "idt"} if name == "specific" else None

    config = DockerConfig(
        {"credsStore": "general", "credHelpers": {"myreg:5000": "specific"}}, helper_runner=helper
    )
    assert config.get("myreg:5000") == AuthConfig(identity_token="idt")
    assert asked == [("specific", "myreg:5000")]
    assert config.get("docker.io") == AuthConfig()
    assert asked[-1] == ("general", INDEX_SERVER)


def test_it_treats_a_missing_config_file_as_no_credentials(tmp_path):
    assert DockerConfig.load(tmp_path / "nope.json").get("docker.io").anonymous


def test_it_caches_a_token_until_it_expires():
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    fetched = []

    def fetch():
        fetched.append(1)
        return Token(f"t{len(fetched)}", now[0] + 60)

    key = ("https://auth.docker.io/token", "registry.docker.io", "repository:library/x:pull")
    assert cache.get_or_fetch(*key, fetch).token == "t1"
    now[0] += 59
    assert cache.get_or_fetch(*key, fetch).token == "t1"
    other = (key[0], key[1], "repository:library/x:pull,push")
    assert cache.get_or_fetch(*other, fetch).token == "t2"
    now[0] += 2
    assert cache.get_or_fetch(*key, fetch).token == "t3"


@pytest.mark.parametrize(
    ("actions", "scope"),
    [
        (["pull"], "repository:library/busybox:pull"),
        (["push", "pull"], "repository:library/busybox:pull,push"),
        (["pull", "pull"], "repository:library/busybox:pull"),
    ],
)
def test_it_writes_scopes_as_docker_does(actions, scope):
    assert repository_scope("library/busybox", actions) == scope
