"""The Engine API server itself: version negotiation, dockerd's answers to unknown paths and
versions, the socket's mode, the idle timeout, the audit of the peer's unix user."""

from __future__ import annotations

import json
import os
import stat
import time

from tests.support.engineapi import EngineApi, request


def test_docker_cli_negotiates_1_41_and_names_dockweb(engine_api):
    out = engine_api.docker(
        "version", "--format", "{{.Server.APIVersion}} {{.Server.Platform.Name}}", check=True
    ).stdout
    assert out.split()[0] == "1.41"
    assert out.split()[1] == "dockweb"
    out = engine_api.docker("version", "--format", "{{.Client.APIVersion}}", check=True).stdout
    assert out.strip() == "1.41"


def test_ping_headers_as_dockerd(engine_api):
    for method in ("GET", "HEAD"):
        status, headers, body = request(engine_api, method, "/_ping")
        assert status == 200
        assert headers["api-version"] == "1.41"
        assert headers["ostype"] == "linux"
        assert headers["docker-experimental"] == "false"
        assert headers["cache-control"] == "no-cache, no-store, must-revalidate"
        assert headers["pragma"] == "no-cache"
        assert body == (b"OK" if method == "GET" else b"")


def test_paths_with_and_without_version(engine_api):
    for path in ("/version", "/v1.41/version", "/v1.24/version", "/v1.30/version"):
        status, _, body = request(engine_api, "GET", path)
        assert status == 200, path
        data = json.loads(body)
        assert data["ApiVersion"] == "1.41" and data["MinAPIVersion"] == "1.24"


def test_versions_out_of_range_get_dockerds_messages(engine_api):
    status, headers, body = request(engine_api, "GET", "/v1.42/version")
    assert status == 400
    assert json.loads(body) == {
        "message": "client version 1.42 is too new. Maximum supported API version is 1.41"
    }
    assert body.endswith(b"}\n")
    status, _, body = request(engine_api, "GET", "/v1.23/version")
    assert status == 400
    assert json.loads(body) == {
        "message": (
            "client version 1.23 is too old. Minimum supported API version is 1.24, please "
            "upgrade your client to a newer version"
        )
    }


def test_unknown_path_and_method_page_not_found(engine_api):
    for method, path in (
        ("GET", "/nope"),
        ("GET", "/v1.41/nope"),
        ("DELETE", "/_ping"),
        ("GET", "/v1.41/containers"),
    ):
        status, headers, body = request(engine_api, method, path)
        assert status == 404, (method, path)
        assert json.loads(body) == {"message": "page not found"}
        assert "api-version" not in headers


def test_keep_alive_serves_several_requests_on_one_connection(engine_api):
    from tests.support.engineapi import _UnixConnection

    conn = _UnixConnection(str(engine_api.socket))
    try:
        for _ in range(3):
            conn.request("GET", "/_ping")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b"OK"
    finally:
        conn.close()


def test_socket_mode_and_idle_timeout(tmp_path):
    api = EngineApi(tmp_path, DOCKWEB_API_SOCKET_MODE="600")
    api.start("--time", "1")
    try:
        assert stat.S_IMODE(os.stat(api.socket).st_mode) == 0o600
        assert api.docker("version", "--format", "{{.Server.Version}}", check=True).stdout
        deadline = time.monotonic() + 20
        while api.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.proc.returncode == 0, api.log.read_text()
        assert not api.socket.exists()  # removed on the way out
    finally:
        api.stop()


def test_second_server_on_a_live_socket_is_refused(engine_api):
    proc = engine_api.dockweb("system", "service", engine_api.host, timeout=60)
    assert proc.returncode == 1
    assert "another server listens on" in proc.stderr
    assert engine_api.answers()  # the first one is untouched


def test_a_stale_socket_file_is_replaced(tmp_path):
    import socket as so

    path = tmp_path / "docker.sock"
    s = so.socket(so.AF_UNIX)
    s.bind(str(path))
    s.close()  # a file nobody listens on, as a killed server leaves
    api = EngineApi(tmp_path).start()
    try:
        assert api.answers()
    finally:
        api.stop()
