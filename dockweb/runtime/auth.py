"""Registry authentication: challenges, credentials, bearer tokens.

- ``parse_www_authenticate``: RFC 7235 challenges as distribution's ``challenge`` package
  reads them (several challenges, quoted values with commas and escapes).
- ``DockerConfig``: credentials from a docker CLI ``config.json`` (``auths``,
  ``credsStore``, ``credHelpers``), looked up by host the way docker/cli's file store does.
- ``TokenCache`` and ``fetch_token``: Docker's token authentication (GET with basic auth, or
  the OAuth2 POST form with a refresh token when there is an identity token), tokens cached
  per (realm, service, scope) until ``issued_at + expires_in`` (60 s when unstated).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import urllib3

from dockweb.runtime.errors import AuthError, RegistryError, RegistryUnavailable

#: The key docker/cli stores Docker Hub credentials under.
INDEX_SERVER = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: distribution's minimumTokenLifetimeSeconds: tokens with a shorter or no expires_in live 60 s.
MIN_TOKEN_LIFETIME = 60
#: The client_id Docker sends in the OAuth2 form.
CLIENT_ID = "docker"
#: The largest token answer read (containers/image's MaxAuthTokenBodySize); a longer one is
#: refused after reading one byte more, without reading the rest.
MAX_TOKEN_ANSWER_SIZE = 1 << 20
#: What is read of a refusal's body for its message.
MAX_TOKEN_ERROR_SIZE = 64 << 10


# --- WWW-Authenticate --------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: dict[str, str]

    def __hash__(self) -> int:
        return hash((self.scheme, tuple(sorted(self.params.items()))))


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def parse_www_authenticate(header: str | Iterable[str]) -> list[Challenge]:
    """Parse one or several ``WWW-Authenticate`` values into challenges, in order.

    Scheme and parameter names are lower-cased; quoted values keep their commas and lose
    their backslash escapes. Text that cannot be parsed ends the parse (no exception), as
    with distribution's parser.
    """
    if not isinstance(header, str):
        out: list[Challenge] = []
        for h in header:
            out.extend(parse_www_authenticate(h))
        return out
    s, n = header, len(header)
    challenges: list[Challenge] = []

    def skip_ws(i: int) -> int:
        while i < n and s[i] in " \t":
            i += 1
        return i

    def token(i: int) -> tuple[str, int]:
        j = i
        while j < n and s[j] in _TOKEN_CHARS:
            j += 1
        return s[i:j], j

    def param_at(i: int) -> tuple[str, int] | None:
        """``name`` and the index after ``=`` if a ``name=`` parameter starts at i."""
        name, j = token(i)
        j = skip_ws(j)
        if name and j < n and s[j] == "=":
            return name, skip_ws(j + 1)
        return None

    i = 0
    while i < n:
        i = skip_ws(i)
        while i < n and s[i] in ", \t":
            i += 1
        scheme, i = token(i)
        if not scheme:
            break
        params: dict[str, str] = {}
        challenges.append(Challenge(scheme.lower(), params))
        i = skip_ws(i)
        while (found := param_at(i)) is not None:
            name, j = found
            if j < n and s[j] == '"':
                j += 1
                chars = []
                while j < n and s[j] != '"':
                    if s[j] == "\\" and j + 1 < n:
                        j += 1
                    chars.append(s[j])
                    j += 1
                value, j = "".join(chars), j + 1
            else:
                value, j = token(j)
            params[name.lower()] = value
            i = skip_ws(j)
            if i < n and s[i] == ",":
                i = skip_ws(i + 1)
                continue  # another parameter, or (param_at fails) the next challenge
            break
        if i < n and s[i] not in _TOKEN_CHARS and s[i] not in ", \t":
            break
    return challenges


# --- credentials -------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthConfig:
    """Credentials for one registry; all fields may be empty (anonymous)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""  # OAuth2 refresh token, from `docker login` to Docker Hub
    registry_token: str = ""  # a bearer token to use as is

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)


def convert_to_hostname(address: str) -> str:
    """docker/cli ``credentials.ConvertToHostname``: drop the scheme and any path."""
    for prefix in ("http://", "https://"):
        if address.startswith(prefix):
            address = address[len(prefix) :]
            break
    return address.split("/", 1)[0]


def credential_key(host: str) -> str:
    """The key docker/cli uses for ``host`` in ``auths``: the index URL for Docker Hub."""
    host = convert_to_hostname(host)
    return INDEX_SERVER if host in DOCKER_HUB_HOSTS else host


