"""The Engine API's image endpoints, driven by Debian's docker CLI (20.10) and docker-py:
pull (Docker's progress lines, errors, X-Registry-Auth, the Pull row the dashboard shows
while it runs), images with filters and formats, tag, rmi, inspect, history, prune,
save/load, push. Outputs are compared with what docker prints against dockerd."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import subprocess
import tarfile
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support import images as im
from tests.support.engineapi import request
from tests.support.registry import PASSWORD, USERNAME, RegistryServer
from tests.support.worker import ThrottledProxy

PREFIX = "dockerapi-images"


@pytest.fixture(scope="module")
def pushed(registry):
    """The images the tests pull, pushed once: busybox, the shared-base pair, a labelled
    image made later than the others, an image whose one layer no other has."""
    host = registry.host
    busybox = im.busybox_base()
    a, b = im.shared_base_pair()
    labelled = im.Image(
        [im.busybox_layer()],
        {"Cmd": ["sh"], "Labels": {"api": "yes"}},
        created="2024-06-01T00:00:00Z",
    )
    lonely = im.Image([im.Layer([im.dir_("lonely"), im.file("lonely/file", b"alone\n")])])
    return {
        "host": host,
        "lonely": (lonely, im.push_image(host, f"{PREFIX}/lonely", "1", lonely)),
        "busybox": (busybox, im.push_image(host, f"{PREFIX}/busybox", "1", busybox)),
        "a": (a, im.push_image(host, f"{PREFIX}/a", "1", a)),
        "b": (b, im.push_image(host, f"{PREFIX}/b", "1", b)),
        "labelled": (labelled, im.push_image(host, f"{PREFIX}/labelled", "1", labelled)),
    }


def name(pushed, repo: str, tag: str = "1") -> str:
    return f"{pushed['host']}/{PREFIX}/{repo}:{tag}"


def short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def db(engine_api) -> sqlite3.Connection:
    """The service's own database, read-only."""
    path = Path(engine_api.base) / "data" / "db.sqlite3"
    return closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30))


def pull_rows(engine_api, normalized: str) -> list[tuple]:
    with db(engine_api) as conn:
        return conn.execute(
            "SELECT id, status, status_text, error, image_id FROM images_pull "
            "WHERE normalized = ? ORDER BY id",
            (normalized,),
        ).fetchall()


def pull_layers(engine_api, pull_id: int) -> list[tuple]:
    with db(engine_api) as conn:
        return conn.execute(
            "SELECT position, short_id, status, current, total FROM images_pulllayer "
            "WHERE pull_id = ? ORDER BY position",
            (pull_id,),
        ).fetchall()


def audit_rows(engine_api, action: str) -> list[tuple]:
    with db(engine_api) as conn:
        return conn.execute(
            "SELECT actor, target, detail FROM access_auditevent WHERE action = ? ORDER BY id",
            (action,),
        ).fetchall()


def docker_ok(engine_api, *args: str, **kw) -> str:
    return engine_api.docker(*args, check=True, **kw).stdout


# -- pull --------------------------------------------------------------------------------


