"""`save` and `load`: the docker-save tarball, round trips, tar-split, and refusals."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile

import pytest

from dockweb.runtime import imageio
from dockweb.runtime.imageio import LoadError
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store
from dockweb.runtime.tarsplit import FILE_NAME as TAR_SPLIT
from tests.support import images as im
from tests.support.cli import cli_env, run_dockweb

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")


@pytest.fixture(scope="module")
def client():
    return RegistryClient()


def _pulled(registry, client, store, image, repo, tag="1"):
    im.push_image(registry.host, repo, tag, image)
    pull(store, client, f"{registry.host}/{repo}:{tag}")
    return f"{registry.host}/{repo}:{tag}"


def _save(store, names) -> bytes:
    out = io.BytesIO()
    imageio.save(store, names, out)
    return out.getvalue()


def _load(store, data: bytes) -> tuple[list[str], list[str]]:
    lines = []
    ids = imageio.load(
        store, io.BytesIO(data), lambda e: lines.append(e["text"]) if e["kind"] == "message" else 0
    )
    return ids, lines


def _tree(store, image_id) -> list[tuple]:
    """Every path of the mounted image with its type, mode, owner, size, mtime, link, data."""
    root = store.mount_image(image_id)
    try:
        out = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                rel = os.path.relpath(path, root)
                link = os.readlink(path) if os.path.islink(path) else ""
                data = b""
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as f:
                        data = hashlib.sha256(f.read()).hexdigest().encode()
                xattrs = sorted(
                    (n, os.getxattr(path, n, follow_symlinks=False))
                    for n in os.listxattr(path, follow_symlinks=False)
                )
                mtime = 0 if os.path.isdir(path) else int(st.st_mtime)
                out.append(
                    (rel, st.st_mode, st.st_uid, st.st_gid, st.st_size, mtime, link, data, xattrs)
                )
        return out
    finally:
        store.unmount_image(image_id)


@pytest.mark.parametrize(
    "make",
    [
        im.busybox_base,
        im.with_whiteouts,
        im.with_opaque_dir,
        im.with_hardlinks,
        im.with_special_files,
        im.with_long_names,
        im.with_symlinks,
    ],
    ids=lambda f: f.__name__,
)
def test_it_round_trips_an_image_through_save_and_load(registry, client, tmp_path, make):
    image = make()
    source = Store(str(tmp_path / "a"))
    name = _pulled(registry, client, source, image, f"save/{make.__name__.replace('_', '-')}")
    data = _save(source, [name])

    target = Store(str(tmp_path / "b"))
    ids, lines = _load(target, data)

    assert ids == [image.image_id]
    assert lines == [f"Loaded image: {name}"]
    assert [r.familiar_string() for r in target.references(image.image_id)] == [name]
    assert _tree(target, image.image_id) == _tree(source, image.image_id)
    assert target.scratch_entries() == []


def test_it_writes_layer_tars_whose_sha256_are_the_diff_ids(registry, client, tmp_path):
    image = im.with_whiteouts()
    store = Store(str(tmp_path / "a"))
    name = _pulled(registry, client, store, image, "save/diffids")
    assert all(os.path.exists(os.path.join(store.layer_dir(c), TAR_SPLIT)) for c in image.chain_ids)

    with tarfile.open(fileobj=io.BytesIO(_save(store, [name]))) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        assert manifest == [
            {
                "Config": f"blobs/sha256/{image.image_id[7:]}",
                "RepoTags": [name],
                "Layers": [f"blobs/sha256/{d[7:]}" for d in image.diff_ids],
            }
        ]
        for path, diff_id, layer in zip(
            manifest[0]["Layers"], image.diff_ids, image.layers, strict=True
        ):
            data = tar.extractfile(path).read()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == diff_id
            assert data == layer.tar
        assert tar.extractfile(manifest[0]["Config"]).read() == image.config_bytes
        assert tar.extractfile(f"{image.image_id[7:]}.json").read() == image.config_bytes
        assert tar.extractfile("oci-layout").read() == b'{"imageLayoutVersion": "1.0.0"}'
        index = json.load(tar.extractfile("index.json"))
        (desc,) = index["manifests"]
        assert desc["annotations"]["io.containerd.image.name"] == name
        assert desc["annotations"]["org.opencontainers.image.ref.name"] == "1"
        oci = tar.extractfile("blobs/sha256/" + desc["digest"][7:]).read()
        assert "sha256:" + hashlib.sha256(oci).hexdigest() == desc["digest"]
        assert [la["digest"] for la in json.loads(oci)["layers"]] == image.diff_ids
        repositories = json.load(tar.extractfile("repositories"))
        assert list(repositories) == [name.rsplit(":", 1)[0]]
        legacy = [m.name for m in tar.getmembers() if m.name.endswith("/layer.tar")]
        assert len(legacy) == len(image.layers)


def test_it_saves_the_same_bytes_twice(registry, client, tmp_path):
    store = Store(str(tmp_path / "a"))
    name = _pulled(registry, client, store, im.with_hardlinks(), "save/twice")
    assert _save(store, [name]) == _save(store, [name])


def test_it_regenerates_a_layer_without_tar_split(registry, client, tmp_path):
    """Without the metadata the tar is rebuilt from the directory: when that gives the
    DiffID (a tar written in the same canonical order), the image saves."""
    entries = [im.dir_("data"), im.file("data/a", b"a\n"), im.dir_("data/sub")]
    canonical = b"".join(imageio.directory_tar(_unpacked(tmp_path, entries)))
    layer = im.Layer.from_tar(canonical)
    image = im.Image([layer], {"Cmd": ["sh"]})
    store = Store(str(tmp_path / "a"))
    name = _pulled(registry, client, store, image, "save/regenerate")
    os.unlink(os.path.join(store.layer_dir(image.chain_ids[0]), TAR_SPLIT))

    target = Store(str(tmp_path / "b"))
    assert _load(target, _save(store, [name]))[0] == [image.image_id]


def _unpacked(tmp_path, entries) -> str:
    from dockweb.runtime.archive import apply_layer

    dest = tmp_path / "unpacked"
    dest.mkdir()
    apply_layer(io.BytesIO(im.tar_bytes(entries)), str(dest))
    return str(dest)


def test_it_refuses_to_save_a_layer_it_cannot_reproduce(registry, client, tmp_path):
    store = Store(str(tmp_path / "a"))
    name = _pulled(registry, client, store, im.with_symlinks(), "save/irreproducible")
    for chain in store.get_image(im.with_symlinks().image_id).layers:
        os.unlink(os.path.join(store.layer_dir(chain), TAR_SPLIT))
    with pytest.raises(Exception, match="cannot be reproduced"):
        _save(store, [name])


def test_it_refuses_a_tarball_with_a_corrupted_layer_and_loads_nothing(registry, client, tmp_path):
    image = im.with_whiteouts()
    source = Store(str(tmp_path / "a"))
    name = _pulled(registry, client, source, image, "save/corrupt")
    data = bytearray(_save(source, [name]))
    # flip a byte inside the top layer's tar (a file's contents: still a valid tar)
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        member = tar.getmember(f"blobs/sha256/{image.diff_ids[1][7:]}")
    at = member.offset_data + 512 * 3 + 1
    data[at] ^= 0xFF

    target = Store(str(tmp_path / "b"))
    with pytest.raises(LoadError) as err:
        _load(target, bytes(data))
    assert "invalid diffID for layer 1" in str(err.value) or "load layer" in str(err.value)
    assert target.images() == []
    assert target.layers() == {}
    assert target.all_references() == {}
    assert target.scratch_entries() == []


def test_it_refuses_what_is_not_a_docker_save_tarball(tmp_path):
    store = Store(str(tmp_path / "b"))
    with pytest.raises(LoadError, match="manifest.json"):
        _load(store, im.tar_bytes([im.file("hello", b"x")]))


def test_it_loads_untagged_images_by_id_and_gzip_compressed_tarballs(registry, client, tmp_path):
    import gzip

    image = im.busybox_base()
    source = Store(str(tmp_path / "a"))
    _pulled(registry, client, source, image, "save/by-id")
    data = _save(source, [image.image_id])
    target = Store(str(tmp_path / "b"))
    ids, lines = _load(target, gzip.compress(data))
    assert ids == [image.image_id]
    assert lines == [f"Loaded image ID: {image.image_id}"]
    assert target.references(image.image_id) == []


def test_it_loads_an_oci_layout_without_manifest_json(registry, client, tmp_path):
    """What other tools write: index.json, compressed layers, no manifest.json."""
    image = im.with_opaque_dir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        oci = im.Image(image.layers, {"Cmd": ["sh"]}, format="oci")
        for layer in oci.layers:
            add(f"blobs/sha256/{layer.digest[7:]}", layer.read_blob())
        add(f"blobs/sha256/{oci.image_id[7:]}", oci.config_bytes)
        add(f"blobs/sha256/{oci.manifest_digest[7:]}", oci.manifest_bytes)
        desc = {
            "mediaType": oci.manifest_media_type,
            "digest": oci.manifest_digest,
            "size": len(oci.manifest_bytes),
            "annotations": {"io.containerd.image.name": "docker.io/library/oci:v1"},
        }
        add("index.json", json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode())
        add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    store = Store(str(tmp_path / "b"))
    ids, lines = _load(store, buf.getvalue())
    assert ids == [oci.image_id]
    assert lines == ["Loaded image: oci:v1"]


def test_it_says_when_a_tag_moves_to_the_loaded_image(registry, client, tmp_path):
    source = Store(str(tmp_path / "a"))
    first, second = im.busybox_base(), im.with_symlinks()
    name = _pulled(registry, client, source, first, "save/moves")
    data_first = _save(source, [name])
    _pulled(registry, client, source, second, "save/moves")
    data_second = _save(source, [name])
    target = Store(str(tmp_path / "b"))
    _load(target, data_first)
    _, lines = _load(target, data_second)
    assert lines == [
        f"The image {name} already exists, renaming the old one with ID {first.image_id} "
        "to empty string",
        f"Loaded image: {name}",
    ]


def _dockweb(tmp_path, *args, stdin=None, data_dir=None, stdout=subprocess.PIPE):
    env = cli_env(tmp_path, data=data_dir)
    return run_dockweb(env, *args, input=stdin, stdout=stdout, text=False)


def test_the_cli_saves_to_a_file_and_loads_it_back(registry, tmp_path):
    image = im.with_hardlinks()
    im.push_image(registry.host, "save/cli", "1", image)
    name = f"{registry.host}/save/cli:1"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert _dockweb(a, "pull", "-q", name).returncode == 0
    out = tmp_path / "img.tar"
    proc = _dockweb(a, "save", "-o", str(out), name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""

    proc = _dockweb(b, "load", "-i", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == f"Loaded image: {name}\n"
    listed = _dockweb(b, "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert listed.stdout.decode() == f"{name} {image.image_id}\n"

    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # docker/cli 28's atomic writer
    piped = _dockweb(a, "image", "save", name)
    assert piped.returncode == 0
    assert piped.stdout == out.read_bytes()
    # a destination that is no regular file is refused, never replaced
    proc = _dockweb(a, "save", "-o", "/dev/null", name)
    assert (proc.returncode, proc.stderr) == (
        1, b"failed to save image: cannot write to a character device file\n"
    )
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    with open("/dev/full", "wb") as full:
        proc = _dockweb(a, "save", name, stdout=full)
    assert (proc.returncode, proc.stderr) == (1, b"write /dev/stdout: no space left on device\n")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    c = tmp_path / "c"
    c.mkdir()
    proc = _dockweb(c, "image", "load", "-q", stdin=piped.stdout)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == f"Loaded image: {name}\n"


def test_the_cli_refuses_a_missing_image_and_a_corrupt_tarball(tmp_path):
    proc = _dockweb(tmp_path, "save", "-o", str(tmp_path / "x.tar"), "nothing:here")
    assert proc.returncode == 1
    assert proc.stderr.decode() == "Error response from daemon: No such image: nothing:here\n"
    assert not (tmp_path / "x.tar").exists()
    proc = _dockweb(tmp_path, "load", stdin=b"not a tar at all" * 100)
    assert proc.returncode == 1
    assert proc.stderr.decode().startswith("Error response from daemon: ")


def test_it_saves_a_built_image_with_its_diff_ids(tmp_path):
    """Layers made by build/commit keep tar-split too, so their saved tars are the DiffIDs."""
    from dockweb.runtime.childimage import layer_from_upper

    store = Store(str(tmp_path / "a"))
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "built").write_bytes(b"by a build step\n")
    os.mknod(upper / "gone", 0o600 | 0o020000, 0)  # a whiteout
    layer = layer_from_upper(store, str(upper), "", str(tmp_path))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
    ).encode()
    rec = store.put_image(config)
    with tarfile.open(fileobj=io.BytesIO(_save(store, [rec.id]))) as tar:
        data = tar.extractfile(f"blobs/sha256/{layer.diff_id[7:]}").read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == layer.diff_id


@pytest.mark.parametrize("argv", [("save", "nothing:here"), ("export", "nothing")])
def test_it_refuses_to_write_an_archive_to_a_terminal(tmp_path, argv):
    master, slave = os.openpty()
    try:
        proc = _dockweb(tmp_path, *argv, stdout=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert (proc.returncode, proc.stderr) == (
        1, b"cowardly refusing to save to a terminal. Use the -o flag or redirect\n"
    )