def _decode_auth(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=False).decode()
    except (ValueError, UnicodeDecodeError):
        raise AuthError("Invalid auth configuration file") from None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        raise AuthError("Invalid auth configuration file")
    return user, password.strip("\x00")


def auth_config_from_entry(entry: dict) -> AuthConfig:
    """The AuthConfig of a ``config.json`` ``auths`` entry, or of the JSON a client sends
    in ``X-Registry-Auth``: ``username``/``password`` (or ``auth``, base64 of
    ``user:password``), ``identitytoken``, ``registrytoken``. Raises AuthError for an
    ``auth`` that does not decode."""
    user, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if entry.get("auth"):
        user, password = _decode_auth(entry["auth"])
    return AuthConfig(
        username=user,
        password=password,
        identity_token=str(entry.get("identitytoken") or ""),
        registry_token=str(entry.get("registrytoken") or ""),
    )


class DockerConfig:
    """Credentials read from a docker CLI ``config.json``.

    ``get(host)`` looks in ``credHelpers[host]``, else ``credsStore``, else ``auths``
    (exact key first, then any key whose hostname matches, as docker/cli's file store).
    A helper that is not installed is ignored and ``auths`` is used instead.
    """

    def __init__(
        self, data: dict, *, helper_runner: Callable[[str, str], dict | None] | None = None
    ):
        self.auths: dict[str, dict] = dict(data.get("auths") or {})
        self.creds_store: str = data.get("credsStore") or ""
        self.cred_helpers: dict[str, str] = dict(data.get("credHelpers") or {})
        self._run_helper = helper_runner or run_credential_helper

    @classmethod
    def load(cls, path: str | os.PathLike | None) -> DockerConfig:
        """Read ``path`` (default ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``).

        A missing file means no credentials.
        """
        if path is None:
            base = os.environ.get("DOCKER_CONFIG") or os.path.join(Path.home(), ".docker")
            path = os.path.join(base, "config.json")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return cls({})
        except (OSError, ValueError) as e:
            raise AuthError(f"loading config file {path}: {e}") from None
        return cls(data if isinstance(data, dict) else {})

    def get(self, host: str) -> AuthConfig:
        key = credential_key(host)
        hostname = convert_to_hostname(host)
        helper = self.cred_helpers.get(key) or self.cred_helpers.get(hostname) or self.creds_store
        if helper:
            got = self._run_helper(helper, key)
            if got is not None:
                user, secret = got.get("Username", ""), got.get("Secret", "")
                if user == "<token>":
                    return AuthConfig(identity_token=secret)
                return AuthConfig(username=user, password=secret)
        entry = self.auths.get(key)
        if entry is None:
            for k, v in self.auths.items():
                if convert_to_hostname(k) == convert_to_hostname(key):
                    entry = v
                    break
        if not entry:
            return AuthConfig()
        return auth_config_from_entry(entry)


