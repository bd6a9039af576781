"""Debian's docker-compose 1.29 against ``dockweb system service``: a two-service project
(``network_mode: host``: a busybox httpd and a client that fetches its page) is built, comes
up, lists, logs, stops and goes down, with the output compose prints against dockerd.

The calls compose makes for this project are listed in docs/engine-api/build.md."""

from __future__ import annotations

import re

import pytest

from tests.support.registry import free_port

PROJECT = "apic"


@pytest.fixture(scope="module")
def base(engine_api, registry):
    """The test image, pulled into the service's store."""
    return engine_api.pulled_busybox(registry, "apicompose/busybox")


@pytest.fixture(scope="module")
def project(base, tmp_path_factory):
    port = free_port()
    root = tmp_path_factory.mktemp("compose")
    (root / "app").mkdir()
    (root / "app" / "Dockerfile").write_text(
        f"FROM {base}\nRUN mkdir -p /www && echo built-page > /www/index.html\n"
    )
    web = f"trap 'exit 0' TERM; /bin/busybox httpd -f -p 127.0.0.1:{port} -h /www & wait"
    client = f"until wget -q -O - http://127.0.0.1:{port}/index.html; do sleep 0.1; done"
    (root / "docker-compose.yml").write_text(
        f"""version: "3.7"
services:
  web:
    build: ./app
    image: apic-web:1
    network_mode: host
    command: ["sh", "-c", "{web}"]
  client:
    image: {base}
    network_mode: host
    depends_on: [web]
    command: ["sh", "-c", "{client}"]
"""
    )
    return root


def _env(engine_api, **extra):
    """The client's environment with Debian's docker CLI (/usr/bin) first on PATH: compose
    1.29 builds with the ``docker`` it finds there unless COMPOSE_DOCKER_CLI_BUILD=0."""
    env = engine_api.client_env(**extra)
    env["PATH"] = "/usr/bin:" + env.get("PATH", "")
    return env


def _compose(engine_api, project, *args, check=True, **env):
    proc = engine_api.compose(project, "-p", PROJECT, *args, env=_env(engine_api, **env))
    if check:
        assert proc.returncode == 0, f"docker-compose {' '.join(args)}:\n{proc.stderr}"
    return proc


def _lines(text: str) -> list[str]:
    return [line.rstrip("\r") for line in text.splitlines()]


@pytest.mark.parametrize(
    "builder",
    [
        {},  # compose runs Debian's docker CLI (classic builder)
        {"COMPOSE_DOCKER_CLI_BUILD": "0"},  # compose's own docker-py build
    ],
    ids=["docker-cli", "docker-py"],
)
def test_compose_build_builds_the_service_through_the_api(engine_api, project, base, builder):
    proc = _compose(engine_api, project, "build", "--no-cache", **builder)
    assert _lines(proc.stderr)[:2] == ["client uses an image, skipping", "Building web"]
    out = _lines(proc.stdout)
    assert f"Step 1/2 : FROM {base}" in out
    assert "Step 2/2 : RUN mkdir -p /www && echo built-page > /www/index.html" in out
    assert any(re.fullmatch(r" ---> Running in [0-9a-f]{12}", line) for line in out)
    assert any(re.fullmatch(r"Successfully built [0-9a-f]{12}", line) for line in out)
    assert out[-1] == "Successfully tagged apic-web:1"
    images = engine_api.dockweb("images", "--format", "{{.Repository}}:{{.Tag}}", check=True)
    assert "apic-web:1" in images.stdout.split()


def test_compose_up_ps_logs_stop_down(engine_api, project):
    _compose(engine_api, project, "build")  # the image up runs (the test above, alone)
    proc = _compose(engine_api, project, "up", "-d")
    assert set(_lines(proc.stderr)) >= {
        f"Creating {PROJECT}_web_1 ... done",
        f"Creating {PROJECT}_client_1 ... done",
    }
    # the client ends once it has fetched the web service's page
    assert engine_api.dockweb("wait", f"{PROJECT}_client_1", check=True).stdout == "0\n"

    ps = _lines(_compose(engine_api, project, "ps").stdout)
    # as compose prints it against dockerd for this project
    assert ps == [
        "    Name                   Command               State    Ports",
        "---------------------------------------------------------------",
        "apic_client_1   sh -c until wget -q -O - h ...   Exit 0        ",
        "apic_web_1      sh -c trap 'exit 0' TERM;  ...   Up            ",
    ]

    logs = _lines(_compose(engine_api, project, "logs", "--no-color", "client").stdout)
    assert logs == [f"Attaching to {PROJECT}_client_1", "client_1  | built-page"]

    proc = _compose(engine_api, project, "stop")
    assert f"Stopping {PROJECT}_web_1 ... done" in _lines(proc.stderr)
    ps = _lines(_compose(engine_api, project, "ps").stdout)
    assert ps[3] == "apic_web_1      sh -c trap 'exit 0' TERM;  ...   Exit 0        "

    proc = _compose(engine_api, project, "down")
    assert set(_lines(proc.stderr)) >= {
        f"Removing {PROJECT}_web_1    ... done",
        f"Removing {PROJECT}_client_1 ... done",
    }
    assert _lines(_compose(engine_api, project, "ps").stdout) == [
        "Name   Command   State   Ports",
        "------------------------------",
    ]
    left = engine_api.dockweb("ps", "-a", "--format", "{{.Names}}", check=True).stdout
    assert PROJECT not in left
