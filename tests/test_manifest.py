"""Manifest parsing and containerd-compatible platform matching (table tests)."""

from __future__ import annotations

import json
import platform as pyplatform
import re

import pytest

from dockweb.runtime.errors import NoMatchingPlatform, UnsupportedManifest
from dockweb.runtime.manifest import (
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
    host_platform,
    parse_manifest,
    parse_platform,
    select_manifest,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def manifest_doc(media_type=DOCKER_MANIFEST, layer_type=DOCKER_LAYER) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": D1,
                "size": 10,
            },
            "layers": [
                {"mediaType": layer_type, "digest": D2, "size": 20, "urls": ["https://example/x"]}
            ],
        }
    ).encode()


def test_it_parses_a_docker_manifest():
    got = parse_manifest(manifest_doc(), DOCKER_MANIFEST)
    assert isinstance(got, Manifest)
    assert got.config.digest == D1
    assert got.layers == (Descriptor(DOCKER_LAYER, D2, 20, ("https://example/x",)),)
    assert got.layers[0].compression == "gzip"


def test_it_parses_an_oci_manifest_with_zstd_layers():
    got = parse_manifest(manifest_doc(OCI_MANIFEST, OCI_LAYER_ZSTD), OCI_MANIFEST + "; charset=x")
    assert got.media_type == OCI_MANIFEST
    assert got.layers[0].compression == "zstd"


def test_it_tells_index_from_manifest_when_oci_omits_media_type():
    doc = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": D1,
                "size": 1,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            }
        ],
    }
    got = parse_manifest(json.dumps(doc).encode(), None)
    assert isinstance(got, Index) and got.media_type == OCI_INDEX
    assert got.manifests[0].platform == Platform("linux", "arm64", "v8")


def test_it_refuses_schema_1_with_dockers_deprecation_notice():
    doc = json.dumps({"schemaVersion": 1, "name": "library/ubuntu", "tag": "10.04"}).encode()
    with pytest.raises(UnsupportedManifest) as info:
        parse_manifest(
            doc,
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            ref="docker.io/library/ubuntu:10.04",
        )
    assert str(info.value) == (
        "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 "
        "support is disabled by default and will be removed in an upcoming release. Suggest the "
        "author of docker.io/library/ubuntu:10.04 to upgrade the image to the OCI Format or "
        "Docker Image manifest v2, schema 2. More information at "
        "https://docs.docker.com/go/deprecated-image-specs/"
    )


@pytest.mark.parametrize(
    ("data", "ctype", "message"),
    [
        (
            b'{"schemaVersion": 2}',
            "application/vnd.example+json",
            "unsupported manifest media type application/vnd.example+json",
        ),
        (b"not json", DOCKER_MANIFEST, "invalid manifest"),
        (manifest_doc(DOCKER_MANIFEST), OCI_MANIFEST, "media type mismatch"),
    ],
)
def test_it_refuses_what_it_cannot_read(data, ctype, message):
    with pytest.raises(UnsupportedManifest, match=re.escape(message)):
        parse_manifest(data, ctype)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/amd64/v1", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/arm", Platform("linux", "arm", "v7")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("linux/armel", Platform("linux", "arm", "v6")),
        ("linux/arm/6", Platform("linux", "arm", "v6")),
        ("linux/i386", Platform("linux", "386")),
        ("Linux/AMD64", Platform("linux", "amd64")),
        ("arm64", Platform("linux", "arm64")),
    ],
)
def test_it_parses_and_normalises_platforms_like_containerd(spec, expected):
    assert parse_platform(spec) == expected


@pytest.mark.parametrize("spec", ["", "linux/", "a/b/c/d"])
def test_it_refuses_malformed_platforms(spec):
    with pytest.raises(ValueError, match="invalid platform specifier"):
        parse_platform(spec)


def test_it_knows_this_machine_platform():
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(pyplatform.machine())
    if arch is None:
        pytest.skip("table covers x86_64 and aarch64 hosts")
    assert host_platform() == Platform("linux", arch)


def entry(n: int, os_="linux", arch="amd64", variant="", annotations=None) -> Descriptor:
    return Descriptor(
        OCI_MANIFEST, f"sha256:{n:064x}", 100, (), annotations or {}, Platform(os_, arch, variant)
    )


ATTESTATION = entry(
    99, "unknown", "unknown", annotations={"vnd.docker.reference.type": "attestation-manifest"}
)


@pytest.mark.parametrize(
    ("entries", "want", "chosen"),
    [
        # exact match wins over index order
        ([entry(1, arch="arm64"), entry(2)], "linux/amd64", 2),
        # amd64 runs 386 when nothing better
        ([entry(1, arch="386"), entry(2, arch="arm64")], "linux/amd64", 1),
        ([entry(1, arch="386"), entry(2)], "linux/amd64", 2),
        # amd64/v3 prefers v3, then v2, then plain amd64
        ([entry(1), entry(2, variant="v2"), entry(3, variant="v3")], "linux/amd64/v3", 3),
        ([entry(1), entry(2, variant="v2")], "linux/amd64/v3", 2),
        ([entry(1), entry(2, variant="v4")], "linux/amd64/v3", 1),
        # arm64 with or without the v8 variant in the index
        ([entry(1, arch="arm64", variant="v8")], "linux/arm64", 1),
        ([entry(1, arch="arm64")], "linux/arm64/v8", 1),
        # arm64 falls back to arm/v8, then v7 ...
        (
            [entry(1, arch="arm", variant="v6"), entry(2, arch="arm", variant="v7")],
            "linux/arm64",
            2,
        ),
        # arm/v7 runs v6 and v5, never v8
        (
            [entry(1, arch="arm", variant="v8"), entry(2, arch="arm", variant="v5")],
            "linux/arm/v7",
            2,
        ),
        # a plain "arm" entry means arm/v7
        ([entry(1, arch="arm")], "linux/arm/v7", 1),
        # ties keep index order; attestations are skipped
        ([ATTESTATION, entry(1), entry(2)], "linux/amd64", 1),
        # arm64 v8.2 runs v8.1 and v8
        ([entry(1, arch="arm64"), entry(2, arch="arm64", variant="v8.1")], "linux/arm64/v8.2", 2),
        # v9 runs v8.5
        ([entry(1, arch="arm64", variant="v8.5")], "linux/arm64/v9", 1),
    ],
)
def test_it_selects_the_best_manifest_like_containerd_only(entries, want, chosen):
    index = Index(OCI_INDEX, tuple(entries))
    assert select_manifest(index, parse_platform(want)).digest == f"sha256:{chosen:064x}"


@pytest.mark.parametrize(
    ("entries", "want", "platform_text"),
    [
        ([entry(1, arch="arm64"), ATTESTATION], "linux/amd64", "linux/amd64"),
        ([entry(1, "windows")], "linux/amd64", "linux/amd64"),
        ([entry(1, arch="arm", variant="v7")], "linux/arm/v6", "linux/arm/v6"),
        ([entry(1)], "linux/386", "linux/386"),
    ],
)
def test_it_says_no_matching_manifest_as_docker_does(entries, want, platform_text):
    with pytest.raises(NoMatchingPlatform) as info:
        select_manifest(Index(DOCKER_MANIFEST_LIST, tuple(entries)), parse_platform(want))
    assert str(info.value) == (
        f"no matching manifest for {platform_text} in the manifest list entries"
    )
