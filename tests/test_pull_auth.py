"""`dockweb pull` from registries that require credentials: htpasswd (basic) and token auth."""

from __future__ import annotations

import base64
import json
import os

import pytest

from tests.support.cli import cli_env, run_dockweb
from tests.support.registry import serve_private_app

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")


@pytest.fixture(scope="module", params=["htpasswd", "token"])
def private_registry(request, tmp_path_factory):
    yield from serve_private_app(tmp_path_factory.mktemp(f"reg-{request.param}"), request.param)


def _dockweb(tmp_path, *args, docker_config=None, insecure=()):
    docker_config = str(docker_config or tmp_path / "no-docker-config")
    env = cli_env(
        tmp_path, DOCKER_CONFIG=docker_config, DOCKWEB_INSECURE_REGISTRIES=",".join(insecure)
    )
    return run_dockweb(env, *args)


def _docker_config(tmp_path, host, username, password):
    """A Docker config directory whose config.json holds ``username:password`` for ``host``."""
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return config_dir


def test_it_pulls_with_credentials_from_a_docker_config(private_registry, tmp_path):
    server, image = private_registry
    config_dir = _docker_config(tmp_path, server.host, server.username, server.password)
    proc = _dockweb(
        tmp_path,
        "pull",
        f"{server.host}/private/app:1",
        docker_config=config_dir,
        insecure=server.insecure_registries,  # the token server: plain HTTP, another port
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.splitlines()[-2]
        == f"Status: Downloaded newer image for {server.host}/private/app:1"
    )
    ids = _dockweb(tmp_path, "images", "-q", "--no-trunc").stdout.split()
    assert ids == [image.image_id]


def test_it_refuses_to_pull_without_credentials(private_registry, tmp_path):
    server, _ = private_registry
    proc = _dockweb(tmp_path, "pull", f"{server.host}/private/app:1")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error response from daemon: ")
    assert any(w in proc.stderr for w in ("unauthorized", "pull access denied")), proc.stderr
    assert _dockweb(tmp_path, "images", "-q").stdout == ""


def test_it_refuses_wrong_credentials(private_registry, tmp_path):
    server, _ = private_registry
    config_dir = _docker_config(tmp_path, server.host, server.username, "wrong")
    proc = _dockweb(
        tmp_path,
        "pull",
        f"{server.host}/private/app:1",
        docker_config=config_dir,
        insecure=server.insecure_registries,
    )
    assert proc.returncode == 1
    assert "unauthorized" in proc.stderr or "denied" in proc.stderr, proc.stderr
