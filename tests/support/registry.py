"""A real registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1.

``RegistryServer(workdir, auth=None | "htpasswd" | "token")``. For "token", an in-process
token server implements Docker's token authentication: it checks basic auth (or an OAuth2
refresh token), and signs an RS256 JWT whose ``x5c`` header carries a self-signed
certificate that is also the registry's ``rootcertbundle`` (distribution 2.8 verifies ``x5c``
chains against that bundle, see registry/auth/token/token.go).
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from dockweb.runtime.registry import RegistryClient
from tests.support import images as im

USERNAME = "testuser"
PASSWORD = "s3cret-pass"
IDENTITY_TOKEN = "identity-token-for-testuser"
SERVICE = "dockweb-test-registry"
ISSUER = "dockweb-test-issuer"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Docker token auth server (GET with basic auth, POST OAuth2 form), in a thread.

    Valid credentials get every action they ask for; anonymous requests and other users
    get a token with no access (so the registry answers insufficient_scope, as Docker Hub
    does for private or missing repositories). ``requests`` counts token requests;
    ``expires_in`` is what the responses state.
    """

    def __init__(self, workdir: Path, *, expires_in: int = 300):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.expires_in = expires_in
        self.requests = 0
        self.last_form: dict[str, list[str]] | None = None
        self.last_query: dict[str, list[str]] | None = None
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockweb test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.cert_path = workdir / "token-signer.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def sign(self, subject: str, access: list[dict]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self._cert_der).decode()]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + self.expires_in,
            "nbf": now - 5,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        sig = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(sig)

    def _grant(self, user: str | None, scopes: list[str]) -> list[dict]:
        if user != USERNAME:
            return []
        access = []
        for scope in scopes:
            for one in scope.split(" "):
                parts = one.split(":")
                if len(parts) < 3:
                    continue
                typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
                access.append({"type": typ, "name": name, "actions": actions.split(",")})
        return access

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, status: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _issue(self, user: str | None, scopes: list[str], refresh: bool = False) -> None:
                token = server.sign(user or "", server._grant(user, scopes))
                doc = {
                    "token": token,
                    "access_token": token,
                    "expires_in": server.expires_in,
                    "issued_at": datetime.datetime.now(datetime.UTC).isoformat(),
                }
                if refresh:
                    doc["refresh_token"] = IDENTITY_TOKEN
                self._reply(200, doc)

            def do_GET(self):
                with server._lock:
                    server.requests += 1
                q = parse_qs(urlsplit(self.path).query)
                server.last_query = q
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    u, _, p = base64.b64decode(header[6:]).decode().partition(":")
                    if (u, p) != (USERNAME, PASSWORD):
                        self._reply(401, {"details": "incorrect username or password"})
                        return
                    user = u
                self._issue(user, q.get("scope", []))

            def do_POST(self):
                with server._lock:
                    server.requests += 1
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                server.last_form = form
                grant = form.get("grant_type", [""])[0]
                scopes = form.get("scope", [""])[0].split(" ")
                if grant == "refresh_token" and form.get("refresh_token") == [IDENTITY_TOKEN]:
                    self._issue(USERNAME, scopes, refresh=True)
                elif (
                    grant == "password"
                    and form.get("username") == [USERNAME]
                    and form.get("password") == [PASSWORD]
                ):
                    self._issue(USERNAME, scopes, refresh=True)
                else:
                    self._reply(401, {"details": "incorrect username or password"})

        return Handler


class RegistryServer:
    """docker-registry serving plain HTTP on 127.0.0.1:<free port>, storage under workdir."""

    def __init__(self, workdir: Path, auth: str | None = None, *, token_expires_in: int = 300):
        if auth not in (None, "htpasswd", "token"):
            raise ValueError(f"unknown auth variant {auth!r}")
        self.workdir = Path(workdir)
        self.auth = auth
        self.storage_root = self.workdir / "storage"
        self.username = USERNAME if auth else None
        self.password = PASSWORD if auth else None
        self.identity_token = IDENTITY_TOKEN if auth == "token" else None
        self.service = SERVICE
        self.token_server: TokenServer | None = None
        self._token_expires_in = token_expires_in
        self._proc: subprocess.Popen | None = None
        self.port = 0
        self.host = ""
        self.url = ""

    def _config(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage_root}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {uuid.uuid4().hex}",
        ]
        if self.auth == "htpasswd":
            htpasswd = self.workdir / "htpasswd"
            out = subprocess.run(
                ["htpasswd", "-Bbn", USERNAME, PASSWORD], check=True, capture_output=True
            ).stdout
            htpasswd.write_bytes(out)
            lines += [
                "auth:",
                "  htpasswd:",
                "    realm: dockweb-test",
                f"    path: {htpasswd}",
            ]
        elif self.auth == "token":
            assert self.token_server is not None
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.token_server.realm}",
                f"    service: {SERVICE}",
                f"    issuer: {ISSUER}",
                f"    rootcertbundle: {self.token_server.cert_path}",
            ]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_root.mkdir(exist_ok=True)
        if self.auth == "token":
            self.token_server = TokenServer(self.workdir, expires_in=self._token_expires_in)
            self.token_server.start()
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        config = self.workdir / "config.yml"
        config.write_text(self._config())
        self._log = open(self.workdir / "registry.log", "wb")
        env = dict(os.environ, OTEL_TRACES_EXPORTER="none")
        self._proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited: {(self.workdir / 'registry.log').read_text()}"
                )
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.url} within 15 s")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
            self._log.close()
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None

    @property
    def insecure_registries(self) -> list[str]:
        """What a client must list as insecure registries to send this registry's
        credentials to its token server (plain HTTP on another port): empty without one."""
        return [f"127.0.0.1:{self.token_server.port}"] if self.token_server else []

    def blob_path(self, digest: str) -> Path:
        """Where filesystem storage keeps the blob's bytes (to corrupt it in tests)."""
        algo, _, hexpart = digest.partition(":")
        return (
            self.storage_root / "docker/registry/v2/blobs" / algo / hexpart[:2] / hexpart / "data"
        )

    def __enter__(self) -> RegistryServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_private_app(workdir: Path, auth: str) -> Iterator[tuple[RegistryServer, im.Image]]:
    """A registry that requires credentials (``auth``: "htpasswd" or "token"), holding
    busybox as ``private/app:1``; the server and the image. ``yield from`` it in a fixture:
    the server stops when the fixture ends."""
    server = RegistryServer(workdir, auth=auth)
    server.start()
    image = im.busybox_base()
    client = RegistryClient(
        credentials={server.host: (server.username, server.password)},
        insecure_registries=server.insecure_registries,
    )
    for blob, digest in [(la.read_blob(), la.digest) for la in image.layers] + [
        (image.config_bytes, image.image_id)
    ]:
        client.push_blob(server.host, "private/app", blob, digest, len(blob))
    client.put_manifest(
        server.host, "private/app", "1", image.manifest_bytes, image.manifest_media_type
    )
    yield server, image
    server.stop()
