"""RegistryClient against a real docker-registry (no auth, htpasswd, token auth)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dockweb.runtime.auth import TokenCache
from dockweb.runtime.errors import AuthError, DigestMismatch, ManifestUnknown, RegistryError
from dockweb.runtime.manifest import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    manifest_json,
    parse_manifest,
)
from dockweb.runtime.registry import BlobUnknown, RegistryClient
from tests.support.registry import RegistryServer, free_port


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(client: RegistryClient, host: str, repo: str, tag: str, seed: str = "a"):
    """Push a config, one layer and a manifest; return (manifest bytes, digest, config, layer)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = (seed * 3000).encode()
    client.push_blob(host, repo, config, sha(config), len(config))
    client.push_blob(host, repo, layer, sha(layer), len(layer))
    data = manifest_json(
        Descriptor(OCI_CONFIG, sha(config), len(config)),
        [Descriptor(OCI_LAYER_GZIP, sha(layer), len(layer))],
    )
    digest = client.put_manifest(host, repo, tag, data, OCI_MANIFEST)
    return data, digest, config, layer


@pytest.fixture(scope="module")
def htpasswd_registry(tmp_path_factory):
    with RegistryServer(tmp_path_factory.mktemp("htpasswd"), "htpasswd") as server:
        yield server


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    with RegistryServer(tmp_path_factory.mktemp("token"), "token") as server:
        yield server


@pytest.fixture
def no_config(tmp_path):
    return str(tmp_path / "absent-config.json")


@pytest.fixture(params=[None, "htpasswd", "token"])
def any_registry(request, registry, htpasswd_registry, token_registry):
    return {None: registry, "htpasswd": htpasswd_registry, "token": token_registry}[request.param]


def client_for(server: RegistryServer, no_config: str, **kw) -> RegistryClient:
    creds = {server.host: (server.username, server.password)} if server.username else None
    kw.setdefault("insecure_registries", server.insecure_registries)
    return RegistryClient(credentials=creds, auth_config_path=no_config, **kw)


# --- push and pull --------------------------------------------------------------------


def test_it_pushes_and_reads_back_a_manifest_and_its_blobs(any_registry, no_config):
    client = client_for(any_registry, no_config)
    data, digest, config, layer = push_image(client, any_registry.host, "roundtrip/img", "v1")

    got, media_type, got_digest = client.get_manifest(any_registry.host, "roundtrip/img", "v1")
    assert (got, media_type, got_digest) == (data, OCI_MANIFEST, digest)
    assert digest == sha(data)
    by_digest = client.get_manifest(any_registry.host, "roundtrip/img", digest)
    assert by_digest == (data, OCI_MANIFEST, digest)
    manifest = parse_manifest(got, media_type)
    assert isinstance(manifest, Manifest)
    assert client.fetch_blob(any_registry.host, "roundtrip/img", manifest.config.digest) == config
    with client.open_blob(any_registry.host, "roundtrip/img", sha(layer)) as stream:
        chunks = []
        while chunk := stream.read(1000):
            chunks.append(chunk)
    assert b"".join(chunks) == layer
    assert client.head_manifest(any_registry.host, "roundtrip/img", "v1") == (
        OCI_MANIFEST,
        digest,
        len(data),
    )
    assert client.list_tags(any_registry.host, "roundtrip/img") == ["v1"]


def test_it_pushes_a_large_blob_in_chunks_from_a_stream(registry, no_config, tmp_path):
    client = RegistryClient(auth_config_path=no_config)
    blob = os.urandom(300_000)
    path = tmp_path / "blob"
    path.write_bytes(blob)
    with open(path, "rb") as f:
        client.push_blob(registry.host, "chunked/img", f, sha(blob), len(blob), chunk_size=65536)
    assert client.fetch_blob(registry.host, "chunked/img", sha(blob), max_size=1 << 20) == blob


def test_it_reports_whether_a_blob_exists(registry, no_config):
    client = RegistryClient(auth_config_path=no_config)
    _, _, config, _ = push_image(client, registry.host, "exists/img", "v1", seed="e")
    assert client.blob_exists(registry.host, "exists/img", sha(config))
    assert not client.blob_exists(registry.host, "exists/img", sha(b"never pushed"))
    with pytest.raises(BlobUnknown):
        client.fetch_blob(registry.host, "exists/img", sha(b"never pushed"))


