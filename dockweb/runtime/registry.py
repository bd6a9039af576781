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
- Memory is bounded whatever the registry sends: every body is read as a stream and only up
  to its limit (manifests and indexes 4 MiB as dockerd, token answers 1 MiB, error bodies
  64 KiB as containerd, other JSON 8 MiB); a blob is never read past the size its descriptor
  declares (``BlobTooLarge``).
- Time is bounded: 10 s to connect, 20 s without a byte on an open connection, and a
  request that timed out is only tried again while the whole stays within ``deadline``
  (30 s), so an unresponsive registry fails in about 30 s.
- ``cancel_scope(event)``: while the event is set, the sockets of the requests its threads
  have open are shut down, so a cancelled pull does not wait for a timeout.
- Saved credentials go to a token realm only over HTTPS, to the registry itself, or to a
  host listed in ``insecure_registries``; otherwise the token is asked for anonymously.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import socket
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import IO
from urllib.parse import quote, urljoin, urlsplit

import urllib3
import urllib3.connection
import urllib3.exceptions
import urllib3.util.connection
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from dockweb.runtime.auth import (
    AuthConfig,
    Challenge,
    DockerConfig,
    TokenCache,
    fetch_token,
    parse_www_authenticate,
    read_at_most,
    repository_scope,
)
from dockweb.runtime.errors import (
    AuthError,
    DigestMismatch,
    DockwebError,
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
MAX_MANIFEST_SIZE = 4 * 1024 * 1024  # Docker's maxManifestBodySize; indexes too
#: Other JSON answers (tag lists).
MAX_BODY_SIZE = 8 * 1024 * 1024
#: Objects and arrays a manifest or config may hold. Within 4 MiB, a million empty
#: objects would take about 100 MB once parsed; real manifests hold a few hundred.
MAX_JSON_CONTAINERS = 65536
#: What is read of an error answer's body (containerd reads 64 KB of it).
MAX_ERROR_BODY_SIZE = 64 * 1024
#: Bodies drained to keep a connection for reuse; a longer one closes the connection.
_DRAIN_LIMIT = 64 * 1024
_CHUNK = 64 * 1024


class BlobUnknown(RegistryError, NotFound):
    """The registry has no blob with that digest in that repository."""


class BlobReadError(RegistryUnavailable):
    """A blob download broke off after it started: reset, cut short or stalled past the read
    timeout. Transient by nature; a pull retries the layer. ``stalled``: no byte came for
    the read timeout; ``count``: bytes this attempt received."""

    def __init__(self, message: str, *, stalled: bool = False, count: int = 0):
        super().__init__(message)
        self.stalled = stalled
        self.count = count


class BlobTooLarge(RegistryError):
    """The registry sent more bytes than the blob's descriptor declares: refused, not
    retried (the same registry would send the same)."""


class BodyTooLarge(RegistryError):
    """An answer (manifest, index, token, tag list) is larger than its limit."""


class RequestCancelled(DockwebError):
    """A request was cut short because its ``cancel_scope`` was cancelled."""


class CancelScope:
    """Ties the requests made by the threads that ``enter()`` it to a cancel event.

    A watcher thread polls the event (every 0.1 s); once it is set, every connection those
    threads hold is shut down (a blocked read returns at once), new connections are refused,
    and the client raises RequestCancelled instead of retrying. ``close()`` stops the
    watcher. The event is anything with ``is_set()``.
    """

    def __init__(self, event):
        self.event = event
        self.cancelled = False
        self._conns: weakref.WeakSet = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="registry-cancel", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._closed.wait(0.1):
            if self.event.is_set():
                self.abort()
                return

    def abort(self) -> None:
        with self._lock:
            self.cancelled = True
            conns = list(self._conns)
        for conn in conns:
            _shutdown(conn)

    def add(self, conn) -> None:
        with self._lock:
            self._conns.add(conn)
            cancelled = self.cancelled
        if cancelled:
            _shutdown(conn)
            raise RequestCancelled("request cancelled")

    def discard(self, conn) -> None:
        with self._lock:
            self._conns.discard(conn)

    @contextmanager
    def enter(self) -> Iterator[CancelScope]:
        """Bind the calling thread's requests to this scope while the block runs."""
        previous = getattr(_scope, "current", None)
        _scope.current = self
        try:
            yield self
        finally:
            _scope.current = previous

    def close(self) -> None:
        self._closed.set()

    def __enter__(self) -> CancelScope:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_scope = threading.local()


def _current_scope() -> CancelScope | None:
    return getattr(_scope, "current", None)


def _cancelled() -> bool:
    scope = _current_scope()
    return scope is not None and scope.cancelled


_dup_lock = threading.Lock()


def _sleep(seconds: float) -> None:
    """A wait between attempts that ends with RequestCancelled when the scope is cancelled."""
    scope = _current_scope()
    if scope is None:
        time.sleep(seconds)
        return
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if scope.cancelled or scope.event.is_set():
            raise RequestCancelled("request cancelled")
        time.sleep(min(left, 0.05))


def _shutdown(conn) -> None:
    """Shut down ``conn``'s socket from another thread: a read blocked on it returns at once.

    During a TLS handshake ``conn.sock`` is the plain socket the ssl module has already
    detached; the duplicate kept for that time (``_ScopedConnection``) reaches it."""
    with _dup_lock:
        dup = getattr(conn, "_dockweb_dup", None)
        if dup is not None:
            try:
                dup.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _ScopedConnection:
    """Keeps the socket reachable by a cancel while ``connect()`` runs: the socket itself
    while TCP connects (a host that drops the SYN would hold the connect for its whole
    timeout; shutting a connecting socket down aborts it at once), then a duplicate during
    the TLS handshake; the duplicate is closed as soon as ``connect()`` returns."""

    _dockweb_dup: socket.socket | None = None

    def _new_conn(self):
        try:
            sock = self._dockweb_connect()
        except socket.gaierror as e:
            raise urllib3.exceptions.NameResolutionError(self.host, self, e) from e
        except TimeoutError as e:
            raise urllib3.exceptions.ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from e
        except OSError as e:
            raise urllib3.exceptions.NewConnectionError(
                self,
                f"Failed to establish a new connection: {e}",
            ) from e
        with _dup_lock:
            self._dockweb_dup = sock.dup()
        scope = _current_scope()
        if scope is not None and scope.cancelled:
            _shutdown(self)
        return sock

    def _dockweb_connect(self) -> socket.socket:
        """urllib3.util.connection.create_connection, each socket made reachable by
        ``_shutdown`` before it connects."""
        host, port = self._dns_host, self.port
        host = host.strip("[]") if host.startswith("[") else host
        family = urllib3.util.connection.allowed_gai_family()
        err: OSError | None = None
        for af, socktype, proto, _, sa in socket.getaddrinfo(
            host, port, family, socket.SOCK_STREAM
        ):
            sock = socket.socket(af, socktype, proto)
            try:
                for opt in self.socket_options or ():
                    sock.setsockopt(*opt)
                if self.timeout is not _DEFAULT_TIMEOUT:
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                with _dup_lock:
                    self._dockweb_dup = sock
                scope = _current_scope()
                if scope is not None and scope.cancelled:
                    raise RequestCancelled("request cancelled")
                sock.connect(sa)
                return sock
            except OSError as e:
                err = e
                sock.close()
            finally:
                with _dup_lock:
                    self._dockweb_dup = None
        raise err or OSError("getaddrinfo returns an empty list")

    def connect(self) -> None:
        try:
            super().connect()
        finally:
            with _dup_lock:
                dup, self._dockweb_dup = self._dockweb_dup, None
            if dup is not None:
                dup.close()


class _HTTPConnection(_ScopedConnection, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_ScopedConnection, urllib3.connection.HTTPSConnection):
    pass


class _ScopedPool(urllib3.HTTPConnectionPool):
    """A connection pool whose connections join the calling thread's CancelScope."""

    ConnectionCls = _HTTPConnection

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        scope = _current_scope()
        if scope is not None:
            scope.add(conn)
        return conn

    def _put_conn(self, conn) -> None:
        scope = _current_scope()
        if scope is not None and conn is not None:
            scope.discard(conn)
        super()._put_conn(conn)


class _ScopedHTTPSPool(_ScopedPool, urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES = {"http": _ScopedPool, "https": _ScopedHTTPSPool}


class _BlobStream:
    """A blob response that ends where its descriptor says, with mid-body failures turned
    into ``BlobReadError`` with a clear cause.

    urllib3 applies the read timeout to every socket read, body included, so a transfer
    that stalls after its headers ends here as "timed out" instead of hanging. With ``size``
    (the descriptor's), nothing past it is read: one byte more is BlobTooLarge.
    """

    def __init__(
        self,
        resp: urllib3.BaseHTTPResponse,
        digest: str,
        host: str,
        timeout: float,
        size: int | None = None,
    ):
        self._resp = resp
        self._digest = digest
        self._host = host
        self._timeout = timeout
        self._size = size
        self.count = 0
        length = resp.headers.get("Content-Length")
        self._length = int(length) if length and length.isdigit() else None
        if size is not None and self._length is not None and self._length > size:
            raise self._too_large(f"the registry announces {self._length} bytes")

    def read(self, n: int = -1) -> bytes:
        want = n if n and n > 0 else _CHUNK
        if self._size is not None:
            left = self._size - self.count
            # at the declared end, one byte more tells an honest end from a longer blob
            want = min(want, left) if left > 0 else 1
        try:
            data = self._resp.read(want)
        except urllib3.exceptions.ReadTimeoutError:
            if _cancelled():
                raise RequestCancelled("request cancelled") from None
            cause = f"timed out: no data for {self._timeout:g} s"
            raise self._broken(cause, stalled=True) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            if _cancelled():
                raise RequestCancelled("request cancelled") from None
            text = str(e)
            if "IncompleteRead" in text or isinstance(e, urllib3.exceptions.IncompleteRead):
                cause = "unexpected EOF: the registry closed the connection early"
            elif "reset" in text.lower():
                cause = "connection reset by peer"
            else:
                cause = text
            raise self._broken(cause) from None
        if self._size is not None and self.count >= self._size and data:
            raise self._too_large("it sent more")
        self.count += len(data)
        return data

    def _broken(self, cause: str, *, stalled: bool = False) -> BlobReadError:
        of = self._size if self._size is not None else self._length
        of_text = f" of {of}" if of is not None else ""
        return BlobReadError(
            f"download blob {self._digest} from {self._host}: {cause} "
            f"(after {self.count}{of_text} bytes)",
            stalled=stalled,
            count=self.count,
        )

    def _too_large(self, what: str) -> BlobTooLarge:
        self._resp.close()
        return BlobTooLarge(
            f"download blob {self._digest} from {self._host}: blob larger than its "
            f"descriptor: the manifest says {self._size} bytes, {what}: refused"
        )

    def release_conn(self) -> None:
        self._resp.release_conn()


@dataclass
class _Answer:
    """A registry answer whose body was read (within its limit)."""

    status: int
    headers: urllib3.HTTPHeaderDict
    reason: str | None
    data: bytes


def check_json_containers(data: bytes, what: str, limit: int = MAX_JSON_CONTAINERS) -> None:
    """Refuse JSON that would parse into more than ``limit`` objects and arrays (counted
    from the brackets, strings included: an upper bound) before it is parsed."""
    if data.count(b"{") + data.count(b"[") > limit:
        raise BodyTooLarge(f"{what} holds more than {limit} JSON objects and arrays: refused")


def _size_text(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and not n % (1 << 20) else f"{n >> 10} KiB"


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
        timeout: tuple[float, float] = (10.0, 20.0),
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        deadline: float = 30.0,
        token_cache: TokenCache | None = None,
        ca_certs: str | None = None,
    ):
        """``timeout``: (connect, read) seconds; the read timeout is the longest wait for a
        byte. ``deadline``: a request that timed out is tried again only while its attempts
        stay within this many seconds in all. ``insecure_registries``: ``host:port``
        reached over plain HTTP (loopback ones always are), and token realms on plain HTTP
        that may receive saved credentials (only those listed)."""
        self.insecure_registries = frozenset(h.strip().lower() for h in insecure_registries)
        self._auth_config_path = auth_config_path
        self._docker_config: DockerConfig | None = None
        self._credentials = dict(credentials or {})
        self.timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        self.retries = max(1, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.deadline = deadline
        self.tokens = token_cache or TokenCache()
        common = {"maxsize": 8, "block": False, "retries": False, "timeout": self.timeout}
        self._pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=ca_certs, **common)
        self._insecure_pool = urllib3.PoolManager(cert_reqs="CERT_NONE", **common)
        for pool in (self._pool, self._insecure_pool):
            pool.pool_classes_by_scheme = _POOL_CLASSES
        self._endpoints: dict[str, _Endpoint] = {}
        # host -> the token realm its saved credentials were kept from (for the error text)
        self._withheld: dict[str, str] = {}
        self._lock = threading.Lock()

    def cancel_scope(self, event) -> CancelScope:
        """A CancelScope for ``event``: threads that ``enter()`` it have their requests cut
        short (RequestCancelled) within about 0.1 s of the event being set. Close it (or use
        it as a context manager) when done."""
        return CancelScope(event)

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
        check_json_containers(data, f"manifest for {familiar_string(host, repo, ref)}")
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
    ) -> _Answer:
        return self._call(
            method,
            host,
            repo,
            f"/v2/{repo}/manifests/{ref}",
            ref=ref,
            headers={"Accept": ", ".join(accept)},
            kind="manifest",
            limit=MAX_MANIFEST_SIZE,
            what=f"manifest for {familiar_string(host, repo, ref)}",
        )

    @contextmanager
    def open_blob(
        self, host: str, repo: str, digest: str, size: int | None = None
    ) -> Iterator[IO[bytes]]:
        """A readable stream (``read(n)``) of the raw blob, in constant memory.

        Redirects to storage are followed. The caller verifies the digest while reading.
        Raises BlobUnknown; a read that breaks off mid-way raises BlobReadError. With
        ``size`` (the descriptor's), the stream ends there: a blob that is longer raises
        BlobTooLarge as soon as it shows.
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
            yield _BlobStream(resp, digest, host, self.timeout.read_timeout, size)  # type: ignore[misc]
        finally:
            resp.release_conn()

    def fetch_blob(
        self,
        host: str,
        repo: str,
        digest: str,
        max_size: int = 8 << 20,
        size: int | None = None,
    ) -> bytes:
        """The whole blob, verified against ``digest`` (for configs: small blobs only).

        ``size``: the descriptor's; one over ``max_size`` is refused before any byte is
        read. A download that breaks off mid-way is tried again, ``retries`` times in all
        (a stalled one only within ``deadline``)."""
        if size is not None and size > max_size:
            raise BodyTooLarge(
                f"blob {digest} of {familiar_name(host, repo)} is {size} bytes, larger than "
                f"the {_size_text(max_size)} limit: refused"
            )
        delay = self.backoff
        stalled = 0.0
        for attempt in range(1, self.retries + 1):
            buf = bytearray()
            try:
                with self.open_blob(host, repo, digest, size) as stream:
                    while chunk := stream.read(_CHUNK):
                        buf += chunk
                        if len(buf) > max_size:
                            raise BodyTooLarge(
                                f"blob {digest} of {familiar_name(host, repo)} "
                                f"is larger than the {_size_text(max_size)} limit: refused"
                            )
                break
            except BlobReadError as e:
                stalled += self.timeout.read_timeout if e.stalled else 0.0
                if attempt == self.retries or not self.may_retry_stall(stalled):
                    raise
                _sleep(min(delay, self.max_backoff))
                delay *= 2
        data = bytes(buf)
        del buf
        _check_digest(data, digest, f"blob {digest}")
        return data

    def may_retry_stall(self, waited: float) -> bool:
        """Whether a transfer that has already waited ``waited`` seconds on stalls may wait
        one read timeout more within ``deadline``."""
        return waited + (self.timeout.read_timeout or 0) <= self.deadline

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
            resp = self._call(
                "GET", host, repo, path, kind="repository", what=f"tag list of {repo}"
            )
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
            _drain(resp)
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
                if not creds.anonymous and not self.may_send_credentials(host, ep, realm):
                    # a realm over plain HTTP elsewhere gets no password: ask anonymously
                    with self._lock:
                        self._withheld[host] = realm
                    creds = AuthConfig()
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

    def may_send_credentials(self, host: str, ep: _Endpoint, realm: str) -> bool:
        """Whether saved credentials for ``host`` may go to the token ``realm``: over HTTPS,
        to the registry itself (same scheme, host and port: what basic auth would reach), or
        to a host:port listed in ``insecure_registries``. Loopback realms are not
        implicitly trusted: another port on this machine is another service."""
        parts = urlsplit(realm)
        if parts.scheme == "https":
            return True
        if _origin(realm) == _origin(f"{ep.scheme}://{host}/"):
            return True
        netloc = (parts.netloc.rpartition("@")[2] or "").lower()
        return bool(netloc) and (
            netloc in self.insecure_registries
            or (parts.port is None and f"{netloc}:80" in self.insecure_registries)
        )

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
        limit: int = MAX_BODY_SIZE,
        what: str = "",
    ) -> _Answer | urllib3.BaseHTTPResponse:
        """One API call with auth, retries and redirects; raises the mapped error.

        Without ``stream`` the body is read here, at most ``limit`` bytes (BodyTooLarge
        names ``what`` beyond); with it the response is returned unread."""
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
        if resp.status not in expect:
            raise self._error(resp, host, repo, ref, push=push, kind=kind, method=method)
        if stream:
            return resp
        if method == "HEAD":
            _drain(resp)
            return _Answer(resp.status, resp.headers, resp.reason, b"")
        try:
            data, complete = read_at_most(resp, limit)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            if _cancelled():
                raise RequestCancelled("request cancelled") from None
            raise _transport_error(method, url, e) from None
        if not complete:
            kind_text = _content_type(resp)
            raise BodyTooLarge(
                f"{what or method + ' ' + url}"
                + (f" ({kind_text})" if kind_text else "")
                + f" is larger than the {_size_text(limit)} limit: refused"
            )
        return _Answer(resp.status, resp.headers, resp.reason, data)

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
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                resp = self._send_following_redirects(method, url, headers, body, verify, stream)
            except urllib3.exceptions.HTTPError as e:
                if _cancelled():
                    raise RequestCancelled("request cancelled") from None
                wait = min(delay, self.max_backoff) * (1 + random.random() / 4)
                # A refused connection is not transient enough to wait for; a timeout is
                # tried again only while the attempts stay within the deadline.
                if (
                    attempt == attempts
                    or "refused" in str(getattr(e, "reason", None) or e)
                    or (
                        _is_timeout(e)
                        and time.monotonic() - started + wait + self._attempt_time(e)
                        > self.deadline
                    )
                ):
                    raise _transport_error(method, url, e, self.timeout) from None
                _sleep(wait)
                delay *= 2
                continue
            if attempt < attempts and (resp.status == 429 or resp.status >= 500):
                wait = _retry_after(resp.headers.get("Retry-After"))
                _drain(resp)
                _sleep(min(wait if wait is not None else delay, self.max_backoff))
                delay *= 2
                continue
            return resp
        raise AssertionError("unreachable")

    def _attempt_time(self, e: Exception) -> float:
        """How long one more attempt may wait for nothing, after a timeout like ``e``: the
        connect timeout again when connecting timed out, else the read timeout."""
        reason = getattr(e, "reason", None) or e
        if isinstance(reason, urllib3.exceptions.ConnectTimeoutError) or isinstance(
            e, urllib3.exceptions.ConnectTimeoutError
        ):
            return self.timeout.connect_timeout or 0
        return self.timeout.read_timeout or 0

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
            if _cancelled():
                raise RequestCancelled("request cancelled")
            resp = pool.request(
                method,
                url,
                headers=headers,
                body=body,
                redirect=False,
                retries=False,
                preload_content=False,
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

    def _upload_location(self, resp: _Answer | urllib3.BaseHTTPResponse, host: str) -> str:
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
        body, complete = b"", True
        if method != "HEAD":
            try:
                body, complete = read_at_most(resp, MAX_ERROR_BODY_SIZE)
            except (urllib3.exceptions.HTTPError, OSError):
                resp.close()
                resp.release_conn()
        else:
            _drain(resp)
        status = resp.status
        if not complete:
            return RegistryError(
                f"received unexpected HTTP status: {status} {resp.reason or ''}".rstrip()
                + f" (its error body is larger than {_size_text(MAX_ERROR_BODY_SIZE)}: "
                "not read)",
                status=status,
            )
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
        with self._lock:
            withheld = self._withheld.get(host)
        if withheld and code in ("DENIED", "UNAUTHORIZED"):
            cause += (
                f" (the saved credentials for {shown_host} were not sent to the token "
                f"service {withheld}: it is neither HTTPS nor a listed insecure registry)"
            )
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
    """Read and drop what is left of a body to reuse its connection; past _DRAIN_LIMIT the
    connection is closed instead (a hostile body may never end)."""
    try:
        read_at_most(resp, _DRAIN_LIMIT)
    except (urllib3.exceptions.HTTPError, OSError):
        resp.close()
        resp.release_conn()


def _is_timeout(e: Exception) -> bool:
    reason = getattr(e, "reason", None) or e
    return isinstance(reason, urllib3.exceptions.TimeoutError) or isinstance(
        e, urllib3.exceptions.TimeoutError
    )


def _transport_error(
    method: str, url: str, e: Exception, timeout: urllib3.Timeout | None = None
) -> RegistryUnavailable:
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
    elif isinstance(reason, urllib3.exceptions.ReadTimeoutError) or isinstance(
        e, urllib3.exceptions.ReadTimeoutError
    ):
        wait = f" (no answer for {timeout.read_timeout:g} s)" if timeout else ""
        detail = f"net/http: timeout awaiting response headers{wait}"
    elif isinstance(reason, urllib3.exceptions.TimeoutError) or "timed out" in text:
        wait = f" (no connection within {timeout.connect_timeout:g} s)" if timeout else ""
        detail = f"dial tcp {netloc}: i/o timeout{wait}"
    else:
        detail = text
    return RegistryUnavailable(f'{verb} "{url}": {detail}')


def _auth_config(value: tuple[str, str] | AuthConfig) -> AuthConfig:
    """An explicit credential: (user, password), or a whole AuthConfig (tokens too)."""
    if isinstance(value, AuthConfig):
        return value
    user, password = value
    return AuthConfig(username=user, password=password)
