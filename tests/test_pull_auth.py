"""`dockweb pull` from registries that require credentials: htpasswd (basic) and token auth."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from dockweb.runtime.registry import RegistryClient
from tests.support import images as im
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", params=["htpasswd", "token"])
def private_registry(request, tmp_path_factory):
    server = RegistryServer(tmp_path_factory.mktemp(f"reg-{request.param}"), auth=request.param)
    server.start()
    image = im.busybox_base()
    client = RegistryClient(credentials={server.host: (server.username, server.password)})
    for blob, digest in [(la.read_blob(), la.digest) for la in image.layers] + [
        (image.config_bytes, image.image_id)
    ]:
        client.push_blob(server.host, "private/app", blob, digest, len(blob))
    client.put_manifest(
        server.host, "private/app", "1", image.manifest_bytes, image.manifest_media_type
    )
    yield server, image
    server.stop()


def _dockweb(tmp_path, *args, docker_config=None):
    env = dict(
        os.environ,
        DOCKWEB_ROOT=str(tmp_path / "store"),
        DOCKWEB_DATA=str(tmp_path / "data"),
        DOCKER_CONFIG=str(docker_config or tmp_path / "no-docker-config"),
    )
    return subprocess.run(
        [sys.executable, "-m", "dockweb.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_pulls_with_credentials_from_a_docker_config(private_registry, tmp_path):
    server, image = private_registry
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    auth = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {server.host: {"auth": auth}}}))
    proc = _dockweb(tmp_path, "pull", f"{server.host}/private/app:1", docker_config=config_dir)
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
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    auth = base64.b64encode(f"{server.username}:wrong".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {server.host: {"auth": auth}}}))
    proc = _dockweb(tmp_path, "pull", f"{server.host}/private/app:1", docker_config=config_dir)
    assert proc.returncode == 1
    assert "unauthorized" in proc.stderr or "denied" in proc.stderr, proc.stderr
