"""The Build pages: the form (context uploads, tags, build args), a build run in-process on a
real busybox image, the live page while running and once done, unsafe uploads refused."""

from __future__ import annotations

import io
import os
import tarfile
from datetime import timedelta
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from access.roles import set_role
from dockweb import jobs
from images import services
from images.models import Build, BuildStep, Image
from tests.support import images as im


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DOCKWEB_DATA = tmp_path / "data"
    return settings.DOCKWEB_DATA


@pytest.fixture
def role() -> str:
    return "operator"  # building is an operator's


def _tar(entries: dict[str, bytes], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _builds(data_dir) -> list[str]:
    path = os.path.join(data_dir, "builds")
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


# -- the form -----------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_login(db):
    for path in ("/build/", "/builds/1/"):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


def test_it_shows_the_form_the_nav_link_and_recent_builds(client, db):
    Build.objects.create(dockerfile="FROM busybox\nRUN true\n", tags=["recent:1"])
    html = client.get("/build/").content.decode()
    assert 'name="dockerfile"' in html and 'enctype="multipart/form-data"' in html
    assert "FROM busybox:latest" in html  # the example placeholder
    assert 'name="context"' in html and 'name="files"' in html and "multiple" in html
    assert 'href="/build/" aria-current="page"' in html
    assert "recent:1" in html and 'href="/builds/' in html


def test_it_queues_a_build_with_its_context_tags_and_args(
    client, data_dir, django_capture_on_commit_callbacks
):
    dockerfile = "FROM busybox\nARG A\nCOPY . /app/\n"
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/build/",
            {
                "dockerfile": dockerfile,
                "tags": "app:1, app:latest",
                "build_args": "A=1\n\nB=two words\n",
                "no_cache": "1",
                "context": SimpleUploadedFile("ctx.tar.gz", _tar({"src/a.txt": b"a"}, gz=True)),
                "files": [SimpleUploadedFile("top.txt", b"top")],
            },
        )
    build = Build.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/builds/{build.pk}/"
    assert len(callbacks) == 1  # enqueued once the row is committed
    assert build.status == "queued" and build.dockerfile == dockerfile
    assert build.tags == ["app:1", "app:latest"] and build.no_cache
    assert build.build_args == {"A": "1", "B": "two words"}
    assert build.created_by.username == "alice"
    assert build.context_dir == os.path.join(data_dir, "builds", str(build.pk), "context")
    with open(os.path.join(build.context_dir, "src", "a.txt")) as f:
        assert f.read() == "a"
    with open(os.path.join(build.context_dir, "top.txt")) as f:
        assert f.read() == "top"
    assert build.context_size == 4
    assert _builds(data_dir) == [str(build.pk)]  # no upload- directory left


def test_it_takes_the_dockerfile_from_the_context_when_the_textarea_is_empty(client, data_dir):
    tar = _tar({"Dockerfile": b'FROM busybox\nCMD ["sh"]\n'})
    response = client.post(
        "/build/", {"dockerfile": "", "context": SimpleUploadedFile("c.tar", tar)}
    )
    assert response.status_code == 302
    assert Build.objects.get().dockerfile == 'FROM busybox\nCMD ["sh"]\n'


