"""The independent image builder (tests/support/images.py), checked against a real registry.

Other tests trust these images to be what they claim; a mistake here would make dockweb
look right or wrong for the wrong reason, so the registry serves as the witness.
"""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from tests.support import images as im

CORPUS = im.corpus()


def _tar_names(layer: im.Layer) -> list[str]:
    with tarfile.open(
        fileobj=io.BytesIO(layer.tar), encoding="utf-8", errors="surrogateescape"
    ) as t:
        return [m.name for m in t.getmembers()]


def _check_image_served(registry, repo: str, image: im.Image, reference: str) -> None:
    ctype, digest, body = im.fetch_manifest(registry.host, repo, reference)
    assert ctype == image.manifest_media_type
    assert digest == image.manifest_digest
    assert body == image.manifest_bytes
    manifest = json.loads(body)
    config = im.fetch_blob(registry.host, repo, manifest["config"]["digest"])
    assert im.sha256(config) == manifest["config"]["digest"] == image.image_id
    assert len(config) == manifest["config"]["size"]
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    assert len(diff_ids) == len(manifest["layers"])
    for desc, diff_id, layer in zip(manifest["layers"], diff_ids, image.layers, strict=True):
        blob = im.fetch_blob(registry.host, repo, desc["digest"])
        assert im.sha256(blob) == desc["digest"]
        assert len(blob) == desc["size"]
        # Decompressed independently of how the builder compressed it.
        assert im.sha256(im.decompress(blob, layer.compression)) == diff_id


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_it_pushes_each_corpus_item_and_the_registry_serves_it_back(registry, name):
    item = CORPUS[name]
    digest = im.push(registry.host, f"corpus/{name}", "v1", item)

    assert digest == item.manifest_digest
    if isinstance(item, im.Index):
        ctype, served, body = im.fetch_manifest(registry.host, f"corpus/{name}", "v1")
        assert (ctype, served, body) == (item.manifest_media_type, digest, item.manifest_bytes)
        for image in item.images:
            _check_image_served(registry, f"corpus/{name}", image, image.manifest_digest)
    else:
        _check_image_served(registry, f"corpus/{name}", item, "v1")


def test_it_pushes_idempotently(registry):
    image = im.with_symlinks()
    first = im.push_image(registry.host, "corpus/again", "v1", image)
    second = im.push_image(registry.host, "corpus/again", "v1", image)
    assert first == second == image.manifest_digest


def test_it_pushes_by_digest_when_no_tag_is_given(registry):
    image = im.busybox_base()
    digest = im.push_image(registry.host, "corpus/untagged", None, image)
    _check_image_served(registry, "corpus/untagged", image, digest)
    with pytest.raises(im.PushError, match="HTTP 404"):
        im.fetch_manifest(registry.host, "corpus/untagged", "latest")


def test_it_lists_every_platform_in_the_index(registry):
    index = im.multi_platform_index("oci")
    im.push_index(registry.host, "corpus/platforms", "v1", index)
    _, _, body = im.fetch_manifest(registry.host, "corpus/platforms", "v1")
    doc = json.loads(body)

    assert doc["mediaType"] == im.OCI_INDEX
    platforms = [
        "/".join(
            filter(
                None,
                (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")),
            )
        )
        for m in doc["manifests"]
    ]
    assert platforms == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "unknown/unknown"]
    attestation = doc["manifests"][3]
    assert attestation["annotations"] == {
        "vnd.docker.reference.digest": doc["manifests"][0]["digest"],
        "vnd.docker.reference.type": "attestation-manifest",
    }


def test_it_gives_each_platform_distinct_content():
    index = im.multi_platform_index("docker")
    markers = []
    for image in index.images:
        with tarfile.open(fileobj=io.BytesIO(image.layers[-1].tar)) as t:
            markers.append(t.extractfile("etc/platform").read())
    assert markers == [b"linux/amd64\n", b"linux/arm64/v8\n", b"linux/arm/v7\n"]
    assert index.manifest_media_type == im.DOCKER_MANIFEST_LIST


