"""Where the disk goes: system df against the bytes really on disk, prune, the Disk page."""

from __future__ import annotations

import os

import pytest

from disk import services
from disk.models import PruneOperation
from dockweb.runtime.containers import ContainerManager
from dockweb.runtime.diskusage import disk_usage, match_labels, summary
from dockweb.runtime.store import Store
from dockweb.runtime.units import human_size
from tests.support import images as im

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")


def apparent_size(path: str) -> int:
    """``du -s --apparent-size -b`` less the directories, each hard-linked inode once:
    how moby's directory.Size counts (computed here without the code under test)."""
    total, seen = 0, set()
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_mode & 0o170000) == 0o040000:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


@pytest.fixture
def cli(dockweb, tmp_path):
    """conftest's ``dockweb``, with ``stdin`` as the command's input (empty by default)."""

    def run(*args, stdin="", check=True):
        return dockweb(*args, input=stdin, check=check)

    run.root = str(tmp_path / "store")
    return run


@pytest.fixture(scope="module")
def moved(registry):
    """disk/m:t pulled as image a, then moved to b (a left dangling); disk/base:1 too."""
    a, b = im.shared_base_pair()
    im.push_image(registry.host, "disk/m", "t", a)
    im.push_image(registry.host, "disk/base", "1", im.busybox_base())
    return registry.host, a, b


def pull_moved(cli, moved):
    host, a, b = moved
    cli("pull", f"{host}/disk/base:1")
    im.push_image(host, "disk/m", "t", a)
    cli("pull", f"{host}/disk/m:t")
    im.push_image(host, "disk/m", "t", b)
    cli("pull", f"{host}/disk/m:t")
    return host