@pytest.mark.parametrize(
    "form, message",
    [
        ({"dockerfile": ""}, "enter a Dockerfile"),
        ({"dockerfile": "FROM busybox\nFOO bar\n"}, "dockerfile parse error line 2: unknown"),
        ({"dockerfile": "FROM busybox", "tags": "Bad:Tag"}, 'invalid argument "Bad:Tag"'),
        ({"dockerfile": "FROM busybox", "build_args": "NOVALUE"}, "KEY=value, not NOVALUE"),
    ],
)
def test_it_refuses_an_invalid_form_and_keeps_nothing(client, data_dir, form, message):
    response = client.post("/build/", form)
    assert response.status_code == 400
    assert message in unescape(response.content.decode())
    assert not Build.objects.exists()
    assert _builds(data_dir) == []


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "ok/../../evil.txt", "/etc/evil.txt"],
)
def test_it_refuses_a_context_archive_that_leaves_the_context(client, data_dir, name):
    tar = _tar({"fine.txt": b"fine", name: b"evil"})
    response = client.post(
        "/build/",
        {"dockerfile": "FROM busybox\n", "context": SimpleUploadedFile("c.tar", tar)},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "refused the context archive" in html and "leaves the context" in html
    assert not Build.objects.exists()
    assert _builds(data_dir) == []  # nothing extracted, not even fine.txt
    assert not os.path.exists(os.path.join(data_dir, "evil.txt"))


def test_it_refuses_writing_through_a_symlink_the_archive_made(client, data_dir, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("out")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
        tar.addfile(link)
        info = tarfile.TarInfo("out/escaped.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    response = client.post(
        "/build/",
        {"dockerfile": "FROM busybox\n", "context": SimpleUploadedFile("c.tar", buf.getvalue())},
    )
    assert response.status_code == 400
    assert b"refused the context archive" in response.content
    assert not (tmp_path / "escaped.txt").exists()
    assert not Build.objects.exists() and _builds(data_dir) == []


def test_it_refuses_an_archive_it_cannot_read(client, data_dir):
    response = client.post(
        "/build/",
        {"dockerfile": "FROM busybox\n", "context": SimpleUploadedFile("c.tar", b"not a tar")},
    )
    assert response.status_code == 400
    assert b"cannot read the context archive" in response.content


def test_it_refuses_a_build_from_a_viewer(user, data_dir):
    set_role(user, "viewer")
    client = Client()
    client.force_login(user)
    assert client.post("/build/", {"dockerfile": "FROM busybox\n"}).status_code == 403
    assert not Build.objects.exists()


# -- the build page -----------------------------------------------------------------------


def _running_build() -> Build:
    build = Build.objects.create(
        dockerfile='FROM busybox\nRUN echo hi > /hi\nCMD ["sh"]\n',
        tags=["live:1"],
        status=Build.Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=3),
        output=["Step 1/3 : FROM busybox", " ---> 0123456789ab", "Step 2/3 : RUN echo hi > /hi"],
    )
    BuildStep.objects.create(
        build=build, number=1, instruction="FROM busybox", image_id="sha256:" + "01" * 32
    )
    BuildStep.objects.create(build=build, number=2, instruction="RUN echo hi > /hi")
    return build


def test_it_follows_a_running_build(client, db):
    build = _running_build()
    html = client.get(f"/builds/{build.pk}/").content.decode()
    assert 'live:resync, every 500ms"' in html
    assert f'hx-get="/builds/{build.pk}/"' in html
    assert "Step 2/3 : RUN echo hi &gt; /hi" in html
    assert "running…" in html and "no layer" in html  # FROM adds none
    fragment = client.get(f"/builds/{build.pk}/", headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert body.lstrip().startswith('<section id="build-progress"')
    assert "<html" not in body and 'live:resync, every 500ms"' in body


def test_it_shows_a_finished_build_without_polling_and_links_its_image(client, db):
    build = _running_build()
    image_id = "sha256:" + "ab" * 32
    BuildStep.objects.filter(build=build, number=2).update(
        image_id="sha256:" + "cd" * 32, layer_size=1234
    )
    BuildStep.objects.create(
        build=build, number=3, instruction='CMD ["sh"]', image_id=image_id, cached=True
    )
    Build.objects.filter(pk=build.pk).update(
        status=Build.Status.DONE, image_id=image_id, finished_at=timezone.now()
    )
    fragment = client.get(f"/builds/{build.pk}/", headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert "hx-trigger" not in body and "hx-get" not in body
    assert f'href="/images/{"ab" * 32}/"' in body
    assert "1.23kB" in body and "cache" in body


def test_it_shows_a_failed_build_with_the_dockerfile_line(client, db):
    build = _running_build()
    Build.objects.filter(pk=build.pk).update(
        status=Build.Status.FAILED,
        error="The command '/bin/sh -c echo hi > /hi' returned a non-zero code: 1",
        error_line=2,
        finished_at=timezone.now(),
    )
    html = client.get(f"/builds/{build.pk}/").content.decode()
    assert "hx-trigger" not in html.split('id="build-progress"')[1].split(">")[0]
    assert "returned a non-zero code: 1" in html
    assert "Dockerfile line 2:" in html and "<code>RUN echo hi &gt; /hi</code>" in html


# -- run_build, in this process, on a real store -------------------------------------------


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="builds run containers: needs root")


@pytest.fixture
def store(settings, tmp_path, data_dir, registry):
    settings.DOCKWEB_ROOT = tmp_path / "store"
    im.push_image(registry.host, "pagebuild/busybox", "1", im.busybox_base())
    services.pull_image(f"{registry.host}/pagebuild/busybox:1")
    return services.get_store()


@pytest.fixture
def queued(monkeypatch):
    """start_build without a broker: the test runs the build itself."""
    monkeypatch.setattr(jobs, "enqueue", lambda row: None)


def _start(registry, body: str, **kw) -> Build:
    return services.start_build(f"FROM {registry.host}/pagebuild/busybox:1\n" + body, **kw)


@needs_root
@pytest.mark.django_db(transaction=True)  # the progress writer is a thread with its own connection
def test_it_runs_a_build_with_step_records_and_the_image(store, registry, queued):
    build = _start(
        registry,
        'ARG WHO\nRUN echo "hi $WHO" > /hi.txt && head -c 5000 /dev/zero > /zeros\n'
        "ENV A=b\nCOPY hello.txt /app/\n",
        files=[SimpleUploadedFile("hello.txt", b"hello\n")],
        tags=["pagebuilt:1"],
        build_args={"WHO": "there"},
    )
    services.run_build(build.pk)
    build.refresh_from_db()
    assert build.status == "done", build.error
    assert build.image_id.startswith("sha256:")
    assert Image.objects.filter(image_id=build.image_id).exists()  # its page exists
    assert store.lookup("pagebuilt:1").id == build.image_id
    assert build.output[0] == f"Step 1/5 : FROM {registry.host}/pagebuild/busybox:1"
    assert "Successfully tagged pagebuilt:1" in build.output
    steps = list(build.steps.all())
    assert [s.number for s in steps] == [1, 2, 3, 4, 5]
    assert [s.instruction.split()[0] for s in steps] == ["FROM", "ARG", "RUN", "ENV", "COPY"]
    assert [s.layer_size is None for s in steps] == [True, True, False, True, False]
    assert steps[2].layer_size >= 5000
    assert steps[-1].image_id == build.image_id
    history = [h for h in store.get_image(build.image_id).config["history"]]
    assert not history[-1].get("empty_layer")
    assert not os.path.exists(os.path.dirname(build.context_dir))  # context removed

    again = _start(
        registry,
        'ARG WHO\nRUN echo "hi $WHO" > /hi.txt && head -c 5000 /dev/zero > /zeros\n'
        "ENV A=b\nCOPY hello.txt /app/\n",
        files=[SimpleUploadedFile("hello.txt", b"hello\n")],
        build_args={"WHO": "there"},
    )
    services.run_build(again.pk)
    again.refresh_from_db()
    assert again.status == "done" and again.image_id == build.image_id
    assert [s.cached for s in again.steps.all()] == [False, True, True, True, True]
    assert " ---> Using cache" in again.output

    services.run_build(again.pk)  # a duplicate delivery does nothing
    assert Build.objects.get(pk=again.pk).finished_at == again.finished_at


@needs_root
@pytest.mark.django_db(transaction=True)
def test_it_records_a_failed_step_with_dockers_message_and_line(store, registry, queued):
    build = _start(registry, 'ENV A=b\n\nRUN echo partial && exit 3\nCMD ["sh"]\n')
    services.run_build(build.pk)
    build.refresh_from_db()
    assert build.status == "failed"
    assert (
        build.error == "The command '/bin/sh -c echo partial && exit 3' returned a non-zero code: 3"
    )
    assert build.error_line == 4 and build.error_source == "RUN echo partial && exit 3"
    assert "partial" in build.output
    steps = list(build.steps.all())
    assert [s.number for s in steps] == [1, 2, 3]
    assert steps[1].image_id and steps[1].layer_size is None  # ENV: done, no layer
    assert not steps[2].image_id  # the failed RUN made no image


@needs_root
@pytest.mark.django_db(transaction=True)
def test_it_runs_a_multi_stage_build_and_shows_each_stage(client, store, registry, queued):
    base = f"{registry.host}/pagebuild/busybox:1"
    build = _start(
        registry, f"RUN echo a > /a\nFROM {base} AS Final\nCOPY --from=0 /a /a\nCMD cat /a\n"
    )
    services.run_build(build.pk)
    build.refresh_from_db()
    assert build.status == "done", build.error
    assert store.lookup(build.image_id).id == build.image_id
    html = client.get(f"/builds/{build.pk}/").content.decode()
    assert "2 stages" in html
    heads = html.count('<tr class="stage-head">')
    assert heads == 2
    first, second = html.split('<tr class="stage-head">')[1:3]
    assert first.split("</tr>")[0].count("Stage 0") == 1 and "steps 1–2" in first
    assert "Stage 1" in second and '<span class="mono">final</span>' in second
    assert "steps 3–5" in second
    assert "COPY --from=0 /a /a" in second