def test_it_builds_the_same_digests_every_time():
    assert im.corpus()["with_special_files"].manifest_digest == (
        CORPUS["with_special_files"].manifest_digest
    )


def test_it_shares_the_base_layers_of_the_pair():
    a, b = im.shared_base_pair()
    assert a.chain_ids[:2] == b.chain_ids[:2]
    assert a.chain_ids[2] != b.chain_ids[2]


def test_it_writes_whiteouts_and_opaque_markers_as_docker_names_them():
    whiteouts = _tar_names(im.with_whiteouts().layers[2])
    assert {"data/.wh.gone", "data/.wh.subdir", "data/.wh.readded", "etc/.wh.group"} <= set(
        whiteouts
    )
    assert "opt/app/.wh..wh..opq" in _tar_names(im.with_opaque_dir().layers[2])


def test_it_writes_special_file_metadata_into_the_tar():
    layer = im.with_special_files().layers[1]
    with tarfile.open(fileobj=io.BytesIO(layer.tar)) as t:
        members = {m.name: m for m in t.getmembers()}
    assert members["special/fifo"].isfifo()
    null = members["special/null"]
    assert null.ischr() and (null.devmajor, null.devminor) == (1, 3)
    assert members["special/loop0"].isblk()
    assert members["special/setuid"].mode == 0o4755
    assert members["special/sticky"].mode == 0o1777
    assert (members["special/owned"].uid, members["special/owned"].gid) == (1000, 1000)
    assert members["special/pre-1970"].pax_headers["mtime"] == "-86400"
    assert members["special/fractional"].pax_headers["mtime"] == "1600000000.5"
    xattrs = members["special/cap-bind"].pax_headers["SCHILY.xattr.security.capability"]
    assert xattrs.encode("utf-8", "surrogateescape") == bytes.fromhex("0100000200040000") + bytes(
        12
    )
    assert members["special/xattr-user"].pax_headers["SCHILY.xattr.user.comment"] == "hello"


def test_it_keeps_long_unicode_and_non_utf8_names():
    pax, gnu = im.with_long_names().layers[1:]
    names = _tar_names(pax)
    assert any(len(n) > 300 for n in names)
    assert "long/ünïcødé-名前-😀" in names
    assert "long/latin1-\udce9\udcff" in names  # the raw bytes \xe9\xff, not re-encoded
    assert b"long/latin1-\xe9\xff" in pax.tar
    assert b"././@LongLink" in gnu.tar
    assert "gnu/" + "g" * 150 in _tar_names(gnu)


def test_it_writes_hostile_names_as_given():
    assert "../../escaped-dotdot" in _tar_names(im.hostile_dotdot().layers[1])
    assert "/abs/abs-evil" in _tar_names(im.hostile_absolute().layers[1])
    with tarfile.open(fileobj=io.BytesIO(im.hostile_hardlink_escape().layers[1].tar)) as t:
        (member,) = t.getmembers()
    assert member.islnk() and member.linkname == "../../../../../../etc/passwd"


def test_it_compresses_zstd_and_none_as_labelled():
    zimage = im.oci_zstd()
    assert zimage.layers[1].media_type("oci") == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert zimage.layers[1].read_blob()[:4] == b"\x28\xb5\x2f\xfd"
    plain = im.uncompressed_layers()
    assert plain.layers[0].digest == plain.layers[0].diff_id
    assert json.loads(plain.manifest_bytes)["layers"][0]["mediaType"] == (
        "application/vnd.docker.image.rootfs.diff.tar"
    )


def test_it_streams_a_large_layer_to_disk(tmp_path, registry):
    size = 3 * (64 << 20) // 2  # 96 MiB: two files, the second one partial
    layer = im.large_layer(size, tmp_path / "large.tar.gz")
    assert layer.size > size  # random data does not compress
    assert layer.tar is None
    with open(tmp_path / "large.tar.gz", "rb") as f:
        assert im.sha256(f.read()) == layer.digest
    image = im.Image([im.busybox_layer(), layer])
    im.push_image(registry.host, "corpus/large", "v1", image)
    _, digest, _ = im.fetch_manifest(registry.host, "corpus/large", "v1")
    assert digest == image.manifest_digest