def test_pull_prints_dockers_lines_and_leaves_a_done_pull_row(engine_api, pushed):
    image, digest = pushed["a"]
    ref = name(pushed, "a")
    out = docker_ok(engine_api, "pull", ref).splitlines()
    # as docker prints a pull against dockerd when stdout is not a terminal: no bars
    assert out[0] == f"1: Pulling from {PREFIX}/a"
    assert out[-3:] == [
        f"Digest: {digest}",
        f"Status: Downloaded newer image for {ref}",
        ref,
    ]
    layer_ids = [short(la.digest) for la in image.layers]
    for lid in layer_ids:
        assert f"{lid}: Pulling fs layer" in out
        assert f"{lid}: Download complete" in out
        assert f"{lid}: Pull complete" in out
    assert all("[" not in line for line in out)
    # layers complete bottom up
    completes = [line.split(":")[0] for line in out if line.endswith(": Pull complete")]
    assert completes == layer_ids

    # the dashboard's mirror: a done Pull row with a row per layer, and the audit
    [(pull_id, status, status_text, error, image_id)] = pull_rows(engine_api, ref)
    assert (status, status_text, error, image_id) == (
        "done",
        f"Downloaded newer image for {ref}",
        "",
        image.image_id,
    )
    layers = pull_layers(engine_api, pull_id)
    assert [(pos, sid, st) for pos, sid, st, _, _ in layers] == [
        (i, lid, "Pull complete") for i, lid in enumerate(layer_ids)
    ]
    assert [(cur, tot) for *_, cur, tot in layers] == [(la.size, la.size) for la in image.layers]
    actor, target, detail = audit_rows(engine_api, "image.pull")[-1]
    assert actor == "api:root"
    assert target == f"{pushed['host']}/{PREFIX}/a"
    assert json.loads(detail)["status"] == 200

    # pulled again: up to date, as dockerd says it
    out = docker_ok(engine_api, "pull", ref).splitlines()
    assert out == [
        f"1: Pulling from {PREFIX}/a",
        f"Digest: {digest}",
        f"Status: Image is up to date for {ref}",
        ref,
    ]
    # layers it shares are not pulled twice
    b, b_digest = pushed["b"]
    out = docker_ok(engine_api, "pull", name(pushed, "b")).splitlines()
    shared = [short(la.digest) for la in b.layers[:2]]
    assert [f"{lid}: Already exists" for lid in shared] == out[1:3]
    assert f"{short(b.layers[2].digest)}: Pull complete" in out


def test_pull_default_tag_and_by_digest(engine_api, pushed):
    image, digest = pushed["busybox"]
    repo = f"{pushed['host']}/{PREFIX}/busybox"
    im.push_image(pushed["host"], f"{PREFIX}/busybox", "latest", image)
    out = docker_ok(engine_api, "pull", repo).splitlines()
    assert out[:2] == ["Using default tag: latest", f"latest: Pulling from {PREFIX}/busybox"]
    assert out[-1] == f"{repo}:latest"
    out = docker_ok(engine_api, "pull", f"{repo}@{digest}").splitlines()
    assert out == [
        f"{repo}@{digest}: Pulling from {PREFIX}/busybox",
        f"Digest: {digest}",
        f"Status: Image is up to date for {repo}@{digest}",
        f"{repo}@{digest}",
    ]


def test_pull_errors_as_dockerd(engine_api, pushed):
    missing = f"{pushed['host']}/{PREFIX}/missing:1"
    proc = engine_api.docker("pull", missing)
    assert proc.returncode == 1
    assert proc.stderr == (
        f"Error response from daemon: manifest for {missing} not found: "
        "manifest unknown: manifest unknown\n"
    )
    # recorded as a failed pull, with the same words
    [(_, status, _, error, _)] = pull_rows(engine_api, missing)
    assert (status, error) == (
        "failed",
        f"manifest for {missing} not found: manifest unknown: manifest unknown",
    )
    # before any output: dockerd's statuses
    for query, status, message in (
        ("fromImage=busybox&tag=Bad^", 400, "invalid tag format"),
        ("fromImage=Bad&tag=1", 400, "invalid reference format: repository name must be lowercase"),
        ("fromSrc=-&repo=x", 400, "dockweb does not support fromSrc (docker import)"),
        ("fromImage=busybox&tag=1&platform=linux/", 400, '"linux/": invalid platform specifier'),
    ):
        st, _, body = request(engine_api, "POST", f"/v1.41/images/create?{query}")
        assert (st, json.loads(body)) == (status, {"message": message}), query


def test_pull_error_after_the_stream_started_is_in_the_stream(engine_api, pushed):
    ref = name(pushed, "labelled")
    proc = engine_api.docker("pull", "--platform", "linux/arm64", ref)
    assert proc.returncode == 1
    assert proc.stdout == f"1: Pulling from {PREFIX}/labelled\n"
    message = (
        f"image with reference {ref} was found but does not match the specified platform: "
        "wanted linux/arm64, actual: linux/amd64"
    )
    assert proc.stderr == message + "\n"
    status, headers, body = request(
        engine_api,
        "POST",
        f"/v1.41/images/create?fromImage={ref.rsplit(':', 1)[0]}&tag=1&platform=linux/arm64",
    )
    assert status == 200 and headers["content-type"] == "application/json"
    lines = [json.loads(x) for x in body.splitlines()]
    assert lines == [
        {"status": f"Pulling from {PREFIX}/labelled", "id": "1"},
        {"errorDetail": {"message": message}, "error": message},
    ]


