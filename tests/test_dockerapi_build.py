"""``POST /build``, ``/build/prune`` and ``/commit`` through the Engine API, driven by Debian's
docker CLI (20.10, classic builder) and docker-py: the output docker prints against dockerd,
the images made, the Build row the Build page lists, the audit."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import tarfile

import pytest

from tests.support.engineapi import request

HEX12 = r"[0-9a-f]{12}"


@pytest.fixture(scope="module")
def base(engine_api, registry):
    """The test image, pulled into the service's store."""
    return engine_api.pulled_busybox(registry, "apibuild/busybox")


def _docker(engine_api, *args, **kw):
    """Debian's docker CLI with the classic builder; output decoded with its \r kept."""
    proc = engine_api.docker(
        *args, env=engine_api.client_env(DOCKER_BUILDKIT="0"), text=False, **kw
    )
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


def _db(engine_api, sql, *params):
    conn = sqlite3.connect(engine_api.base / "data" / "db.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def _context(tmp_path, base):
    (tmp_path / "hello.txt").write_text("hello\n")
    (tmp_path / "ignored.txt").write_text("secret\n")
    (tmp_path / ".dockerignore").write_text("ignored.txt\n")
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base}\n"
        "ARG WHO=nobody\n"
        "ENV GREETING=hi\n"
        'RUN echo "$GREETING $WHO" > /greet.txt && echo to-stdout && echo to-stderr >&2\n'
        "COPY . /app/\n"
    )
    return tmp_path