def test_it_mounts_a_blob_from_another_repository(token_registry, no_config):
    client = client_for(token_registry, no_config)
    _, _, config, _ = push_image(client, token_registry.host, "mount/src", "v1", seed="m")
    assert not client.blob_exists(token_registry.host, "mount/dst", sha(config))
    assert client.mount_blob(token_registry.host, "mount/dst", sha(config), "mount/src")
    assert client.blob_exists(token_registry.host, "mount/dst", sha(config))
    scopes = token_registry.token_server.last_query["scope"]
    assert scopes == ["repository:mount/dst:pull,push", "repository:mount/src:pull"]


def test_it_refuses_to_mount_a_blob_the_source_does_not_have(registry, no_config):
    client = RegistryClient(auth_config_path=no_config)
    assert not client.mount_blob(registry.host, "mount2/dst", sha(b"nowhere"), "mount2/src")


# --- digests --------------------------------------------------------------------------


def corrupt(path) -> None:
    """Flip the first byte, keeping the size, so only the digest can tell."""
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))


def test_it_detects_a_corrupted_blob(registry, no_config):
    client = RegistryClient(auth_config_path=no_config)
    _, _, config, _ = push_image(client, registry.host, "corrupt/blob", "v1", seed="c")
    corrupt(registry.blob_path(sha(config)))
    with pytest.raises(DigestMismatch, match=sha(config)):
        client.fetch_blob(registry.host, "corrupt/blob", sha(config))


def test_it_detects_a_corrupted_manifest_fetched_by_digest(registry, no_config):
    client = RegistryClient(auth_config_path=no_config)
    data, digest, _, _ = push_image(client, registry.host, "corrupt/manifest", "v1", seed="d")
    path = registry.blob_path(digest)
    # Change a hex digit inside a digest string: still valid JSON of the same length.
    text = path.read_bytes()
    pos = text.index(b'"sha256:') + 8
    swapped = b"0" if text[pos : pos + 1] != b"0" else b"1"
    path.write_bytes(text[:pos] + swapped + text[pos + 1 :])
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        client.get_manifest(registry.host, "corrupt/manifest", digest)


# --- errors ---------------------------------------------------------------------------


def test_it_says_which_manifest_was_not_found(any_registry, no_config):
    client = client_for(any_registry, no_config)
    push_image(client, any_registry.host, "unknown/img", "v1", seed="u")
    with pytest.raises(ManifestUnknown) as info:
        client.get_manifest(any_registry.host, "unknown/img", "bar")
    assert str(info.value) == (
        f"manifest for {any_registry.host}/unknown/img:bar not found: "
        "manifest unknown: manifest unknown"
    )
    assert info.value.status == 404 and info.value.code == "MANIFEST_UNKNOWN"


def test_it_says_when_a_head_finds_no_manifest(registry, no_config):
    client = RegistryClient(auth_config_path=no_config)
    with pytest.raises(ManifestUnknown, match="not found"):
        client.head_manifest(registry.host, "nothing/here", "latest")


def test_it_says_which_repository_was_not_found(registry, no_config):
    client = RegistryClient(auth_config_path=no_config)
    with pytest.raises(RegistryError) as info:
        client.list_tags(registry.host, "no/such-repo")
    assert str(info.value) == (
        f"repository {registry.host}/no/such-repo not found: "
        "name unknown: repository name not known to registry"
    )


def test_it_asks_for_credentials_on_an_htpasswd_registry(htpasswd_registry, no_config):
    client = RegistryClient(auth_config_path=no_config)
    with pytest.raises(AuthError) as info:
        client.get_manifest(htpasswd_registry.host, "private/img", "v1")
    assert str(info.value) == "unauthorized: authentication required"
    assert info.value.status == 401


def test_it_refuses_a_wrong_password_on_an_htpasswd_registry(htpasswd_registry, no_config):
    client = RegistryClient(
        credentials={htpasswd_registry.host: ("testuser", "wrong")}, auth_config_path=no_config
    )
    with pytest.raises(AuthError, match="^unauthorized: authentication required$"):
        client.list_tags(htpasswd_registry.host, "private/img")


