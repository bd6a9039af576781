"""docker cp: files out of and into real containers, with the client's rules for the host
side, dockerd's for the container side, and paths the container controls kept inside it."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile

import pytest

from dockweb.runtime import copy
from dockweb.runtime.containers import ContainerSpec, MountSpec
from tests.support.containers import busybox_store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

SETUP = (
    "mkdir -p /d/sub && echo a > /d/f && echo b > /d/sub/g && chmod 640 /d/f && "
    "ln -s /etc /d/link && ln -s /vol /v2 && echo x > /vol/x && ln -s ../../.. /d/up"
)


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory):
    return busybox_store(registry, tmp_path_factory, "containers-cp")[0]


@pytest.fixture
def box(manager, registry, tmp_path):
    """A running container with a tree, a volume at /vol and a read-only bind at /ro."""
    (tmp_path / "bound").mkdir()
    c = manager.create(ContainerSpec(
        image=f"{registry.host}/containers-cp/busybox:1",
        cmd=["sh", "-c", f"{SETUP} && sleep 100"],
        mounts=[MountSpec("volume", f"cpvol{os.getpid()}", "/vol"),
                MountSpec("bind", str(tmp_path / "bound"), "/ro", readonly=True)],
    ))
    manager.start(c.id)
    for _ in range(100):
        if manager.exec(c.id, ["test", "-L", "/d/up"], stdout=subprocess.DEVNULL) == 0:
            break
    yield c
    manager.remove(c.id, force=True, volumes=True)


def _in_box(manager, c, *cmd) -> str:
    r, w = os.pipe()
    with os.fdopen(w, "wb") as out:
        code = manager.exec(c.id, list(cmd), stdout=out)
    with os.fdopen(r, "rb") as f:
        text = f.read().decode()
    assert code == 0, text
    return text


def test_it_copies_out_as_the_docker_client_does(manager, box, tmp_path):
    _, scope = manager.scope(box.id)
    out = tmp_path / "out"
    out.mkdir()
    copy.copy_out(scope, "/d/f", str(out / "file"), container="box")
    assert (out / "file").read_text() == "a\n"
    assert stat.S_IMODE((out / "file").stat().st_mode) == 0o640
    copy.copy_out(scope, "/d", str(out / "tree"), container="box")  # absent: made
    copy.copy_out(scope, "/d", str(out / "tree"), container="box")  # a dir: copied into
    assert (out / "tree" / "sub" / "g").read_text() == "b\n"
    assert (out / "tree" / "d" / "f").read_text() == "a\n"
    assert os.readlink(out / "tree" / "link") == "/etc"  # a symlink stays one
    copy.copy_out(scope, "/d/.", str(out / "tree"), container="box")  # dir/.: its contents
    assert not (out / "tree" / "d" / "d").exists()
    copy.copy_out(scope, "/d/link", str(out / "followed"), container="box", follow=True)
    assert (out / "followed" / "hostname").exists()  # the container's /etc, not the host's
    assert (out / "followed" / "hostname").read_text().strip() == box.id[:12]
    copy.copy_out(scope, "/v2/x", str(out / "x"), container="box")  # into the volume
    assert (out / "x").read_text() == "x\n"
    refused = [
        ("/nope", str(out / "n"), "Could not find the file /nope in container box"),
        ("/d", str(out / "file"), "cannot copy directory"),
        ("/d/f", str(out / "absent") + "/", "no such directory"),
        ("/d/f", str(out / "absent" / "f"),
         f'invalid output path: directory "{out / "absent"}" does not exist'),
    ]
    for src, dst, message in refused:
        with pytest.raises(copy.CopyError) as e:
            copy.copy_out(scope, src, dst, container="box")
        assert str(e.value) == message
    # nothing of the host's is replaced by something of another kind
    (out / "clash").mkdir()
    (out / "clash" / "sub").write_text("mine\n")
    with pytest.raises(copy.CopyError) as e:
        copy.copy_out(scope, "/d/.", str(out / "clash"), container="box")
    assert str(e.value) == (
        f'cannot overwrite non-directory "{out / "clash" / "sub"}" with directory '
        f'"{out / "clash"}"'
    )
    assert (out / "clash" / "sub").read_text() == "mine\n"


def test_it_writes_the_tar_docker_cp_prints(manager, box):
    _, scope = manager.scope(box.id)
    buf = io.BytesIO()
    copy.archive(scope, "/d", buf, container="box")
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        names = tar.getnames()
        assert tar.getmember("d/f").mode == 0o640
    assert names[0] == "d" and "d/sub/g" in names and "d/link" in names
    buf = io.BytesIO()
    copy.archive(scope, "/d/.", buf, container="box")
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        # as dockerd: the directory itself as "./", its entries under it
        assert tar.getnames()[:2] == [".", "./f"] and "f" not in tar.getnames()


def test_it_copies_in_keeping_owners_and_staying_inside(manager, box, tmp_path):
    _, scope = manager.scope(box.id)
    src = tmp_path / "src"
    (src / "s").mkdir(parents=True)
    (src / "one").write_text("1\n")
    (src / "s" / "two").write_text("2\n")
    for p in (src, src / "one", src / "s", src / "s" / "two"):
        os.chown(p, 1234, 5678)
    copy.copy_in(scope, str(src), "/new", container="box")  # absent: made with the contents
    assert _in_box(manager, box, "ls", "-ln", "/new/s/two").split()[2:4] == ["1234", "5678"]
    copy.copy_in(scope, str(src / "one"), "/d/f", container="box")  # a file: overwritten
    assert _in_box(manager, box, "cat", "/d/f") == "1\n"
    copy.copy_in(scope, str(src), "/d", container="box")  # a dir: copied into
    copy.copy_in(scope, str(src) + "/.", "/d/sub", container="box")  # dir/.: the contents
    assert _in_box(manager, box, "cat", "/d/src/s/two", "/d/sub/one") == "2\n1\n"
    # through the container's symlinks, resolved inside it: /d/link is its /etc
    copy.copy_in(scope, str(src / "one"), "/d/link/planted", container="box")
    assert not os.path.exists("/etc/planted")
    assert _in_box(manager, box, "cat", "/etc/planted") == "1\n"
    copy.copy_in(scope, str(src / "one"), "/d/up/top", container="box")  # ../../..: its /
    assert _in_box(manager, box, "cat", "/top") == "1\n"
    copy.copy_in(scope, str(src / "one"), "/v2/y", container="box")  # lands in the volume
    assert _in_box(manager, box, "cat", "/vol/y") == "1\n"
    refused = [
        (str(src), "/d/f", "cannot copy directory"),
        (str(src / "one"), "/nope/x", "Could not find the file /nope in container box"),
        (str(src / "one"), "/nope/", "no such directory"),
        (str(src / "one"), "/ro/x", "mounted volume is marked read-only"),
        (str(tmp_path / "absent"), "/d", f"lstat {tmp_path / 'absent'}: no such file or directory"),
    ]
    for s, d, message in refused:
        with pytest.raises(copy.CopyError) as e:
            copy.copy_in(scope, s, d, container="box")
        assert str(e.value) == message
    assert os.listdir(tmp_path / "bound") == []
    # a directory is never replaced by a file, nor a file by a directory: nothing is lost
    clash = tmp_path / "clash"
    (clash / "f").mkdir(parents=True)
    (clash / "sub").write_text("file\n")
    for name, message in [
        ("sub", 'cannot overwrite directory "/d/sub" with non-directory "/d"'),
        ("f", 'cannot overwrite non-directory "/d/f" with directory "/d"'),
    ]:
        with pytest.raises(copy.CopyError) as e:
            copy.copy_in(scope, str(clash / name), "/d/", container="box")
        assert str(e.value) == f"Error processing tar file(exit status 1): {message}"
    assert _in_box(manager, box, "cat", "/d/sub/g", "/d/f") == "b\n1\n"


def test_it_unpacks_a_tar_into_a_directory_and_nowhere_else(manager, box, tmp_path):
    _, scope = manager.scope(box.id)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("in/a", b"a"), ("../../../../escaped", b"e")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("out")
        link.type, link.linkname = tarfile.SYMTYPE, "/"
        tar.addfile(link)
        through = tarfile.TarInfo("out/through-link")
        through.size = 1
        tar.addfile(through, io.BytesIO(b"t"))
    buf.seek(0)
    copy.extract(scope, buf, "/d/sub", container="box")
    assert _in_box(manager, box, "cat", "/d/sub/in/a", "/d/sub/escaped") == "ae"
    # a symlink in the tar is followed inside the destination, as under dockerd's chroot
    assert _in_box(manager, box, "cat", "/d/sub/through-link") == "t"
    assert not os.path.exists("/escaped") and not os.path.exists("/through-link")
    with pytest.raises(copy.CopyError, match='^destination "box:/d/f" must be a directory$'):
        copy.extract(scope, io.BytesIO(), "/d/f", container="box", label="box:/d/f")


def test_it_copies_into_a_container_that_is_not_running(manager, registry, tmp_path):
    c = manager.create(ContainerSpec(
        image=f"{registry.host}/containers-cp/busybox:1", cmd=["cat", "/etc/greeting"]
    ))
    (tmp_path / "greeting").write_text("hello\n")
    _, scope = manager.scope(c.id)
    copy.copy_in(scope, str(tmp_path / "greeting"), "/etc/", container=c.id)
    manager.start(c.id)
    assert manager.wait(c.id) == 0
    assert "".join(t for _, t, _ in manager.logs(c.id)) == "hello\n"
    manager.remove(c.id)
