"""Registry HTTP API v2 client on urllib3.

``RegistryClient`` is thread-safe: one PoolManager (up to 8 connections per host), a token
cache, and per-host endpoint state (scheme, last auth challenge) behind a lock.

Behaviour mirrors Docker's daemon (moby registry/ and distribution/, distribution's
registry/client):
- HTTPS first; plain HTTP only for loopback hosts and ``insecure_registries``, after HTTPS
  failed (those hosts' certificates are also not verified, as Docker does).
- Anonymous first; on 401 the ``WWW-Authenticate`` challenge decides between a bearer token
  (scope ``repository:<repo>:pull`` or ``pull,push``) and basic auth.
- GET/HEAD (and manifest PUT) are retried with bounded exponential backoff on 5xx, 429
  (``Retry-After`` honoured), connection errors and timeouts.
- Redirects are followed by hand; ``Authorization`` is only sent back to the same
  scheme://host:port.
- Registry error bodies become RegistryError / ManifestUnknown / AuthError whose text is
  Docker's.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import IO
from urllib.parse import quote, urljoin, urlsplit

import urllib3

from dockweb.runtime.auth import (
    AuthConfig,
    Challenge,
    DockerConfig,
    TokenCache,
    fetch_token,
    parse_www_authenticate,
    repository_scope,
)
from dockweb.runtime.errors import (
    AuthError,
    DigestMismatch,
    ManifestUnknown,
    NotFound,
    RegistryError,
    RegistryUnavailable,
)
from dockweb.runtime.manifest import SUPPORTED_MANIFEST_TYPES

DOCKER_HUB_DOMAIN = "docker.io"
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
USER_AGENT = "dockweb (docker-compatible registry client)"
#: Blobs are pushed in one PUT up to this size, otherwise in PATCH chunks of this size.
CHUNK_SIZE = 16 * 1024 * 1024
MAX_REDIRECTS = 10
MAX_MANIFEST_SIZE = 4 * 1024 * 1024  # Docker's maxManifestBodySize


class BlobUnknown(RegistryError, NotFound):
    """The registry has no blob with that digest in that repository."""


class BlobReadError(RegistryUnavailable):
    """A blob download broke off after it started: reset, cut short or stalled past the read
    timeout. Transient by nature; a pull retries the layer."""


class _BlobStream:
    """A blob response whose mid-body failures become ``BlobReadError`` with a clear cause.

    urllib3 applies the read timeout to every socket read, body included, so a transfer
    that stalls after its headers ends here as "timed out" instead of hanging.
    """

    def __init__(self, resp: urllib3.BaseHTTPResponse, digest: str, host: str, timeout: float):
        self._resp = resp
        self._digest = digest
        self._host = host
        self._timeout = timeout
        self.count = 0
        length = resp.headers.get("Content-Length")
        self._length = int(length) if length and length.isdigit() else None

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._resp.read(n if n and n > 0 else None)
        except urllib3.exceptions.ReadTimeoutError:
            raise self._broken(f"timed out: no data for {self._timeout:g} s") from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            text = str(e)
            if "IncompleteRead" in text or isinstance(e, urllib3.exceptions.IncompleteRead):
                cause = "unexpected EOF: the registry closed the connection early"
            elif "reset" in text.lower():
                cause = "connection reset by peer"
            else:
                cause = text
            raise self._broken(cause) from None
        self.count += len(data)
        return data

    def _broken(self, cause: str) -> BlobReadError:
        of = f" of {self._length}" if self._length is not None else ""
        return BlobReadError(
            f"download blob {self._digest} from {self._host}: {cause} "
            f"(after {self.count}{of} bytes)"
        )

    def release_conn(self) -> None:
        self._resp.release_conn()


def registry_host(host: str) -> str:
    """The host to connect to: Docker Hub's ``docker.io`` is served by registry-1."""
    return DOCKER_HUB_REGISTRY if host in (DOCKER_HUB_DOMAIN, "index.docker.io") else host


def familiar_name(host: str, repo: str) -> str:
    """``distribution/reference.FamiliarName``: ``library/x`` on Docker Hub reads ``x``."""
    if host in (DOCKER_HUB_DOMAIN, "index.docker.io", DOCKER_HUB_REGISTRY):
        return repo.removeprefix("library/") if repo.count("/") == 1 else repo
    return f"{host}/{repo}"