def run_credential_helper(helper: str, server: str) -> dict | None:
    """``docker-credential-<helper> get``; None when not installed or it has no entry."""
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        return None
    try:
        proc = subprocess.run(
            [program, "get"], input=server.encode(), capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise AuthError(f"error getting credentials - err: {e}") from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        if "credentials not found" in out:
            return None
        raise AuthError(
            f"error getting credentials - err: exit status {proc.returncode}, out: `{out}`"
        )
    try:
        return json.loads(out)
    except ValueError:
        raise AuthError(f"error getting credentials - err: invalid output `{out}`") from None


# --- bearer tokens -----------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    token: str
    expires_at: float
    refresh_token: str = ""


class TokenCache:
    """Bearer tokens by (realm, service, scope); thread-safe.

    A token is reused until its expiry (issued_at + expires_in). ``clock`` is injectable so
    tests can move time forward.
    """

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._tokens: dict[tuple[str, str, str], Token] = {}
        self._lock = threading.Lock()
        # One fetch per key at a time: three layer downloads starting together share it.
        self._key_locks: dict[tuple[str, str, str], threading.Lock] = {}

    def get(self, realm: str, service: str, scope: str) -> Token | None:
        with self._lock:
            tok = self._tokens.get((realm, service, scope))
            if tok is not None and self._clock() < tok.expires_at:
                return tok
            return None

    def get_or_fetch(
        self, realm: str, service: str, scope: str, fetch: Callable[[], Token]
    ) -> Token:
        key = (realm, service, scope)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            tok = self.get(*key)
            if tok is None:
                tok = fetch()
                with self._lock:
                    self._tokens[key] = tok
            return tok

    def invalidate(self, realm: str, service: str, scope: str) -> None:
        with self._lock:
            self._tokens.pop((realm, service, scope), None)

    def now(self) -> float:
        return self._clock()


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def fetch_token(
    pool: urllib3.PoolManager,
    challenge: Challenge,
    scopes: list[str],
    creds: AuthConfig,
    *,
    now: float | None = None,
    timeout: urllib3.Timeout | None = None,
) -> Token:
    """Get a bearer token from the challenge's realm for ``scopes``.

    With an identity token: the OAuth2 POST form (grant_type=refresh_token). Otherwise a GET
    with ``service``, one ``scope`` per scope and, with credentials, ``account`` and basic
    auth. Raises AuthError on 401/403 ("unauthorized: ..."), RegistryError otherwise.
    """
    realm = challenge.params.get("realm", "")
    service = challenge.params.get("service", "")
    if not realm:
        raise AuthError("unauthorized: bearer challenge without realm")
    fetched_at = time.time() if now is None else now
    headers = {"User-Agent": "dockweb"}
    try:
        if creds.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "service": service,
                "client_id": CLIENT_ID,
                "scope": " ".join(scopes),
            }
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            resp = pool.request(
                "POST",
                realm,
                body=urlencode(form),
                headers=headers,
                timeout=timeout,
                redirect=False,
                retries=False,
                preload_content=False,
            )
        else:
            query: list[tuple[str, str]] = []
            if service:
                query.append(("service", service))
            query += [("scope", s) for s in scopes]
            if creds.username:
                query.append(("account", creds.username))
                headers.update(
                    urllib3.make_headers(basic_auth=f"{creds.username}:{creds.password}")
                )
            sep = "&" if "?" in realm else "?"
            url = realm + (sep + urlencode(query) if query else "")
            resp = pool.request(
                "GET", url, headers=headers, timeout=timeout, retries=False, preload_content=False
            )
        limit = MAX_TOKEN_ANSWER_SIZE if resp.status == 200 else MAX_TOKEN_ERROR_SIZE
        body, complete = read_at_most(resp, limit)
    except urllib3.exceptions.HTTPError as e:
        raise RegistryUnavailable(f'Get "{realm}": {e}') from None
    if resp.status == 200 and not complete:
        raise RegistryError(
            f"token request to {realm}: the answer is larger than "
            f"{MAX_TOKEN_ANSWER_SIZE >> 20} MiB: refused"
        )
    if resp.status in (401, 403):
        details = ""
        try:
            doc = json.loads(body)
            details = doc.get("details") or ""
            if not details and doc.get("errors"):
                details = doc["errors"][0].get("message", "")
        except (ValueError, AttributeError, TypeError):
            pass
        raise AuthError(f"unauthorized: {details or 'authentication required'}", status=resp.status)
    if resp.status != 200:
        raise RegistryError(
            f"token request to {realm} failed: "
            f"received unexpected HTTP status: {resp.status} {resp.reason}",
            status=resp.status,
        )
    try:
        doc = json.loads(body)
    except ValueError:
        raise RegistryError(f"token request to {realm}: invalid JSON response") from None
    token = doc.get("token") or doc.get("access_token") or ""
    if not token:
        raise AuthError(
            "unauthorized: authorization server did not include a token in the response"
        )
    expires_in = doc.get("expires_in") or 0
    if not isinstance(expires_in, int | float) or expires_in < MIN_TOKEN_LIFETIME:
        expires_in = MIN_TOKEN_LIFETIME
    issued_at = _parse_time(doc.get("issued_at")) or fetched_at
    return Token(token, issued_at + expires_in, doc.get("refresh_token", ""))


def read_at_most(resp: urllib3.BaseHTTPResponse, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the body, read as it comes: ``(data, complete)``.

    A body announced or found longer than ``limit`` stops being read at ``limit + 1`` bytes
    and its connection is closed (it cannot be reused with bytes unread)."""
    length = resp.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > limit:
        resp.close()
        resp.release_conn()
        return b"", False
    buf = bytearray()
    while len(buf) <= limit:
        chunk = resp.read(min(64 << 10, limit + 1 - len(buf)))
        if not chunk:
            break
        buf += chunk
    if len(buf) > limit:
        resp.close()
        resp.release_conn()
        return bytes(buf[:limit]), False
    resp.release_conn()
    return bytes(buf), True


def repository_scope(repo: str, actions: Iterable[str]) -> str:
    """``repository:<repo>:<actions>`` as Docker writes it (actions in pull, push order)."""
    order = {"pull": 0, "push": 1}
    acts = sorted(set(actions), key=lambda a: (order.get(a, 2), a))
    return f"repository:{repo}:{','.join(acts)}"