@as_root
def test_it_counts_what_the_store_holds_on_disk(cli, moved):
    host = pull_moved(cli, moved)
    cli(
        "run",
        "--name",
        "writer",
        "-v",
        "data:/data",
        f"{host}/disk/base:1",
        "sh",
        "-c",
        "echo hello > /f; head -c 3000 /dev/zero > /data/z",
    )
    store = Store(cli.root)
    layers_on_disk = sum(
        apparent_size(os.path.join(store.layers_dir, d, "diff"))
        for d in os.listdir(store.layers_dir)
        if d[0] != "."
    )
    (cid,) = os.listdir(os.path.join(cli.root, "containers"))
    upper = apparent_size(os.path.join(cli.root, "containers", cid, "upper"))
    volume = apparent_size(os.path.join(cli.root, "volumes", "data", "_data"))
    assert upper > 0 and volume == 3000

    du = disk_usage(store, ContainerManager(store))
    assert du["LayersSize"] == layers_on_disk  # three images, shared layers once
    assert sum(i["Size"] for i in du["Images"]) > layers_on_disk
    assert [c["SizeRw"] for c in du["Containers"]] == [upper]
    assert [v["UsageData"] for v in du["Volumes"]] == [{"Size": 3000, "RefCount": 1}]
    rows = {r["type"]: r for r in summary(du)}
    base_unique = next(i for i in du["Images"] if i["Containers"])
    assert rows["Images"]["total"] == 3 and rows["Images"]["active"] == 1
    assert rows["Images"]["reclaimable"] == layers_on_disk - (
        base_unique["Size"] - base_unique["SharedSize"]
    )
    assert rows["Containers"]["reclaimable"] == upper  # exited

    out = cli("system", "df").stdout.splitlines()
    pct = rows["Images"]["reclaimable"] * 100 // layers_on_disk
    assert out[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert out[1].split() == [
        "Images",
        "3",
        "1",
        human_size(layers_on_disk),
        human_size(rows["Images"]["reclaimable"]),
        f"({pct}%)",
    ]
    assert out[2].split() == [
        "Containers",
        "1",
        "0",
        human_size(upper),
        human_size(upper),
        "(100%)",
    ]
    assert out[3].split() == ["Local", "Volumes", "1", "1", "3kB", "0B", "(0%)"]
    assert out[4].split() == ["Build", "Cache", "0", "0", "0B", "0B"]
    fmt = cli("system", "df", "--format", "{{.Type}}={{.Size}}").stdout
    assert fmt.splitlines()[0] == f"Images={human_size(layers_on_disk)}"


@as_root
def test_it_lists_images_containers_and_volumes_with_df_v(cli, moved):
    host = pull_moved(cli, moved)
    cli("create", "--name", "c1", "-v", "vol1:/data", f"{host}/disk/base:1", "true")
    out = cli("system", "df", "-v").stdout
    sections = out.split("\n\n")
    assert sections[0] == "Images space usage:"
    images = sections[1].splitlines()
    assert images[0].split() == [
        "REPOSITORY",
        "TAG",
        "IMAGE",
        "ID",
        "CREATED",
        "SIZE",
        "SHARED",
        "SIZE",
        "UNIQUE",
        "SIZE",
        "CONTAINERS",
    ]
    repos = [line.split()[:2] for line in images[1:]]
    assert sorted(repos) == sorted(
        [[f"{host}/disk/m", "t"], ["<none>", "<none>"], [f"{host}/disk/base", "1"]]
    )
    assert [line.split()[-1] for line in images[1:] if "disk/base" in line] == ["1"]
    assert sections[2] == "Containers space usage:"
    containers = sections[3].splitlines()
    assert "LOCAL VOLUMES" in containers[0]
    assert containers[1].split()[-1] == "c1" and '"true"' in containers[1]
    assert sections[5].splitlines() == [
        "VOLUME NAME   LINKS     SIZE",
        "vol1          1         0B",
    ]
    assert sections[6] == "Build cache usage: 0B"


@as_root
def test_it_prompts_then_prunes_the_dangling_image_as_docker_prints_it(cli, moved):
    host = pull_moved(cli, moved)
    _, a, b = moved
    warning = (
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
    )
    no = cli("image", "prune", stdin="yes\n")  # only "y" is a yes, as docker
    assert no.stdout == warning + "Total reclaimed space: 0B\n"
    assert Store(cli.root).has_image(a.image_id)

    store = Store(cli.root)
    top = a.chain_ids[-1]
    freed = store.get_layer(top).size
    yes = cli("image", "prune", stdin="y\n")
    assert yes.stdout == warning + (
        "Deleted Images:\n"
        f"untagged: {host}/disk/m@{a.manifest_digest}\n"
        f"deleted: {a.image_id}\n"
        f"deleted: {top}\n"
        "\n"
        f"Total reclaimed space: {human_size(freed)}\n"
    )
    assert not store.has_image(a.image_id) and store.has_image(b.image_id)
    assert cli("image", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
    bad = cli("image", "prune", "-f", "--filter", "color=red", check=False)
    assert (bad.returncode, bad.stderr) == (
        1,
        "Error response from daemon: Invalid filter 'color'\n",
    )


def test_prune_label_filters_match_as_mobys_match_labels():
    """Every ``label`` must match; an item is left out only when every ``label!`` matches
    (moby's matchLabels: MatchKVList on each)."""
    assert match_labels({}, None)
    assert match_labels({"label": ["a", "b=2"]}, {"a": "x", "b": "2"})
    assert not match_labels({"label": ["a", "b=2"]}, {"a": "x", "b": "3"})
    assert not match_labels({"label": ["a"]}, {})
    both = {"label!": ["a", "b=2"]}
    assert not match_labels(both, {"a": "1", "b": "2"})
    assert match_labels(both, {"a": "1"}) and match_labels(both, {"b": "2"})
    assert match_labels(both, {"a": "1", "b": "3"}) and match_labels(both, {})
    assert not match_labels({"label!": ["a"]}, {"a": "1"})


@as_root
def test_it_prunes_stopped_containers_and_unused_volumes(cli, moved):
    host = pull_moved(cli, moved)
    cid = cli("create", "-v", "v1:/data", f"{host}/disk/base:1", "true").stdout.strip()
    out = cli("container", "prune", "-f").stdout
    assert out == f"Deleted Containers:\n{cid}\n\nTotal reclaimed space: 0B\n"
    out = cli("volume", "prune", stdin="n\n").stdout
    assert out.endswith("[y/N] Total reclaimed space: 0B\n")
    assert (
        cli("volume", "prune", "-f").stdout == "Deleted Volumes:\nv1\n\nTotal reclaimed space: 0B\n"
    )


@as_root
def test_it_removes_exactly_what_the_preview_showed(settings, tmp_path, db, moved):
    from images import services as image_services

    settings.DOCKWEB_ROOT = tmp_path / "store"
    host, a, b = moved
    other = im.with_symlinks()
    im.push_image(host, "disk/m", "t", a)
    im.push_image(host, "disk/o", "1", other)
    image_services.pull_image(f"{host}/disk/m:t")
    im.push_image(host, "disk/m", "t", b)
    image_services.pull_image(f"{host}/disk/m:t")
    image_services.pull_image(f"{host}/disk/o:1")
    image_services.tag_image(f"{host}/disk/o:1", f"{host}/disk/o:2")
    image_services.remove_image(f"{host}/disk/o:1")
    image_services.remove_image(f"{host}/disk/o:2")  # other is gone; a is dangling

    preview = services.prune_preview(images="dangling", containers=True, volumes=False)
    assert [i["id"] for i in preview["images"]] == [a.image_id]
    assert preview["total"] == Store(str(settings.DOCKWEB_ROOT)).get_layer(a.chain_ids[-1]).size

    op = services.start_prune(preview)
    services.run_prune(op.pk)
    op.refresh_from_db()
    assert op.status == "done", op.error
    assert op.lines == [
        "Deleted Images:",
        f"untagged: {host}/disk/m@{a.manifest_digest}",
        f"deleted: {a.image_id}",
        f"deleted: {a.chain_ids[-1]}",
        "",
        f"Total reclaimed space: {human_size(preview['total'])}",
    ]
    store = Store(str(settings.DOCKWEB_ROOT))
    assert store.has_image(b.image_id)


@as_root
def test_it_skips_an_item_that_changed_since_the_preview(settings, tmp_path, db, moved):
    from images import services as image_services

    settings.DOCKWEB_ROOT = tmp_path / "store"
    host, a, b = moved
    im.push_image(host, "disk/m", "t", a)
    image_services.pull_image(f"{host}/disk/m:t")
    im.push_image(host, "disk/m", "t", b)
    image_services.pull_image(f"{host}/disk/m:t")
    preview = services.prune_preview(images="dangling", containers=False)
    assert [i["id"] for i in preview["images"]] == [a.image_id]
    image_services.tag_image(a.image_id, f"{host}/disk/keep:1")  # no longer dangling

    op = services.start_prune(preview)
    services.run_prune(op.pk)
    op.refresh_from_db()
    assert op.skipped == [a.image_id]
    assert op.lines == ["Total reclaimed space: 0B"]
    store = Store(str(settings.DOCKWEB_ROOT))
    assert store.has_image(a.image_id) and store.has_image(b.image_id)


# -- the page, from the database alone ----------------------------------------------------


@pytest.fixture
def role() -> str:
    return "admin"  # prunes


@pytest.fixture
def rows(db):
    from tests.test_pages_images import make_image, make_layer

    base = make_layer(1, 1000, 400)
    a_top = make_layer(2, 200, 80)
    b_top = make_layer(3, 30, 10)
    make_layer(4, 7, 7)  # an interrupted pull's layer: no image uses it
    make_image("sha256:" + "a1" * 32, [base, a_top], [], days=3)  # dangling
    make_image("sha256:" + "b2" * 32, [base, b_top], ["docker.io/library/app:1"], days=1)


def test_it_renders_the_disk_page_from_the_database(client, rows):
    html = client.get("/disk/").content.decode()
    # 1000 + 200 + 30: the shared base once; reclaimable all of it (no container)
    assert '<td class="num" data-bytes="1230">1.23kB</td>' in html
    assert "1.23kB (100%)" in html
    assert 'href="/disk/"' in html  # in the sidebar
    assert '<svg class="disk-bars"' in html


def test_it_previews_then_queues_exactly_that_list(
    client, rows, django_capture_on_commit_callbacks
):
    html = client.get("/disk/prune/?images=dangling&containers=on").content.decode()
    assert html.count('data-kind="image"') == 1 and "a1a1a1a1a1a1" in html
    assert html.count('data-kind="layer"') == 1
    assert "This frees 207B." in html  # a's own top layer and the orphan layer
    stale = client.post("/disk/prune/", {"images": "dangling", "containers": "on", "seen": "x"})
    assert stale.status_code == 200 and PruneOperation.objects.count() == 0
    seen = stale.context["fingerprint"]
    with django_capture_on_commit_callbacks(execute=False):
        resp = client.post("/disk/prune/", {"images": "dangling", "containers": "on", "seen": seen})
    op = PruneOperation.objects.get()
    assert resp.status_code == 302 and resp["Location"] == f"/disk/prune/{op.pk}/"
    assert [i["id"] for i in op.preview["images"]] == ["sha256:" + "a1" * 32]
    assert op.preview["total"] == 207


def test_it_shows_dockers_lines_when_the_prune_is_done(client, db):
    op = PruneOperation.objects.create(
        status="done",
        lines=["Deleted Images:", "deleted: sha256:ab", "", "Total reclaimed space: 5B"],
        reclaimed=5,
    )
    html = client.get(f"/disk/prune/{op.pk}/").content.decode()
    assert "deleted: sha256:ab\n\nTotal reclaimed space: 5B" in html
    assert "hx-trigger" not in html.split('id="prune-result"')[1].split(">")[0]


def test_it_lists_and_prunes_images_as_dockers_image_list_does(db):
    """A build's intermediate image (no reference, a child) is neither shown nor pruned; a
    digest-only image is shown by digest and is dangling; an image without references is
    the ``<none>:<none>`` row."""
    from images.models import Reference, Repository
    from tests.test_pages_images import make_image, make_layer

    base = make_layer(1, 1000, 400)
    top = make_layer(2, 200, 80)
    other = make_layer(3, 30, 10)
    parent = make_image("sha256:" + "c1" * 32, [base], [], days=4)
    child = make_image("sha256:" + "c2" * 32, [base, top], ["app:1"], days=3)
    child.parent_image_id = parent.image_id
    child.save()
    by_digest = make_image("sha256:" + "c3" * 32, [other], [], days=2)
    repo = Repository.objects.get(name="docker.io/library/app")
    Reference.objects.create(repository=repo, digest="sha256:" + "d4" * 32, image=by_digest)
    make_image("sha256:" + "c5" * 32, [base], [], days=1)

    du = services.disk_usage_from_db()
    assert [
        (s["Id"][7:9], s["RepoTags"], s["RepoDigests"], s["SharedSize"]) for s in du["Images"]
    ] == [
        ("c5", ["<none>:<none>"], ["<none>@<none>"], 1000),
        ("c3", [], ["app@sha256:" + "d4" * 32], 0),
        ("c2", ["app:1"], [], 1000),
    ]
    dangling = services.prune_preview(images="dangling", containers=False)
    assert sorted(i["id"][7:9] for i in dangling["images"]) == ["c3", "c5"]
    every = services.prune_preview(images="all", containers=False)
    assert sorted(i["id"][7:9] for i in every["images"]) == ["c2", "c3", "c5"]