def test_it_denies_anonymous_pulls_on_a_token_registry(token_registry, no_config):
    client = RegistryClient(auth_config_path=no_config)
    with pytest.raises(AuthError) as info:
        client.get_manifest(token_registry.host, "private/img", "v1")
    assert str(info.value) == (
        f"pull access denied for {token_registry.host}/private/img, repository does not exist "
        "or may require 'docker login': denied: requested access to the resource is denied"
    )


def test_it_reports_the_token_servers_refusal(token_registry, no_config):
    client = RegistryClient(
        credentials={token_registry.host: ("testuser", "wrong")},
        auth_config_path=no_config,
        insecure_registries=token_registry.insecure_registries,
    )
    with pytest.raises(AuthError, match="^unauthorized: incorrect username or password$"):
        client.get_manifest(token_registry.host, "private/img", "v1")


def test_it_names_the_host_when_the_connection_is_refused(no_config):
    port = free_port()
    client = RegistryClient(auth_config_path=no_config, retries=2, backoff=0.01)
    with pytest.raises(RegistryError) as info:
        client.get_manifest(f"127.0.0.1:{port}", "x/y", "latest")
    assert f"127.0.0.1:{port}: connect: connection refused" in str(info.value)
    assert str(info.value).startswith(f'Get "http://127.0.0.1:{port}/v2/"')


# --- tokens and credentials -----------------------------------------------------------


def test_it_caches_tokens_until_they_expire(token_registry, no_config):
    push_image(client_for(token_registry, no_config), token_registry.host, "cache/img", "v1")
    now = [time.time()]
    client = client_for(token_registry, no_config, token_cache=TokenCache(clock=lambda: now[0]))
    server = token_registry.token_server
    before = server.requests
    for _ in range(3):
        client.get_manifest(token_registry.host, "cache/img", "v1")
    assert server.requests == before + 1  # one pull-scope token for three fetches
    client.get_manifest(token_registry.host, "cache/img", "v1")
    assert server.requests == before + 1
    now[0] += server.expires_in + 1
    client.get_manifest(token_registry.host, "cache/img", "v1")
    assert server.requests == before + 2


def write_config(tmp_path, doc: dict) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_it_uses_credentials_from_config_json(token_registry, tmp_path):
    auth = base64.b64encode(b"testuser:" + token_registry.password.encode()).decode()
    # A key with a scheme matches the bare host, as docker/cli's file store does.
    path = write_config(tmp_path, {"auths": {f"http://{token_registry.host}": {"auth": auth}}})
    client = RegistryClient(
        auth_config_path=path, insecure_registries=token_registry.insecure_registries
    )
    push_image(client, token_registry.host, "config/img", "v1", seed="f")
    assert client.list_tags(token_registry.host, "config/img") == ["v1"]


def test_it_uses_username_and_password_fields_from_config_json(htpasswd_registry, tmp_path):
    entry = {"username": "testuser", "password": htpasswd_registry.password}
    path = write_config(tmp_path, {"auths": {htpasswd_registry.host: entry}})
    client = RegistryClient(auth_config_path=path)
    push_image(client, htpasswd_registry.host, "config/fields", "v1", seed="g")


def test_it_exchanges_an_identity_token_with_the_oauth_form(token_registry, tmp_path):
    entry = {"identitytoken": token_registry.identity_token}
    path = write_config(tmp_path, {"auths": {token_registry.host: entry}})
    client = RegistryClient(
        auth_config_path=path, insecure_registries=token_registry.insecure_registries
    )
    push_image(client, token_registry.host, "identity/img", "v1", seed="i")
    form = token_registry.token_server.last_form
    assert form["grant_type"] == ["refresh_token"]
    assert form["client_id"] == ["docker"]
    assert form["service"] == [token_registry.service]


def test_it_asks_a_credential_helper(token_registry, tmp_path, monkeypatch):
    helper = tmp_path / "bin" / "docker-credential-dwtest"
    helper.parent.mkdir()
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'echo "{{\\"ServerURL\\": \\"$server\\", \\"Username\\": \\"testuser\\", '
        f'\\"Secret\\": \\"{token_registry.password}\\"}}"\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:{os.environ['PATH']}")
    path = write_config(tmp_path, {"credHelpers": {token_registry.host: "dwtest"}})
    client = RegistryClient(
        auth_config_path=path, insecure_registries=token_registry.insecure_registries
    )
    push_image(client, token_registry.host, "helper/img", "v1", seed="h")