def familiar_string(host: str, repo: str, ref: str) -> str:
    sep = "@" if ":" in ref else ":"
    return f"{familiar_name(host, repo)}{sep}{ref}"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost, with or without a port (Docker treats them insecure)."""
    hostname = urlsplit("//" + host).hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _content_type(resp: urllib3.BaseHTTPResponse) -> str:
    """The response's media type, without parameters (``; charset=...``)."""
    return (resp.headers.get("Content-Type") or "").split(";")[0].strip()


def _check_digest(data: bytes, digest: str, what: str) -> None:
    algorithm = digest.partition(":")[0]
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise DigestMismatch(f"unsupported digest algorithm: {digest}")
    actual = _digest_of(data, algorithm)
    if actual != digest:
        raise DigestMismatch(f"{what}: digest mismatch: expected {digest}, got {actual}")


@dataclass
class _Endpoint:
    scheme: str
    verify: bool
    challenges: list[Challenge]


class RegistryClient:
    """A Docker-compatible registry client. Thread-safe; share one per process."""

    def __init__(
        self,
        *,
        insecure_registries: Iterable[str] = (),
        auth_config_path: str | None = None,
        credentials: dict[str, tuple[str, str] | AuthConfig] | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        token_cache: TokenCache | None = None,
        ca_certs: str | None = None,
    ):
        self.insecure_registries = frozenset(insecure_registries)
        self._auth_config_path = auth_config_path
        self._docker_config: DockerConfig | None = None
        self._credentials = dict(credentials or {})
        self.timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        self.retries = max(1, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.tokens = token_cache or TokenCache()
        common = {"maxsize": 8, "block": False, "retries": False, "timeout": self.timeout}
        self._pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=ca_certs, **common)
        self._insecure_pool = urllib3.PoolManager(cert_reqs="CERT_NONE", **common)
        self._endpoints: dict[str, _Endpoint] = {}
        self._lock = threading.Lock()

    # --- public API -------------------------------------------------------------------

    def get_manifest(
        self, host: str, repo: str, ref: str, accept: Iterable[str] = SUPPORTED_MANIFEST_TYPES
    ) -> tuple[bytes, str, str]:
        """Fetch a manifest by tag or digest: ``(bytes, media_type, digest)``.

        The body is verified against ``ref`` when it is a digest, else against the
        ``Docker-Content-Digest`` header when present (DigestMismatch). Raises ManifestUnknown.
        """
        resp = self._manifest_call("GET", host, repo, ref, accept)
        data = resp.data
        if len(data) > MAX_MANIFEST_SIZE:
            raise RegistryError(f"manifest for {familiar_string(host, repo, ref)} is too large")
        media_type = _content_type(resp)
        if ":" in ref:
            _check_digest(data, ref, f"manifest {familiar_string(host, repo, ref)}")
            digest = ref
        else:
            header = resp.headers.get("Docker-Content-Digest")
            if header:
                _check_digest(data, header, f"manifest {familiar_string(host, repo, ref)}")
                digest = header
            else:
                digest = _digest_of(data)
        if not media_type or media_type in ("application/json", "text/plain"):
            try:
                media_type = json.loads(data).get("mediaType") or media_type
            except (ValueError, AttributeError):
                pass
        return data, media_type, digest

    def head_manifest(
        self, host: str, repo: str, ref: str, accept: Iterable[str] = SUPPORTED_MANIFEST_TYPES
    ) -> tuple[str, str | None, int | None]:
        """``(media_type, digest or None, size or None)`` without the body."""
        resp = self._manifest_call("HEAD", host, repo, ref, accept)
        length = resp.headers.get("Content-Length")
        return (
            _content_type(resp),
            resp.headers.get("Docker-Content-Digest") or (ref if ":" in ref else None),
            int(length) if length and length.isdigit() else None,
        )

    def _manifest_call(
        self, method: str, host: str, repo: str, ref: str, accept: Iterable[str]
    ) -> urllib3.BaseHTTPResponse:
        return self._call(
            method,
            host,
            repo,
            f"/v2/{repo}/manifests/{ref}",
            ref=ref,
            headers={"Accept": ", ".join(accept)},
            kind="manifest",
        )

    @contextmanager
    def open_blob(self, host: str, repo: str, digest: str) -> Iterator[IO[bytes]]:
        """A readable stream (``read(n)``) of the raw blob, in constant memory.

        Redirects to storage are followed. The caller verifies the digest while reading.
        Raises BlobUnknown; a read that breaks off mid-body raises BlobReadError.
        """
        resp = self._call(
            "GET",
            host,
            repo,
            f"/v2/{repo}/blobs/{digest}",
            ref=digest,
            kind="blob",
            stream=True,
        )
        try:
            yield _BlobStream(resp, digest, host, self.timeout.read_timeout)  # type: ignore[misc]
        finally:
            resp.release_conn()

    def fetch_blob(self, host: str, repo: str, digest: str, max_size: int = 8 << 20) -> bytes:
        """The whole blob, verified against ``digest`` (for configs: small blobs only).

        A download that breaks off mid-way is tried again, ``retries`` times in all."""
        delay = self.backoff
        for attempt in range(1, self.retries + 1):
            chunks, total = [], 0
            try:
                with self.open_blob(host, repo, digest) as stream:
                    while chunk := stream.read(65536):
                        total += len(chunk)
                        if total > max_size:
                            raise RegistryError(
                                f"blob {digest} of {familiar_name(host, repo)} "
                                f"is larger than {max_size} bytes"
                            )
                        chunks.append(chunk)
                break
            except BlobReadError:
                if attempt == self.retries:
                    raise
                time.sleep(min(delay, self.max_backoff))
                delay *= 2
        data = b"".join(chunks)
        _check_digest(data, digest, f"blob {digest}")
        return data

    def blob_exists(self, host: str, repo: str, digest: str) -> bool:
        try:
            self._call("HEAD", host, repo, f"/v2/{repo}/blobs/{digest}", ref=digest, kind="blob")
        except BlobUnknown:
            return False
        return True

    def push_blob(
        self,
        host: str,
        repo: str,
        data: bytes | IO[bytes],
        digest: str,
        size: int,
        *,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        """Upload a blob (idempotent: does nothing if the registry already has it).

        ``data`` is bytes or a binary stream of exactly ``size`` bytes. One monolithic PUT up
        to ``chunk_size``, else PATCH chunks then a closing PUT. The registry verifies the
        digest.
        """
        if self.blob_exists(host, repo, digest):
            return
        resp = self._call(
            "POST",
            host,
            repo,
            f"/v2/{repo}/blobs/uploads/",
            push=True,
            headers={"Content-Length": "0"},
            expect=(202,),
        )
        location = self._upload_location(resp, host)
        stream = data if not isinstance(data, bytes | bytearray) else None
        if size <= chunk_size:
            body = bytes(data) if stream is None else stream.read(size)
            if len(body) != size:
                raise RegistryError(f"blob {digest}: expected {size} bytes, got {len(body)}")
            self._call(
                "PUT",
                host,
                repo,
                _add_query(location, digest=digest),
                push=True,
                body=body,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                expect=(201,),
            )
            return
        offset = 0
        while offset < size:
            n = min(chunk_size, size - offset)
            chunk = bytes(data[offset : offset + n]) if stream is None else stream.read(n)
            if len(chunk) != n:
                raise RegistryError(
                    f"blob {digest}: stream ended at {offset + len(chunk)} of {size}"
                )
            resp = self._call(
                "PATCH",
                host,
                repo,
                location,
                push=True,
                body=chunk,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(n),
                    "Content-Range": f"{offset}-{offset + n - 1}",
                },
                expect=(202,),
            )
            location = self._upload_location(resp, host)
            offset += n
        self._call(
            "PUT",
            host,
            repo,
            _add_query(location, digest=digest),
            push=True,
            body=b"",
            headers={"Content-Length": "0"},
            expect=(201,),
        )

    def mount_blob(self, host: str, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; True if mounted, False if the registry started an upload
        instead (which is then cancelled; push the blob normally)."""
        path = f"/v2/{repo}/blobs/uploads/?mount={quote(digest)}&from={quote(from_repo)}"
        resp = self._call(
            "POST",
            host,
            repo,
            path,
            push=True,
            extra_pull=(from_repo,),
            headers={"Content-Length": "0"},
            expect=(201, 202),
        )
        if resp.status == 201:
            return True
        try:
            location = self._upload_location(resp, host)
            self._call("DELETE", host, repo, location, push=True, expect=(204, 404))
        except RegistryError:
            pass  # an abandoned upload is purged by the registry
        return False

    def put_manifest(self, host: str, repo: str, ref: str, data: bytes, media_type: str) -> str:
        """Upload a manifest under a tag or digest; returns its digest."""
        resp = self._call(
            "PUT",
            host,
            repo,
            f"/v2/{repo}/manifests/{ref}",
            ref=ref,
            push=True,
            body=data,
            headers={"Content-Type": media_type},
            expect=(201,),
            idempotent=True,
            kind="manifest",
        )
        return resp.headers.get("Docker-Content-Digest") or _digest_of(data)

    def list_tags(self, host: str, repo: str) -> list[str]:
        """All tags of ``repo``, following ``Link`` pagination."""
        tags: list[str] = []
        path: str | None = f"/v2/{repo}/tags/list"
        while path:
            resp = self._call("GET", host, repo, path, kind="repository")
            tags += json.loads(resp.data).get("tags") or []
            path = _next_link(resp.headers.get("Link"))
        return tags

    def credentials_for(self, host: str) -> AuthConfig:
        """Explicit ``credentials`` first, then ``config.json`` (loaded once)."""
        for key in (host, registry_host(host)):
            if key in self._credentials:
                return _auth_config(self._credentials[key])
        if host in (DOCKER_HUB_REGISTRY,) and DOCKER_HUB_DOMAIN in self._credentials:
            return _auth_config(self._credentials[DOCKER_HUB_DOMAIN])
        with self._lock:
            if self._docker_config is None:
                self._docker_config = DockerConfig.load(self._auth_config_path)
            config = self._docker_config
        return config.get(host)

    # --- transport --------------------------------------------------------------------

    def _insecure(self, host: str) -> bool:
        return is_loopback(host) or host in self.insecure_registries

    def _endpoint(self, host: str) -> _Endpoint:
        """Scheme and auth challenge of ``host``, found by pinging /v2/ once."""
        with self._lock:
            ep = self._endpoints.get(host)
        if ep is not None:
            return ep
        insecure = self._insecure(host)
        candidates = [("https", not insecure)] + ([("http", False)] if insecure else [])
        last: Exception | None = None
        for scheme, verify in candidates:
            url = f"{scheme}://{host}/v2/"
            try:
                # With a fallback, a failed HTTPS handshake is an answer, not a fault to retry.
                resp = self._send_with_retries(
                    "GET",
                    url,
                    {"User-Agent": USER_AGENT},
                    None,
                    verify,
                    idempotent=len(candidates) == 1 or scheme == "http",
                )
            except RegistryError as e:
                last = e
                continue
            challenges = (
                parse_www_authenticate(resp.headers.getlist("WWW-Authenticate"))
                if resp.status == 401
                else []
            )
            ep = _Endpoint(scheme, verify, challenges)
            with self._lock:
                self._endpoints[host] = ep
            return ep
        assert last is not None
        raise last

    def _scopes(self, repo: str, push: bool, extra_pull: tuple[str, ...]) -> list[str]:
        scopes = [repository_scope(repo, ("pull", "push") if push else ("pull",))]
        scopes += [repository_scope(r, ("pull",)) for r in extra_pull]
        return scopes

    def _authorization(
        self, host: str, ep: _Endpoint, scopes: list[str], *, refresh: bool = False
    ) -> str | None:
        for ch in ep.challenges:
            if ch.scheme == "bearer":
                creds = self.credentials_for(host)
                if creds.registry_token:
                    return f"Bearer {creds.registry_token}"
                realm, service = ch.params.get("realm", ""), ch.params.get("service", "")
                key = " ".join(scopes)
                if refresh:
                    self.tokens.invalidate(realm, service, key)
                pool = self._insecure_pool if self._insecure(_netloc(realm)) else self._pool
                token = self.tokens.get_or_fetch(
                    realm,
                    service,
                    key,
                    lambda pool=pool, ch=ch, creds=creds: fetch_token(
                        pool, ch, scopes, creds, timeout=self.timeout
                    ),
                )
                return f"Bearer {token.token}"
        for ch in ep.challenges:
            if ch.scheme == "basic":
                creds = self.credentials_for(host)
                if creds.username or creds.password:
                    return urllib3.make_headers(basic_auth=f"{creds.username}:{creds.password}")[
                        "authorization"
                    ]
        return None

    def _call(
        self,
        method: str,
        host: str,
        repo: str,
        path: str,
        *,
        ref: str = "",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        push: bool = False,
        extra_pull: tuple[str, ...] = (),
        expect: tuple[int, ...] = (200,),
        stream: bool = False,
        idempotent: bool | None = None,
        kind: str = "",
    ) -> urllib3.BaseHTTPResponse:
        """One API call with auth, retries and redirects; raises the mapped error."""
        host = registry_host(host)
        ep = self._endpoint(host)
        url = path if "://" in path else f"{ep.scheme}://{host}{path}"
        scopes = self._scopes(repo, push, extra_pull)
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
        authz = self._authorization(host, ep, scopes)
        for attempt in range(2):
            if authz:
                hdrs["Authorization"] = authz
            resp = self._send_with_retries(
                method, url, hdrs, body, ep.verify, idempotent=idempotent, stream=stream
            )
            if resp.status != 401 or attempt == 1:
                break
            challenges = parse_www_authenticate(resp.headers.getlist("WWW-Authenticate"))
            bearer_error = any(c.scheme == "bearer" and c.params.get("error") for c in challenges)
            if not challenges or (authz and bearer_error) or (authz and authz.startswith("Basic")):
                break  # our credentials were refused: retrying the same ones cannot help
            _drain(resp)
            ep = _Endpoint(ep.scheme, ep.verify, challenges)
            with self._lock:
                self._endpoints[host] = ep
            authz = self._authorization(host, ep, scopes, refresh=True)
            if authz is None:
                break
        if resp.status in expect:
            return resp
        raise self._error(resp, host, repo, ref, push=push, kind=kind, method=method)

    def _send_with_retries(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        verify: bool,
        *,
        idempotent: bool,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        attempts = self.retries if idempotent else 1
        delay = self.backoff
        for attempt in range(1, attempts + 1):
            try:
                resp = self._send_following_redirects(method, url, headers, body, verify, stream)
            except urllib3.exceptions.HTTPError as e:
                # A refused connection is not transient enough to wait for.
                if attempt == attempts or "refused" in str(getattr(e, "reason", None) or e):
                    raise _transport_error(method, url, e) from None
                time.sleep(min(delay, self.max_backoff) * (1 + random.random() / 4))
                delay *= 2
                continue
            if attempt < attempts and (resp.status == 429 or resp.status >= 500):
                wait = _retry_after(resp.headers.get("Retry-After"))
                _drain(resp)
                time.sleep(min(wait if wait is not None else delay, self.max_backoff))
                delay *= 2
                continue
            return resp
        raise AssertionError("unreachable")

    def _send_following_redirects(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        verify: bool,
        stream: bool,
    ) -> urllib3.BaseHTTPResponse:
        origin = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            pool = self._pool if verify else self._insecure_pool
            resp = pool.request(
                method,
                url,
                headers=headers,
                body=body,
                redirect=False,
                retries=False,
                preload_content=not stream,
                decode_content=False,
            )
            location = resp.headers.get("Location")
            if (
                resp.status not in (301, 302, 303, 307, 308)
                or not location
                or method not in ("GET", "HEAD")
            ):
                return resp
            _drain(resp)
            url = urljoin(url, location)
            if _origin(url) != origin:
                # Never hand registry credentials to storage on another host.
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                # Storage redirects are usually pre-signed HTTPS URLs: verify them.
                verify = verify or url.startswith("https:")
        raise RegistryError(f'{method} "{url}": stopped after {MAX_REDIRECTS} redirects')

    def _upload_location(self, resp: urllib3.BaseHTTPResponse, host: str) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"{host}: upload response without Location header")
        ep = self._endpoint(host)
        return urljoin(f"{ep.scheme}://{host}/", location)

    # --- errors -----------------------------------------------------------------------

    def _error(
        self,
        resp: urllib3.BaseHTTPResponse,
        host: str,
        repo: str,
        ref: str,
        *,
        push: bool,
        kind: str,
        method: str,
    ) -> RegistryError:
        shown_host = DOCKER_HUB_DOMAIN if host == DOCKER_HUB_REGISTRY else host
        body = resp.data if method != "HEAD" else b""
        status = resp.status
        errors: list[tuple[str, str]] = []
        # distribution's HandleErrorResponse: OAuth errors in the challenge come first.
        if 400 <= status < 500:
            for ch in parse_www_authenticate(resp.headers.getlist("WWW-Authenticate")):
                if ch.scheme != "bearer":
                    continue
                code = {"invalid_token": "UNAUTHORIZED", "insufficient_scope": "DENIED"}.get(
                    ch.params.get("error", "")
                )
                if code:
                    default = _DEFAULT_MESSAGES[code]
                    errors.append((code, ch.params.get("error_description") or default))
                    break
        try:
            doc = json.loads(body) if body else {}
            for e in doc.get("errors") or []:
                errors.append((str(e.get("code", "UNKNOWN")), str(e.get("message", ""))))
        except (ValueError, AttributeError, TypeError):
            pass
        if not errors and status == 404:
            # HEAD has no body: infer the code from what was asked for.
            errors.append(
                {
                    "manifest": ("MANIFEST_UNKNOWN", "manifest unknown"),
                    "blob": ("BLOB_UNKNOWN", "blob unknown to registry"),
                }.get(kind, ("NAME_UNKNOWN", "repository name not known to registry"))
            )
        if not errors and status == 401:
            errors.append(("UNAUTHORIZED", "authentication required"))
        if not errors:
            return RegistryError(
                f"received unexpected HTTP status: {status} {resp.reason or ''}".rstrip(),
                status=status,
            )
        code, message = errors[0]
        cause = f"{code.lower().replace('_', ' ')}: {message}"
        name = familiar_name(shown_host, repo)
        if code == "DENIED":
            if push:
                return AuthError(cause, status=status, code=code)
            return AuthError(
                f"pull access denied for {name}, repository does not exist or may require "
                f"'docker login': {cause}",
                status=status,
                code=code,
            )
        if code == "MANIFEST_UNKNOWN":
            return ManifestUnknown(
                f"manifest for {familiar_string(shown_host, repo, ref)} not found: {cause}",
                status=status,
                code=code,
            )
        if code == "NAME_UNKNOWN":
            cls = ManifestUnknown if kind == "manifest" else RegistryError
            return cls(f"repository {name} not found: {cause}", status=status, code=code)
        if code == "BLOB_UNKNOWN":
            return BlobUnknown(cause, status=status, code=code)
        if code == "UNAUTHORIZED" or status in (401, 403):
            return AuthError(cause, status=status, code=code)
        return RegistryError(cause, status=status, code=code)


_DEFAULT_MESSAGES = {
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
}


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, f"{(parts.hostname or '').lower()}:{port}"


def _netloc(url: str) -> str:
    return urlsplit(url).netloc


def _add_query(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={quote(v)}" for k, v in params.items())


def _next_link(header: str | None) -> str | None:
    # Link: </v2/foo/tags/list?last=x&n=100>; rel="next"
    if not header:
        return None
    for part in header.split(","):
        if 'rel="next"' in part and "<" in part and ">" in part:
            return part[part.index("<") + 1 : part.index(">")]
    return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _drain(resp: urllib3.BaseHTTPResponse) -> None:
    try:
        resp.drain_conn()
    except urllib3.exceptions.HTTPError:
        pass
    resp.release_conn()


def _transport_error(method: str, url: str, e: Exception) -> RegistryUnavailable:
    """Go's net/http wording: ``Get "https://h/v2/": dial tcp h: connect: connection refused``."""
    verb = method.capitalize()
    netloc = urlsplit(url).netloc
    reason = getattr(e, "reason", None) or e
    text = str(reason)
    if isinstance(reason, urllib3.exceptions.NewConnectionError) or "Connection refused" in text:
        if "refused" in text:
            detail = f"dial tcp {netloc}: connect: connection refused"
        else:
            detail = f"dial tcp {netloc}: {text.split(': ', 1)[-1]}"
    elif isinstance(reason, urllib3.exceptions.SSLError) or "SSL" in text:
        if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
            detail = "http: server gave HTTP response to HTTPS client"
        else:
            detail = f"tls: {text}"
    elif isinstance(reason, urllib3.exceptions.TimeoutError) or "timed out" in text:
        detail = f"dial tcp {netloc}: i/o timeout"
    else:
        detail = text
    return RegistryUnavailable(f'{verb} "{url}": {detail}')


def _auth_config(value: tuple[str, str] | AuthConfig) -> AuthConfig:
    """An explicit credential: (user, password), or a whole AuthConfig (tokens too)."""
    if isinstance(value, AuthConfig):
        return value
    user, password = value
    return AuthConfig(username=user, password=password)
