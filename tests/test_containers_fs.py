"""A container's filesystem: the writable layer's diff and size, export, the /etc files and
Docker's default mounts, masked paths and capabilities."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from dockweb.runtime.containers import ContainerSpec
from tests.support.containers import busybox_store, logs_text

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory):
    return busybox_store(registry, tmp_path_factory, "containers-fs")[0]


@pytest.fixture(scope="module")
def image(registry, store):
    return f"{registry.host}/containers-fs/busybox:1"


def _run(manager, image, *cmd, **kw):
    c = manager.create(ContainerSpec(image=image, cmd=list(cmd), **kw))
    manager.start(c.id)
    assert manager.wait(c.id) == 0, list(manager.logs(c.id))
    return c


def test_it_lists_the_writable_layers_changes_as_docker_diff(manager, image):
    c = _run(
        manager,
        image,
        "sh",
        "-c",
        "echo x > /tmp/new; mkdir -p /var/a/b; echo y > /var/a/b/f; "
        "echo z >> /etc/passwd; rm /bin/true; rm -r /home/app",
    )
    assert manager.diff(c.id) == [
        ("C", "/bin"),
        ("D", "/bin/true"),
        ("C", "/etc"),
        ("C", "/etc/passwd"),
        ("C", "/home"),
        ("D", "/home/app"),
        ("C", "/tmp"),
        ("A", "/tmp/new"),
        ("C", "/var"),
        ("A", "/var/a"),
        ("A", "/var/a/b"),
        ("A", "/var/a/b/f"),
    ]


def test_it_shows_no_changes_for_a_container_that_wrote_nothing(manager, image):
    # the runtime's mount points and /etc files live in the init layer, as Docker's
    c = _run(manager, image, "true")
    assert manager.diff(c.id) == []


def test_it_sizes_the_writable_layer_and_the_root_filesystem(manager, image, store):
    c = _run(manager, image, "sh", "-c", "head -c 12345 /dev/zero > /tmp/blob")
    rw, rootfs = manager.size(c.id)
    assert rw == 12345
    assert rootfs == rw + store.image_size(store.lookup(image))


def test_it_exports_the_merged_root_filesystem(manager, image):
    c = _run(manager, image, "sh", "-c", "echo exported > /root/f; rm /bin/true")
    buf = io.BytesIO()
    manager.export(c.id, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("root/f").read() == b"exported\n"
    assert "bin/busybox" in names and "bin/true" not in names and ".dockerenv" in names
    assert not any(n.startswith("/") or n.startswith("./") for n in names)


def test_it_bind_mounts_dockers_etc_files(manager, image):
    c = _run(manager, image, "sh", "-c", "cat /etc/hosts; grep -c nameserver /etc/resolv.conf")
    out = logs_text(manager, c.id)
    assert out.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    assert int(out.splitlines()[-1]) >= 1


def test_it_mounts_dockers_defaults(manager, image):
    c = _run(manager, image, "sh", "-c", "cat /proc/mounts")
    mounts = {line.split()[1]: line.split() for line in logs_text(manager, c.id).splitlines()}
    assert mounts["/dev/shm"][0] == "shm" and "size=65536k" in mounts["/dev/shm"][3]
    assert mounts["/sys"][3].startswith("ro,")
    for path in ("/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys/fs/cgroup", "/etc/hostname"):
        assert path in mounts


def test_it_masks_and_protects_procfs_paths(manager, image):
    masked = "/proc/timer_list"  # present on every kernel, unlike /proc/kcore
    assert os.path.getsize(masked) == 0 and open(masked).read(1)
    c = _run(
        manager,
        image,
        "sh",
        "-c",
        f"wc -c < {masked}; echo 1 > /proc/sys/kernel/domainname && echo wrote || true",
    )
    # stdout only: the shell's complaint on stderr may be logged before wc's count
    lines = [t for s, t, _ in manager.logs(c.id) if s == "stdout"]
    assert [t.strip() for t in lines] == ["0"]


def test_it_grants_dockers_default_capabilities(manager, image):
    c = _run(manager, image, "grep", "^CapEff", "/proc/self/status")
    assert logs_text(manager, c.id).split() == ["CapEff:", "00000000a80425fb"]
