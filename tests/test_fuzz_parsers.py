"""Hypothesis against the parsers that read what a person or a registry sends: references,
manifests and indexes, WWW-Authenticate. They may refuse input only with their typed
errors (InvalidReference, UnsupportedManifest, NoMatchingPlatform), never crash."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockweb.runtime import manifest as mf
from dockweb.runtime import reference as refs
from dockweb.runtime.auth import Challenge, parse_www_authenticate
from dockweb.runtime.errors import InvalidReference, NoMatchingPlatform, UnsupportedManifest

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REF_ALPHABET = "abcAZ09._-/:@+ \t\n\x00é" + "sha256" + "0123456789abcdef"
ref_text = st.one_of(
    st.text(alphabet=REF_ALPHABET, max_size=80),
    st.text(max_size=40),
    st.builds(
        lambda host, path, tag, dig: host + path + tag + dig,
        st.sampled_from(["", "localhost:5000/", "docker.io/", "Example.com/", "[::1]:5000/"]),
        st.from_regex(r"[a-z0-9]+([._/-][a-z0-9]+){0,4}", fullmatch=True),
        st.sampled_from(["", ":latest", ":1.0", ":", ":" + "t" * 129, ":UP"]),
        st.sampled_from(["", "@sha256:" + "a" * 64, "@sha256:abc", "@md5:" + "b" * 32]),
    ),
)


@FUZZ
@given(ref_text)
def test_reference_parsers_raise_only_invalid_reference(text):
    for parse in (
        refs.parse,
        refs.parse_normalized_named,
        refs.parse_any_reference,
        refs.parse_docker_ref,
    ):
        try:
            ref = parse(text)
        except InvalidReference:
            continue
        # whatever parses prints back to something that parses to the same thing
        assert parse(ref.string()) == ref or parse is refs.parse_any_reference


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
MEDIA = [
    mf.OCI_MANIFEST,
    mf.OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/json",
    "",
    "text/plain",
]
descriptor = st.fixed_dictionaries(
    {},
    optional={
        "mediaType": st.sampled_from(MEDIA) | json_values,
        "digest": st.just("sha256:" + "c" * 64) | json_values,
        "size": st.integers(-1, 1 << 40) | json_values,
        "platform": st.fixed_dictionaries(
            {},
            optional={
                "os": st.sampled_from(["linux", "windows"]) | json_values,
                "architecture": st.sampled_from(["amd64", "arm64", "arm"]) | json_values,
                "variant": st.sampled_from(["v7", "v8", ""]) | json_values,
                "os.features": json_values,
            },
        )
        | json_values,
        "annotations": json_values,
        "urls": json_values,
    },
)
manifest_doc = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": st.sampled_from([1, 2]) | json_values,
        "mediaType": st.sampled_from(MEDIA) | json_values,
        "config": descriptor | json_values,
        "layers": st.lists(descriptor, max_size=3) | json_values,
        "manifests": st.lists(descriptor, max_size=3) | json_values,
    },
)
manifest_bytes = st.one_of(
    manifest_doc.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=200),
)


@FUZZ
@given(manifest_bytes, st.sampled_from(MEDIA + [None, "application/x; charset=utf-8"]))
def test_manifest_parsing_raises_only_unsupported_manifest(data, content_type):
    try:
        parsed = mf.parse_manifest(data, content_type)
    except UnsupportedManifest:
        return
    if isinstance(parsed, mf.Index):
        for platform in ("linux/amd64", "linux/arm/v7", "windows/amd64"):
            try:
                mf.select_manifest(parsed, mf.parse_platform(platform))
            except NoMatchingPlatform:
                pass
    else:
        assert isinstance(parsed, mf.Manifest)
        for d in parsed.layers:
            try:
                d.compression  # noqa: B018 - the property raises for non-layer types
            except UnsupportedManifest:
                pass


auth_text = st.one_of(
    st.text(max_size=120),
    st.lists(
        st.sampled_from(
            ["Bearer ", "Basic ", 'realm="', '"', "\\", ",", " ", "=", "scope=", "a", "x:y", "\t"]
        ),
        max_size=30,
    ).map("".join),
)


@FUZZ
@given(st.one_of(auth_text, st.lists(auth_text, max_size=3)))
def test_www_authenticate_parsing_never_raises(header):
    challenges = parse_www_authenticate(header)
    assert all(isinstance(c, Challenge) and c.scheme == c.scheme.lower() for c in challenges)
    for c in challenges:
        assert all(k == k.lower() for k in c.params)


@FUZZ
@given(st.text(max_size=40))
def test_platform_parsing_raises_only_value_error(spec):
    try:
        mf.parse_platform(spec)
    except ValueError:
        pass