def test_it_ignores_a_credential_helper_that_is_not_installed(htpasswd_registry, tmp_path):
    auth = base64.b64encode(f"testuser:{htpasswd_registry.password}".encode()).decode()
    doc = {
        "credsStore": "not-installed-anywhere",
        "auths": {htpasswd_registry.host: {"auth": auth}},
    }
    client = RegistryClient(auth_config_path=write_config(tmp_path, doc))
    push_image(client, htpasswd_registry.host, "helper/absent", "v1", seed="j")


# --- redirects ------------------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    """Records each request's path and Authorization header on the server object."""

    def log_message(self, *args):
        pass

    def record(self):
        self.server.seen.append((self.path, self.headers.get("Authorization")))


def serve(handler, host="127.0.0.1"):
    httpd = ThreadingHTTPServer((host, 0), handler)
    httpd.seen = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_it_does_not_send_credentials_to_a_redirect_target_on_another_host(no_config):
    blob = b"blob bytes from storage"

    class Storage(Recorder):
        def do_GET(self):
            self.record()
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)

    storage = serve(Storage, "127.0.0.2")
    target = f"http://127.0.0.2:{storage.server_address[1]}/signed/blob?sig=1"

    class Registry(Recorder):
        def do_GET(self):
            self.record()
            if self.headers.get("Authorization") is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="fake"')
                self.send_header("Content-Length", "0")
            elif self.path.startswith("/v2/r/blobs/"):
                self.send_response(307)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
            else:
                self.send_response(200)
                self.send_header("Content-Length", "0")
            self.end_headers()

    reg = serve(Registry)
    host = f"127.0.0.1:{reg.server_address[1]}"
    try:
        client = RegistryClient(credentials={host: ("u", "p")}, auth_config_path=no_config)
        assert client.fetch_blob(host, "r", sha(blob)) == blob
    finally:
        reg.shutdown()
        storage.shutdown()
    assert [a for p, a in reg.seen if p.startswith("/v2/r/blobs/")] == ["Basic dTpw"]
    assert storage.seen == [("/signed/blob?sig=1", None)]


# --- retries --------------------------------------------------------------------------


class FaultProxy:
    """Forwards to the real registry, but answers the first ``faults`` requests whose path
    contains ``match`` with the given status (only the fault is fake)."""

    def __init__(self, upstream: RegistryServer, match: str, faults: list[tuple[int, dict]]):
        self.faults = list(faults)
        self.faulted = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if match in self.path and proxy.faults:
                    status, headers = proxy.faults.pop(0)
                    proxy.faulted += 1
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream.port)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = handle_any

        self.httpd = serve(Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()


def test_it_retries_server_errors_and_rate_limits(registry, no_config):
    client = RegistryClient(auth_config_path=no_config, backoff=0.01)
    data, digest, _, _ = push_image(client, registry.host, "retry/img", "v1", seed="r")
    proxy = FaultProxy(registry, "/manifests/", [(500, {}), (503, {}), (429, {"Retry-After": "1"})])
    try:
        started = time.monotonic()
        got = client.get_manifest(proxy.host, "retry/img", "v1")
        elapsed = time.monotonic() - started
    finally:
        proxy.close()
    assert got == (data, OCI_MANIFEST, digest)
    assert proxy.faulted == 3
    assert elapsed >= 1.0  # Retry-After was honoured


def test_it_gives_up_after_the_configured_retries(registry, no_config):
    client = RegistryClient(auth_config_path=no_config, retries=3, backoff=0.01)
    proxy = FaultProxy(registry, "/manifests/", [(500, {})] * 5)
    try:
        with pytest.raises(RegistryError) as info:
            client.get_manifest(proxy.host, "retry/img", "v1")
    finally:
        proxy.close()
    assert proxy.faulted == 3
    assert str(info.value) == "received unexpected HTTP status: 500 Internal Server Error"


def test_it_does_not_retry_a_blob_upload(registry, no_config):
    client = RegistryClient(auth_config_path=no_config, backoff=0.01)
    proxy = FaultProxy(registry, "/blobs/uploads/", [(500, {})] * 2)
    blob = b"not retried"
    try:
        with pytest.raises(RegistryError, match="500"):
            client.push_blob(proxy.host, "retry/upload", blob, sha(blob), len(blob))
    finally:
        proxy.close()
    assert proxy.faulted == 1