def test_pull_stream_is_dockers_json(engine_api, pushed):
    _, digest = pushed["busybox"]
    repo = f"{pushed['host']}/{PREFIX}/busybox"
    docker_ok(engine_api, "pull", "-q", f"{repo}:1")
    status, headers, body = request(
        engine_api, "POST", f"/v1.41/images/create?fromImage={repo}&tag=1"
    )
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body.endswith(b"}\r\n")  # dockerd's streamformatter ends each message so
    assert body.decode().splitlines()[-2:] == [
        '{"status":"Digest: ' + digest + '"}',
        '{"status":"Status: Image is up to date for ' + repo + ':1"}',
    ]


@pytest.fixture(scope="module")
def slow_image(registry, tmp_path_factory):
    """busybox and a 3 MiB incompressible layer, pushed as <PREFIX>/slow:1."""
    big = im.large_layer(3 << 20, tmp_path_factory.mktemp("slow") / "big.blob", seed=11)
    image = im.Image([im.busybox_layer(), big], {"Cmd": ["sh"]})
    im.push_image(registry.host, f"{PREFIX}/slow", "1", image)
    return image


def wait_for_download(engine_api, ref: str, digest: str, proc) -> tuple[int, int, int]:
    """Poll the service's database until the running Pull row of ``ref`` shows the layer
    ``digest`` Downloading part-way: (pull id, current, total)."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        rows = pull_rows(engine_api, ref)
        if rows and rows[-1][1] == "running":
            for _pos, sid, st, cur, tot in pull_layers(engine_api, rows[-1][0]):
                if sid == short(digest) and st == "Downloading" and 0 < cur < tot:
                    return rows[-1][0], cur, tot
        time.sleep(0.05)
    rows = pull_rows(engine_api, ref)
    layers = pull_layers(engine_api, rows[-1][0]) if rows else []
    raise AssertionError(
        f"no Downloading row for {ref} while the pull ran (exit {proc.poll()}): "
        f"{rows} {layers} {proc.communicate()}"
    )


def docker_pull(engine_api, ref: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["/usr/bin/docker", "pull", ref],
        env=engine_api.client_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_pull_shows_on_the_pull_page_while_it_runs(engine_api, registry, slow_image):
    """The Pull row and its layer rows change while the client still reads the stream."""
    big = slow_image.layers[1]
    with ThrottledProxy(registry.host, 1 << 20) as proxy:
        ref = f"{proxy.host}/{PREFIX}/slow:1"
        proc = docker_pull(engine_api, ref)
        wait_for_download(engine_api, ref, big.digest, proc)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == ref
    [(pull_id, status, *_)] = pull_rows(engine_api, ref)
    assert status == "done"
    states = [st for _, _, st, _, _ in pull_layers(engine_api, pull_id)]
    assert states[0] in ("Already exists", "Pull complete")  # busybox, pulled before or not
    assert states[1] == "Pull complete"
    engine_api.docker("rmi", ref, check=True)


def test_a_client_that_goes_away_cancels_its_pull(engine_api, registry, slow_image):
    big = slow_image.layers[1]
    # the runtime reads a layer 1 MiB at a time, and sees the cancel between two reads
    with ThrottledProxy(registry.host, 1 << 20) as proxy:
        ref = f"{proxy.host}/{PREFIX}/slow:1"
        proc = docker_pull(engine_api, ref)
        pull_id, _, _ = wait_for_download(engine_api, ref, big.digest, proc)
        proc.kill()
        proc.communicate()
        deadline = time.monotonic() + 30
        while pull_rows(engine_api, ref)[-1][1] == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
    assert pull_rows(engine_api, ref)[-1][:2] == (pull_id, "cancelled")
    proc = engine_api.docker("image", "inspect", ref)
    assert proc.stderr == f"Error: No such image: {ref}\n"


def test_pull_and_push_with_x_registry_auth(engine_api, pushed, tmp_path_factory):
    """docker-py's auth_config travels as X-Registry-Auth; without it the registry refuses."""
    import docker

    server = RegistryServer(tmp_path_factory.mktemp("auth-registry"), auth="htpasswd")
    server.start()
    client = engine_api.client()
    try:
        auth = {"username": USERNAME, "password": PASSWORD}
        busybox = name(pushed, "busybox")
        docker_ok(engine_api, "pull", "-q", busybox)
        ref = f"{server.host}/{PREFIX}/private"
        client.images.get(busybox).tag(ref, "1")
        refused = [json.loads(x) for x in client.images.push(ref, "1").splitlines()]
        assert "error" in refused[-1]
        pushed_lines = [
            json.loads(x) for x in client.images.push(ref, "1", auth_config=auth).splitlines()
        ]
        assert not any("error" in x for x in pushed_lines)
        assert pushed_lines[-1]["aux"]["Tag"] == "1"
        client.images.remove(f"{ref}:1")
        with pytest.raises(docker.errors.APIError):
            client.images.pull(ref, tag="1")
        pulled = client.images.pull(ref, tag="1", auth_config=auth)
        assert pulled.id == pushed["busybox"][0].image_id
        # the header as dockerd decodes it: base64url JSON
        header = base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()
        status, _, body = request(
            engine_api,
            "POST",
            f"/v1.41/images/create?fromImage={ref}&tag=1",
            headers={"X-Registry-Auth": header},
        )
        assert status == 200 and b"Image is up to date" in body
        client.images.remove(f"{ref}:1")
    finally:
        client.close()
        server.stop()


