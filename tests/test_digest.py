"""Digests, chain IDs and short IDs."""

from __future__ import annotations

import hashlib

import pytest

from dockweb.runtime.digest import chain_ids, hex_of, sha256_digest, short_id, validate_digest
from dockweb.runtime.errors import InvalidReference

EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_it_hashes_bytes_as_a_sha256_digest():
    assert sha256_digest(b"") == EMPTY_SHA256
    assert sha256_digest(b"hello") == "sha256:" + hashlib.sha256(b"hello").hexdigest()


@pytest.mark.parametrize(
    "digest",
    [EMPTY_SHA256, "sha384:" + "a" * 96, "sha512:" + "0" * 128],
)
def test_it_accepts_supported_digests(digest):
    assert validate_digest(digest) == digest


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        ("sha256:" + "a" * 63, "invalid checksum digest length"),
        ("sha384:" + "a" * 64, "invalid checksum digest length"),
        ("sha256:" + "A" * 64, "invalid checksum digest format"),
        ("sha256:" + "g" * 64, "invalid checksum digest format"),
        ("md5:" + "a" * 32, "unsupported digest algorithm"),
        ("sha256", "invalid checksum digest format"),
        ("sha256:", "invalid checksum digest format"),
        (":" + "a" * 64, "invalid checksum digest format"),
        ("SHA256:" + "a" * 64, "invalid checksum digest format"),
    ],
)
def test_it_refuses_bad_digests_with_go_digest_messages(digest, message):
    with pytest.raises(InvalidReference) as exc:
        validate_digest(digest)
    assert str(exc.value) == message


def test_it_computes_oci_chain_ids():
    d0, d1, d2 = (sha256_digest(bytes([i])) for i in range(3))
    c1 = "sha256:" + hashlib.sha256(f"{d0} {d1}".encode()).hexdigest()
    c2 = "sha256:" + hashlib.sha256(f"{c1} {d2}".encode()).hexdigest()
    assert chain_ids([d0, d1, d2]) == [d0, c1, c2]
    assert chain_ids([d0]) == [d0]
    assert chain_ids([]) == []


def test_it_truncates_ids_like_docker():
    assert short_id(EMPTY_SHA256) == "e3b0c44298fc"
    assert short_id("e3b0c44298fc1c149afbf4c8996fb924") == "e3b0c44298fc"
    assert short_id("abc") == "abc"


def test_it_returns_the_hex_of_a_digest():
    assert hex_of(EMPTY_SHA256) == EMPTY_SHA256[7:]
    assert hex_of("abc") == "abc"