def test_docker_build_prints_the_classic_builders_output_and_tags_twice(engine_api, base, tmp_path):
    ctx = _context(tmp_path, base)
    proc = _docker(
        engine_api, "build", "-t", "apib:1", "-t", "apib:2", "--build-arg", "WHO=me", str(ctx)
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")[:-1]  # the progress line ends with \r
    assert re.fullmatch(r"Sending build context to Docker daemon  \S+kB\r*", lines[0])
    assert lines[1] == f"Step 1/5 : FROM {base}"
    assert re.fullmatch(f" ---> {HEX12}", lines[2])
    assert lines[3] == "Step 2/5 : ARG WHO=nobody"
    assert re.fullmatch(f" ---> Running in {HEX12}", lines[4])
    assert lines[5] == f"Removing intermediate container {lines[4][-12:]}"
    assert lines[7] == "Step 3/5 : ENV GREETING=hi"
    assert lines[11] == (
        'Step 4/5 : RUN echo "$GREETING $WHO" > /greet.txt && echo to-stdout && echo to-stderr >&2'
    )
    # stdout as it is; stderr between the escapes dockerd's StderrFormatter writes (the
    # two streams' order is the container's)
    run_out = lines[13:15]
    assert "to-stdout" in run_out or "\x1b[0mto-stdout" in run_out
    assert "\x1b[91mto-stderr" in run_out
    assert lines[15].endswith(f"Removing intermediate container {lines[12][-12:]}")
    assert lines[17] == "Step 5/5 : COPY . /app/"
    built = lines[-3]
    assert re.fullmatch(f"Successfully built {HEX12}", built)
    assert lines[-2:] == ["Successfully tagged apib:1", "Successfully tagged apib:2"]
    image_id = built.split()[-1]

    out = engine_api.dockweb(
        "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", check=True
    ).stdout
    assert f"apib:1 {image_id}" in out and f"apib:2 {image_id}" in out
    run = engine_api.dockweb(
        "run", "--rm", "apib:1", "sh", "-c", "cat /greet.txt /app/hello.txt; ls -A /app", check=True
    )
    assert run.stdout.splitlines() == [
        "hi me",
        "hello",
        ".dockerignore",
        "Dockerfile",
        "hello.txt",
    ]

    # the Build page lists it, done, with its steps and output
    rows = _db(engine_api, "SELECT * FROM images_build WHERE tags LIKE '%apib:1%'")
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "done" and row["image_id"].startswith("sha256:" + image_id)
    assert json.loads(row["tags"]) == ["apib:1", "apib:2"]
    assert json.loads(row["build_args"]) == {"WHO": "me"}
    assert "Successfully tagged apib:2" in json.loads(row["output"])
    steps = _db(engine_api, "SELECT * FROM images_buildstep WHERE build_id = ?", row["id"])
    assert len(steps) == 5
    # audited as the peer's unix user
    audits = _db(
        engine_api,
        "SELECT * FROM access_auditevent WHERE action = 'image.build' ORDER BY id DESC LIMIT 1",
    )
    assert audits and audits[0]["actor"].startswith("api:")

    # the cache: the same build again uses it for every step
    again = _docker(engine_api, "build", "-t", "apib:1", "--build-arg", "WHO=me", str(ctx))
    assert again.stdout.count(" ---> Using cache") == 4
    assert f"Successfully built {image_id}" in again.stdout


def test_docker_build_with_another_dockerfile_quiet_and_no_cache(engine_api, base, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "Other.Dockerfile").write_text(f"FROM {base}\nRUN echo other > /o\n")
    proc = _docker(
        engine_api,
        "build",
        "-q",
        "--no-cache",
        "-f",
        str(tmp_path / "sub" / "Other.Dockerfile"),
        "-t",
        "apib-other:1",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", proc.stdout)
    run = engine_api.dockweb("run", "--rm", "apib-other:1", "cat", "/o", check=True)
    assert run.stdout == "other\n"
    # a Dockerfile outside the context: the CLI sends it under a name of its own
    (tmp_path / "ctx").mkdir()
    proc = _docker(
        engine_api, "build", "-f", str(tmp_path / "sub" / "Other.Dockerfile"), str(tmp_path / "ctx")
    )
    assert proc.returncode == 0, proc.stderr
    assert "Step 2/2 : RUN echo other > /o" in proc.stdout


def test_a_failing_run_prints_dockerds_error_and_exits_with_its_code(engine_api, base, tmp_path):
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN echo before && exit 3\n")
    proc = _docker(engine_api, "build", "-t", "apib-fail:1", str(tmp_path))
    assert proc.returncode == 3
    assert proc.stdout.splitlines()[-2:] == ["before", ""] or proc.stdout.splitlines()[-1] == (
        "before"
    )
    assert proc.stderr == (
        "The command '/bin/sh -c echo before && exit 3' returned a non-zero code: 3\n"
    )
    rows = _db(engine_api, "SELECT * FROM images_build WHERE tags LIKE '%apib-fail:1%'")
    assert rows[0]["status"] == "failed" and rows[0]["error_line"] == 2
    assert "returned a non-zero code: 3" in rows[0]["error"]


def test_errors_before_the_stream_are_dockerds_statuses(engine_api, base, tmp_path):
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nFOO bar\n")
    proc = _docker(engine_api, "build", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error response from daemon: ")
    assert "parse error line 2: unknown instruction: FOO" in proc.stderr
    proc = _docker(engine_api, "build", "-f", "Nope", str(tmp_path))
    # the CLI itself finds no Nope, as against dockerd
    assert proc.returncode == 1 and "Nope" in proc.stderr

    def post(query, body=b""):
        status, _, data = request(engine_api, "POST", "/v1.41/build?" + query, body)
        return status, json.loads(data)

    tar = _tar({"Dockerfile": f"FROM {base} AS one\nRUN true\n".encode()})
    assert post("dockerfile=Nope", tar) == (
        500,
        {"message": "Cannot locate specified Dockerfile: Nope"},
    )
    assert post("", b"") == (500, {"message": "Cannot locate specified Dockerfile: Dockerfile"})
    assert post("target=nope", tar) == (
        400,
        {"message": "failed to reach build target nope in Dockerfile"},
    )
    status, body = post("buildargs=xx", tar)
    assert status == 400 and body["message"].startswith("error reading build args: ")
    assert post("version=3", tar) == (500, {"message": 'invalid version "3"'})
    assert post("t=Bad:Tag", tar) == (
        500,
        {"message": "invalid reference format: repository name must be lowercase"},
    )
    status, body = post("extrahosts=a:not-an-ip", tar)  # --add-host: checked as the CLI does
    assert status == 400 and "invalid IP address in add-host" in body["message"]
    # what dockweb cannot do is refused by name, never ignored
    for query, word in (
        ("version=2", "BuildKit"),
        ("memory=1000000", "memory"),
        ("networkmode=container:x", "container:x"),
        ("remote=https://example.invalid/x.git", "remote"),
    ):
        status, body = post(query, tar)
        assert status == 400 and word in body["message"], (query, body)
        assert body["message"].startswith("dockweb does not support "), body


def _tar(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_the_raw_stream_is_dockerds_message_for_message(engine_api, base):
    dockerfile = (
        f"FROM {base} AS one\nRUN echo out && echo err >&2\nFROM one\nLABEL x=y\n"
    ).encode()
    query = (
        "/v1.41/build?labels=%7B%22a%20b%22%3A%22c%20%24d%22%7D"
        "&buildargs=%7B%22UNUSED%22%3A%22x%22%7D"
    )
    status, headers, data = request(
        engine_api,
        "POST",
        query + "&nocache=1",
        _tar({"Dockerfile": dockerfile}),
        {"Content-Type": "application/x-tar"},
    )
    assert status == 200 and headers["content-type"] == "application/json"
    assert data.endswith(b"\r\n")
    messages = [json.loads(line) for line in data.split(b"\r\n") if line]
    texts = [m.get("stream") for m in messages]
    assert texts[:3] == [f"Step 1/5 : FROM {base} AS one", "\n", texts[2]]
    assert re.fullmatch(f" ---> {HEX12}\n", texts[2])
    assert {"stream": "out\n"} in messages
    assert {"stream": "\x1b[91merr\n\x1b[0m"} in messages
    auxes = [i for i, m in enumerate(messages) if "aux" in m]
    assert len(auxes) == 2  # one for each stage, as it ends
    assert messages[auxes[0] + 1] == {"stream": "Step 3/5 : FROM one"}
    # --label: a LABEL step of its own at the end, its value taken literally
    assert {"stream": "Step 5/5 : LABEL a b=c $d"} in messages
    final = messages[auxes[1]]["aux"]["ID"]
    assert messages[auxes[1] + 1 :] == [
        {"stream": "[Warning] One or more build-args [UNUSED] were not consumed\n"},
        {"stream": f"Successfully built {final[7:19]}\n"},
    ]
    assert b"\\u003e" in data  # " ---> " as Go's encoder writes it
    labels = json.loads(
        engine_api.dockweb(
            "image", "inspect", final, "--format", "{{json .Config.Labels}}", check=True
        ).stdout
    )
    assert labels == {"a b": "c $d", "x": "y"}

    # the context compressed as dockerd takes it (every step from the cache now)
    for mode in ("w:gz", "w:bz2", "w:xz"):
        status, _, data = request(engine_api, "POST", query, _tar({"Dockerfile": dockerfile}, mode))
        assert status == 200 and data.count(b" ---\\u003e Using cache") == 3, mode
        assert data.endswith(
            b'{"stream":"Successfully built ' + final[7:19].encode() + b'\\n"}\r\n'
        )

    # q: nothing but the image ID
    status, _, data = request(engine_api, "POST", query + "&q=1", _tar({"Dockerfile": dockerfile}))
    assert (status, data) == (200, b'{"stream":"' + final.encode() + b'\\n"}\r\n')
    # a failed RUN: its exit code in errorDetail
    status, _, data = request(
        engine_api,
        "POST",
        "/v1.41/build",
        _tar({"Dockerfile": f"FROM {base}\nRUN exit 7\n".encode()}),
    )
    last = json.loads(data.split(b"\r\n")[-2])
    message = "The command '/bin/sh -c exit 7' returned a non-zero code: 7"
    assert last == {"errorDetail": {"code": 7, "message": message}, "error": message}


def test_build_prune_reports_nothing_to_delete(engine_api):
    status, _, data = request(engine_api, "POST", "/v1.41/build/prune")
    assert status == 200 and json.loads(data) == {"CachesDeleted": None, "SpaceReclaimed": 0}
    proc = _docker(engine_api, "builder", "prune", "-f")
    assert proc.returncode == 0 and proc.stdout == "Total reclaimed space: 0B\n"


def test_docker_commit_of_a_container_made_with_dockweb_run(engine_api, base):
    engine_api.dockweb(
        "run", "--name", "apib-c1", base, "sh", "-c", "echo data > /data.txt", check=True
    )
    proc = _docker(
        engine_api,
        "commit",
        "-m",
        "msg",
        "-a",
        "me",
        "-c",
        "ENV X=1",
        "-c",
        'CMD ["cat", "/data.txt"]',
        "apib-c1",
        "apib-committed:1",
    )
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", proc.stdout)
    image_id = proc.stdout.strip()
    run = engine_api.dockweb("run", "--rm", "apib-committed:1", check=True)
    assert run.stdout == "data\n"
    out = engine_api.dockweb(
        "image",
        "inspect",
        "apib-committed:1",
        "--format",
        "{{.Id}} {{.Comment}} {{.Author}} {{json .Config.Cmd}}",
        check=True,
    ).stdout
    assert out == f'{image_id} msg me ["cat","/data.txt"]\n'
    # the dashboard's mirror has it at once
    assert _db(engine_api, "SELECT * FROM images_image WHERE image_id = ?", image_id)

    proc = _docker(engine_api, "commit", "apib-nope", "x:1")
    assert (proc.returncode, proc.stderr) == (
        1,
        "Error response from daemon: No such container: apib-nope\n",
    )
    proc = _docker(engine_api, "commit", "-c", "RUN x", "apib-c1")
    assert (proc.returncode, proc.stderr) == (
        1,
        "Error response from daemon: run is not a valid change command\n",
    )
    audits = _db(
        engine_api,
        "SELECT * FROM access_auditevent WHERE action = 'container.commit' ORDER BY id",
    )
    assert [a["target"] for a in audits][:3] == ["apib-c1", "apib-nope", "apib-c1"]


def test_docker_py_builds_with_tag_and_buildargs_and_commits(engine_api, base, tmp_path):
    client = engine_api.client()
    (tmp_path / "Dockerfile").write_text(f'FROM {base}\nARG V\nRUN echo "v=$V" > /v\n')
    logs = list(
        client.api.build(
            path=str(tmp_path), tag="apib-py:1", buildargs={"V": "42"}, rm=True, decode=True
        )
    )
    assert logs[0] == {"stream": "Step 1/3 : FROM " + base}
    image_id = next(m["aux"]["ID"] for m in logs if "aux" in m)
    assert logs[-2:] == [
        {"stream": f"Successfully built {image_id[7:19]}\n"},
        {"stream": "Successfully tagged apib-py:1\n"},
    ]
    run = engine_api.dockweb("run", "--rm", "apib-py:1", "cat", "/v", check=True)
    assert run.stdout == "v=42\n"

    engine_api.dockweb(
        "run", "--name", "apib-c2", base, "sh", "-c", "echo py > /py.txt", check=True
    )
    result = client.api.commit("apib-c2", repository="apib-pycommit", tag="2", message="m")
    assert result["Id"].startswith("sha256:")
    run = engine_api.dockweb("run", "--rm", "apib-pycommit:2", "cat", "/py.txt", check=True)
    assert run.stdout == "py\n"


def test_docker_py_images_build_returns_the_image_and_its_logs(engine_api, base, tmp_path):
    status, _, _ = request(engine_api, "GET", f"/v1.41/images/{base}/json")
    if status == 404:
        pytest.skip("images.build reads the image back with GET /images/{id}/json (api-images)")
    client = engine_api.client()
    (tmp_path / "Dockerfile").write_text(f'FROM {base}\nARG V\nRUN echo "v=$V" > /v\n')
    image, logs = client.images.build(
        path=str(tmp_path), tag="apib-py:3", buildargs={"V": "43"}, rm=True
    )
    logs = list(logs)
    assert image.id.startswith("sha256:") and "apib-py:3" in image.tags
    assert {"aux": {"ID": image.id}} in logs
    assert logs[-1] == {"stream": "Successfully tagged apib-py:3\n"}

    from docker.errors import BuildError

    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN exit 5\n")
    with pytest.raises(BuildError) as info:
        client.images.build(path=str(tmp_path))
    assert str(info.value) == "The command '/bin/sh -c exit 5' returned a non-zero code: 5"


def test_args_before_from_are_steps_as_dockerds(engine_api, base):
    status, _, data = request(
        engine_api,
        "POST",
        "/v1.41/build",
        _tar({"Dockerfile": f"ARG B={base}\nFROM $B\n".encode()}),
    )
    assert status == 200
    messages = [json.loads(line) for line in data.split(b"\r\n") if line]
    image_id = messages[5]["aux"]["ID"]
    assert messages == [
        {"stream": f"Step 1/2 : ARG B={base}"},
        {"stream": "\n"},
        {"stream": "Step 2/2 : FROM $B"},
        {"stream": "\n"},
        {"stream": f" ---> {image_id[7:19]}\n"},
        {"aux": {"ID": image_id}},
        {"stream": f"Successfully built {image_id[7:19]}\n"},
    ]


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory):
    from tests.support.registry import serve_private_app

    yield from serve_private_app(tmp_path_factory.mktemp("apib-reg"), "htpasswd")


def test_a_missing_from_image_is_pulled_with_the_clients_registry_config(
    engine_api, private_registry, tmp_path
):
    """The docker CLI sends its credentials (X-Registry-Config); the service itself has
    none for this registry."""
    import base64

    server, image = private_registry
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(f"FROM {server.host}/private/app:1\nRUN true\n")

    def build(config: dict):
        config_dir = tmp_path / f"docker-config-{len(config)}"
        config_dir.mkdir()
        (config_dir / "config.json").write_text(json.dumps({"auths": config}))
        env = engine_api.client_env(DOCKER_BUILDKIT="0")
        env["DOCKER_CONFIG"] = str(config_dir)
        return engine_api.docker("build", str(tmp_path / "ctx"), env=env)

    proc = build({})
    assert proc.returncode == 1
    assert f"Step 1/2 : FROM {server.host}/private/app:1" in proc.stdout
    assert proc.stderr == "unauthorized: authentication required\n"
    assert "Successfully built" not in proc.stdout

    auth = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    proc = build({server.host: {"auth": auth}})
    assert proc.returncode == 0, proc.stderr
    assert f"Status: Downloaded newer image for {server.host}/private/app:1\n" in proc.stdout
    assert "Successfully built" in proc.stdout
    out = engine_api.dockweb("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert f"{server.host}/private/app:1 {image.image_id[7:19]}" in out


def test_a_client_that_goes_away_cancels_the_build_before_its_next_step(engine_api, base):
    import socket
    import time

    dockerfile = (
        f"FROM {base}\nRUN echo one && sleep 1\nRUN echo two\nRUN echo three\nRUN echo four\n"
    )
    body = _tar({"Dockerfile": dockerfile.encode()})
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(engine_api.socket))
        s.sendall(
            b"POST /v1.41/build?nocache=1&t=apib-cancel:1 HTTP/1.1\r\nHost: docker\r\n"
            b"Content-Type: application/x-tar\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        seen = b""
        while b'{"stream":"one\\n"}' not in seen:
            chunk = s.recv(65536)
            assert chunk, seen
            seen += chunk
    # the Build row ends failed, as dockerd's build stops: between two steps
    deadline = time.monotonic() + 60
    while True:
        rows = _db(engine_api, "SELECT * FROM images_build WHERE tags LIKE '%apib-cancel:1%'")
        if rows and rows[0]["status"] != "running":
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
    assert rows[0]["status"] == "failed" and rows[0]["error"] == "Build cancelled"
    output = json.loads(rows[0]["output"])
    assert output[-1] == "Build cancelled"
    assert not any(line.startswith("Step 5/5") for line in output)


def test_docker_builds_multi_stage_with_target_iidfile_network_and_cache_from(
    engine_api, base, tmp_path
):
    (tmp_path / "Dockerfile").write_text(
        f"ARG BASE={base}\nFROM $BASE AS builder\nRUN echo built > /b && ls /sys/class/net > /n\n"
        f"FROM {base}\nCOPY --from=builder /b /from-builder\nCOPY --from=0 /n /nets\n"
    )
    iid = tmp_path / "iid"
    proc = _docker(
        engine_api, "build", "--network", "none", "--iidfile", str(iid), "-t", "apib-ms:1",
        str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Step 1/6 : ARG BASE=" in proc.stdout
    assert "Step 6/6 : COPY --from=0 /n /nets" in proc.stdout
    image_id = iid.read_text()
    assert image_id.startswith("sha256:")
    assert proc.stdout.endswith("Successfully tagged apib-ms:1\n")
    run = engine_api.dockweb("run", "--rm", "apib-ms:1", "cat", "/from-builder", "/nets")
    assert run.stdout == "built\nlo\n"
    # --target: the builder stage alone, from the cache
    proc = _docker(engine_api, "build", "--target", "builder", "-q", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    target_id = proc.stdout.strip()
    assert target_id != image_id
    history = engine_api.dockweb("history", "-q", "--no-trunc", target_id).stdout
    assert "COPY" not in history
    # --cache-from an image: the local cache counts only where it leads to that image: the
    # builder stage's RUN is no ancestor of apib-ms:1 and runs again; the COPYs of the
    # last stage (same files) are its ancestors and come from the cache
    # (the same network as the first build: its RUN lists the interfaces)
    proc = _docker(
        engine_api, "build", "--network", "none", "--cache-from", "apib-ms:1", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(" ---> Running in ") == 1
    assert proc.stdout.count(" ---> Using cache") == 2
    assert proc.stdout.endswith(f"Successfully built {image_id[7:19]}\n")
    # a network mode dockweb has no such thing as: refused by the daemon, by name
    proc = _docker(engine_api, "build", "--network", "container:x", str(tmp_path))
    assert proc.returncode != 0 and "container:x" in proc.stderr