# -- images, inspect, history ------------------------------------------------------------


def test_images_listing_filters_and_formats(engine_api, pushed):
    for repo in ("a", "b", "busybox", "labelled"):
        docker_ok(engine_api, "pull", "-q", name(pushed, repo))
    labelled = pushed["labelled"][0]
    # each filter as the dockweb CLI lists it on the same store (its SIZE column follows a
    # newer docker/cli's precision, so the columns compared leave it out)
    table = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}"
    for args in (
        ("-a", "--format", table),
        ("-a", "-q"),
        ("--digests", "--no-trunc", "--format", table),
        ("-f", "dangling=false", "-f", "label=api=yes", "--format", table),
        ("-f", f"reference={pushed['host']}/{PREFIX}/*", "--format", table),
        ("-f", f"since={name(pushed, 'a')}", "--format", table),
        ("-f", f"before={name(pushed, 'labelled')}", "--format", table),
        (f"{pushed['host']}/{PREFIX}/a", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"),
    ):
        ours = engine_api.docker("images", *args, check=True).stdout
        theirs = engine_api.dockweb("images", *args, check=True).stdout
        assert ours == theirs, args
    # docker 20.10's own table, SIZE with 3 digits
    a = pushed["a"][0]
    out = docker_ok(engine_api, "images", "--digests", f"{pushed['host']}/{PREFIX}/a")
    repo = f"{pushed['host']}/{PREFIX}/a"
    pad = " " * (len(repo) - len("REPOSITORY"))
    assert out.splitlines() == [
        f"REPOSITORY{pad}   TAG       DIGEST{' ' * 65}   IMAGE ID       CREATED       SIZE",
        f"{repo}   1         {pushed['a'][1]}   {a.image_id[7:19]}   2 years ago   1.98MB",
    ]
    out = docker_ok(engine_api, "images", "-q", "-f", "label=api=yes").split()
    assert out == [labelled.image_id.split(":")[1][:12]]
    out = docker_ok(engine_api, "images", "--format", "{{.Repository}}", "-f", "label=api=yes")
    assert out == f"{pushed['host']}/{PREFIX}/labelled\n"
    # since: made after a's image (the labelled one is the only later one)
    since = f"since={name(pushed, 'a')}"
    out = docker_ok(engine_api, "images", "--format", "{{.Tag}}", "-f", since)
    assert out == "1\n"
    proc = engine_api.docker("images", "-f", "bogus=1")
    assert proc.stderr == "Error response from daemon: Invalid filter 'bogus'\n"
    proc = engine_api.docker("images", "-f", "before=nope")
    assert proc.stderr == "Error response from daemon: No such image: nope:latest\n"


def test_images_json_is_dockerds_shape(engine_api, pushed):
    docker_ok(engine_api, "pull", "-q", name(pushed, "busybox"))
    image, digest = pushed["busybox"]
    status, _, body = request(engine_api, "GET", "/v1.41/images/json")
    assert status == 200
    [row] = [r for r in json.loads(body) if r["Id"] == image.image_id]
    # a reference filter keeps only the references it matches, as dockerd's
    status, _, body = request(
        engine_api,
        "GET",
        "/v1.41/images/json?filters="
        + quote(json.dumps({"reference": {f"{pushed['host']}/{PREFIX}/busybox:1": True}})),
    )
    [filtered] = json.loads(body)
    assert filtered == dict(row, RepoDigests=None, RepoTags=[name(pushed, "busybox")])
    assert list(row) == [
        "Containers",
        "Created",
        "Id",
        "Labels",
        "ParentId",
        "RepoDigests",
        "RepoTags",
        "SharedSize",
        "Size",
        "VirtualSize",
    ]
    assert name(pushed, "busybox") in row["RepoTags"]
    assert row["RepoDigests"] == [f"{pushed['host']}/{PREFIX}/busybox@{digest}"]
    assert row["Labels"] is None and row["Containers"] == -1 and row["SharedSize"] == -1
    status, _, body = request(engine_api, "GET", "/v1.41/images/json?shared-size=1")
    assert all(r["SharedSize"] >= 0 and r["Containers"] >= 0 for r in json.loads(body))


def test_inspect_and_history_as_the_cli(engine_api, pushed):
    ref = name(pushed, "b")
    docker_ok(engine_api, "pull", "-q", ref)
    ours = json.loads(docker_ok(engine_api, "image", "inspect", ref))
    theirs = json.loads(engine_api.dockweb("image", "inspect", ref, check=True).stdout)
    assert ours == theirs
    assert ours[0]["Id"] == pushed["b"][0].image_id
    # the dockweb CLI's human SIZE follows a newer docker/cli's precision: compared raw
    for args in (("-H=false",), ("--no-trunc", "-H=false"), ("--format", "{{.ID}} {{.CreatedBy}}")):
        ours = docker_ok(engine_api, "history", *args, ref)
        assert ours == engine_api.dockweb("history", *args, ref, check=True).stdout, args
    b_id = pushed["b"][0].image_id[7:19]
    assert docker_ok(engine_api, "history", ref).splitlines() == [
        "IMAGE          CREATED       CREATED BY                     SIZE      COMMENT",
        f"{b_id}   2 years ago   tests.support.images layer 2   2B        ",
        "<missing>      2 years ago   tests.support.images layer 1   7B        ",
        "<missing>      2 years ago   tests.support.images layer 0   1.98MB    ",
    ]
    assert docker_ok(engine_api, "history", "--format", "{{.CreatedBy}}", ref).splitlines() == [
        "tests.support.images layer 2",
        "tests.support.images layer 1",
        "tests.support.images layer 0",
    ]
    proc = engine_api.docker("image", "inspect", "nope")
    assert (proc.returncode, proc.stderr) == (1, "Error: No such image: nope\n")
    proc = engine_api.docker("history", "nope")
    assert proc.stderr == "Error response from daemon: No such image: nope:latest\n"


# -- tag, rmi, prune ---------------------------------------------------------------------


def test_tag_rmi_lines_and_conflicts(engine_api, pushed):
    ref = name(pushed, "a")
    image, digest = pushed["a"]
    docker_ok(engine_api, "pull", "-q", ref)
    docker_ok(engine_api, "tag", ref, "api-tagged:x")
    docker_ok(engine_api, "tag", ref, "api-tagged")
    out = docker_ok(engine_api, "images", "--format", "{{.Repository}}:{{.Tag}}", "api-tagged")
    assert sorted(out.split()) == ["api-tagged:latest", "api-tagged:x"]
    proc = engine_api.docker("tag", "nope", "api-tagged:y")
    assert proc.stderr == "Error response from daemon: No such image: nope:latest\n"
    st, _, body = request(
        engine_api, "POST", f"/v1.41/images/{ref}/tag?repo=api-tagged@{digest}"
    )
    assert (st, json.loads(body)) == (
        400,
        {"message": "refusing to create a tag with a digest reference"},
    )
    short_id = image.image_id.split(":")[1][:12]
    proc = engine_api.docker("rmi", short_id)
    assert proc.returncode == 1
    assert proc.stderr == (
        f"Error response from daemon: conflict: unable to delete {short_id} (must be forced) "
        "- image is referenced in multiple repositories\n"
    )
    assert docker_ok(engine_api, "rmi", "api-tagged:x") == "Untagged: api-tagged:x\n"
    assert docker_ok(engine_api, "rmi", "api-tagged") == "Untagged: api-tagged:latest\n"
    # the last references: untagged, then the image and its own layer deleted
    b = pushed["b"][0]
    docker_ok(engine_api, "pull", "-q", name(pushed, "b"))
    out = docker_ok(engine_api, "rmi", ref).splitlines()
    assert out[:3] == [
        f"Untagged: {ref}",
        f"Untagged: {pushed['host']}/{PREFIX}/a@{digest}",
        f"Deleted: {image.image_id}",
    ]
    # the layers b shares stay
    assert len(out) == 4 and out[3].startswith("Deleted: sha256:")
    out = docker_ok(engine_api, "image", "inspect", "--format", "{{.Id}}", name(pushed, "b"))
    assert out == b.image_id + "\n"
    proc = engine_api.docker("rmi", "nope")
    assert proc.stderr == "Error: No such image: nope\n"
    actor, target, detail = audit_rows(engine_api, "image.remove")[-1]
    assert (actor, target) == ("api:root", "nope")
    assert json.loads(detail)["status"] == 404
    assert ("api:root", ref) in [row[:2] for row in audit_rows(engine_api, "image.tag")]


def test_prune(engine_api, pushed):
    image, digest = pushed["labelled"]
    repo = f"{pushed['host']}/{PREFIX}/labelled"
    engine_api.docker("rmi", f"{repo}:1")  # left by another test, or not there
    docker_ok(engine_api, "pull", "-q", f"{repo}@{digest}")
    # pulled by digest alone: no tag, so dangling
    out = docker_ok(engine_api, "images", "-q", "-f", "dangling=true").split()
    assert image.image_id.split(":")[1][:12] in out
    assert docker_ok(engine_api, "image", "prune", "-f", "--filter", "label=other") == (
        "Total reclaimed space: 0B\n"
    )
    out = docker_ok(engine_api, "image", "prune", "-f").splitlines()
    assert out[:3] == [
        "Deleted Images:",
        f"untagged: {repo}@{digest}",
        f"deleted: {image.image_id}",
    ]
    assert out[-1].startswith("Total reclaimed space: ")
    st, _, body = request(engine_api, "POST", "/v1.41/images/prune")
    assert (st, json.loads(body)) == (200, {"ImagesDeleted": None, "SpaceReclaimed": 0})
    proc = engine_api.docker("image", "prune", "-f", "--filter", "bogus=1")
    assert proc.stderr == "Error response from daemon: Invalid filter 'bogus'\n"
    assert audit_rows(engine_api, "image.prune")[-1][0] == "api:root"


# -- save, load, push --------------------------------------------------------------------


def test_save_load_round_trip(engine_api, pushed, tmp_path):
    ref = name(pushed, "busybox")
    image = pushed["busybox"][0]
    docker_ok(engine_api, "pull", "-q", ref)
    tar_path = tmp_path / "busybox.tar"
    docker_ok(engine_api, "save", "-o", str(tar_path), ref)
    with tarfile.open(tar_path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [ref]
    # the same bytes as dockweb save on the same store
    cli = engine_api.dockweb("save", ref, text=False, check=True).stdout
    assert tar_path.read_bytes() == cli
    docker_ok(engine_api, "rmi", ref)
    proc = engine_api.docker("load", "-i", str(tar_path))
    assert (proc.returncode, proc.stdout) == (0, f"Loaded image: {ref}\n")
    out = docker_ok(engine_api, "image", "inspect", "--format", "{{.Id}}", ref)
    assert out == image.image_id + "\n"
    # from stdin too, and the API's stream with quiet=0
    with open(tar_path, "rb") as f:
        proc = engine_api.docker("load", stdin=f)
    assert proc.stdout == f"Loaded image: {ref}\n"
    # a layer no other image has: loaded again, with progress
    lonely = name(pushed, "lonely")
    docker_ok(engine_api, "pull", "-q", lonely)
    lonely_tar = engine_api.dockweb("save", lonely, text=False, check=True).stdout
    docker_ok(engine_api, "rmi", lonely)
    st, _, body = request(
        engine_api,
        "POST",
        "/v1.41/images/load?quiet=0",
        body=lonely_tar,
        headers={"Content-Type": "application/x-tar"},
    )
    assert st == 200
    assert json.loads(body.splitlines()[-1]) == {"stream": f"Loaded image: {lonely}\n"}
    # progress as dockerd encodes it: Go's escaped ">" in the bar, "\r\n" after each line
    first = body.split(b"\r\n")[0]
    assert first.startswith(b'{"status":"Loading layer","progressDetail":{"current":')
    assert b'"progress":"[' in first and b"\\u003e" in first
    # errors: in the stream, as dockerd's
    proc = engine_api.docker("load", input=b"garbage", text=False)
    assert proc.returncode == 1 and proc.stderr.startswith(b"invalid tar file")
    proc = engine_api.docker("save", "nope", stdout=subprocess.DEVNULL)
    assert proc.stderr == "Error response from daemon: No such image: nope\n"
    st, _, body = request(engine_api, "GET", f"/v1.41/images/get?names={ref}")
    assert st == 200 and body == cli
    assert audit_rows(engine_api, "image.load")[-1][0] == "api:root"


def test_push_to_the_registry(engine_api, pushed, registry):
    ref = name(pushed, "b")
    b = pushed["b"][0]
    docker_ok(engine_api, "pull", "-q", ref)
    target = f"{registry.host}/{PREFIX}/pushed:2"
    docker_ok(engine_api, "tag", ref, target)
    out = docker_ok(engine_api, "push", target).splitlines()
    ids = [short(d) for d in reversed(b.diff_ids)]
    assert out[0] == f"The push refers to repository [{registry.host}/{PREFIX}/pushed]"
    assert out[1:4] == [f"{i}: Preparing" for i in ids]
    assert sorted(out[4:7]) == sorted(f"{i}: Mounted from {PREFIX}/b" for i in ids)
    digest = out[7].split()[2]
    assert out[7:] == [f"2: digest: {digest} size: {out[7].split()[-1]}"]
    _, served_digest, _ = im.fetch_manifest(registry.host, f"{PREFIX}/pushed", "2")
    assert served_digest == digest
    # again: the layers are there
    out = docker_ok(engine_api, "push", target).splitlines()
    assert sorted(out[4:7]) == sorted(f"{i}: Layer already exists" for i in ids)
    proc = engine_api.docker("push", f"{registry.host}/{PREFIX}/pushed:3")
    assert proc.returncode == 1
    assert proc.stderr == f"tag does not exist: {registry.host}/{PREFIX}/pushed:3\n"
    st, _, body = request(engine_api, "POST", f"/v1.41/images/{target[:-2]}/push?tag=2")
    assert (st, json.loads(body)) == (
        400,
        {"message": "Bad parameters and missing X-Registry-Auth: EOF"},
    )
    assert ("api:root", target[:-2]) in [r[:2] for r in audit_rows(engine_api, "image.push")]


def test_search_is_not_implemented(engine_api):
    proc = engine_api.docker("search", "busybox")
    assert proc.returncode == 1
    assert proc.stderr == (
        "Error response from daemon: dockweb does not support searching a registry "
        "(docker search)\n"
    )


# -- docker-py ---------------------------------------------------------------------------


def test_docker_py_images(engine_api, pushed, registry):
    import docker

    client = engine_api.client()
    repo = f"{pushed['host']}/{PREFIX}/a"
    image = client.images.pull(repo, tag="1")
    assert image.id == pushed["a"][0].image_id
    assert f"{repo}:1" in image.tags
    listed = client.images.list(name=repo)
    assert [i.id for i in listed] == [image.id]
    assert client.images.get(f"{repo}:1").attrs["RootFS"]["Layers"] == pushed["a"][0].diff_ids
    data = b"".join(image.save())  # by ID, as docker-py asks: no tag in the tarball
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] is None
    named = b"".join(image.save(named=True))
    with tarfile.open(fileobj=io.BytesIO(named)) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == [f"{repo}:1"]
    client.images.remove(f"{repo}:1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(f"{repo}:1")
    [loaded] = client.images.load(data)
    assert loaded.id == image.id
    target = f"{registry.host}/{PREFIX}/pypushed"
    loaded.tag(target, "5")
    lines = [json.loads(x) for x in client.images.push(target, "5").splitlines()]
    assert lines[-1]["aux"]["Tag"] == "5"
    assert lines[-2]["status"].startswith("5: digest: sha256:")
    client.images.remove(f"{target}:5")
    client.close()
