"""`dockweb pull` as a client of the running `dockweb system service`, as `docker pull` is a
client of dockerd.

A `dockweb pull` that does the work itself first imports the runtime and sets Django up
(about 0.35 s, for the database mirror), and runs the layer explorer's analysis before it
exits: a warm pull (every base layer present) took 0.8-1.0 s, against 0.12 s for `docker
pull` and 0.09 s for the docker client through dockweb's socket. When the service is
running for the same store, this module sends the pull to it (``POST /images/create``, the
Engine API) and prints its progress exactly as the direct path prints the runtime's; the
service mirrors and analyzes after answering, as for any Engine API client. Nothing here
imports Django or the runtime beyond references.

The service is used only when all of these hold, else the command runs directly:
- ``DOCKWEB_PULL_SERVICE`` is not ``0``/``off``;
- the options are ones the service takes (``-q``, ``--platform``,
  ``--disable-content-trust``; not ``--all-tags``) and the name parses;
- ``DOCKWEB_API_SOCKET`` (default ``unix:///run/dockweb/docker.sock``) is a unix socket that
  answers ``/info`` with this command's store as its ``DockerRootDir`` (the store
  ``DOCKWEB_ROOT`` names, else ``$DOCKWEB_DATA/store``);
- the docker client's config (``$DOCKER_CONFIG``, ``~/.docker``) holds no credentials: the
  direct path uses them, the service uses its own.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
from urllib.parse import urlencode

OFF = ("0", "off", "no", "false")
DEFAULT_SOCKET = "unix:///run/dockweb/docker.sock"
API = "/v1.41"
# connecting and /info: a service that does not answer at once is not used
PROBE_TIMEOUT = 2.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def parse_args(args: list[str]) -> tuple[str, bool, str | None] | None:
    """(name, quiet, platform) from `pull`'s arguments; None for anything else."""
    name, quiet, platform = None, False, None
    it = iter(args)
    for arg in it:
        if arg in ("-q", "--quiet"):
            quiet = True
        elif arg == "--disable-content-trust" or arg.startswith("--disable-content-trust="):
            pass
        elif arg == "--platform":
            platform = next(it, None)
            if platform is None:
                return None
        elif arg.startswith("--platform="):
            platform = arg.split("=", 1)[1]
        elif arg.startswith("-") or name is not None:
            return None  # --all-tags, --help, a typo: the direct path says what it says
        else:
            name = arg
    return (name, quiet, platform) if name else None


def socket_path() -> str | None:
    value = os.environ.get("DOCKWEB_API_SOCKET") or DEFAULT_SOCKET
    return value[len("unix://") :] if value.startswith("unix://") else None


def store_root(package_root: str) -> str:
    """The store this command would use, as dockweb/settings.py computes it."""
    root = os.environ.get("DOCKWEB_ROOT")
    if not root:
        data = os.environ.get("DOCKWEB_DATA") or os.path.join(package_root, "var")
        root = os.path.join(data, "store")
    return os.path.realpath(root)


def _docker_credentials() -> bool:
    config = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    try:
        with open(os.path.join(config, "config.json"), "rb") as f:
            doc = json.loads(f.read() or b"{}")
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # unreadable: let the direct path report it
    return bool(doc.get("auths") or doc.get("credsStore") or doc.get("credHelpers"))


def _service_for(path: str, root: str) -> bool:
    conn = _UnixConnection(path, PROBE_TIMEOUT)
    try:
        conn.request("GET", API + "/info")
        resp = conn.getresponse()
        info = json.loads(resp.read(1 << 20))
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    served = info.get("DockerRootDir") if resp.status == 200 and isinstance(info, dict) else None
    return isinstance(served, str) and os.path.realpath(served) == root


def pull(args: list[str], package_root: str) -> int | None:
    """Run `dockweb pull ARGS` through the service and return its exit code, or None when
    the service cannot take it (nothing was sent: the caller runs the command directly)."""
    if os.environ.get("DOCKWEB_PULL_SERVICE", "").lower() in OFF:
        return None
    parsed = parse_args(args)
    path = socket_path()
    if parsed is None or path is None or not os.path.exists(path) or _docker_credentials():
        return None
    name, quiet, platform = parsed
    from dockweb.runtime import reference as refs
    from dockweb.runtime.errors import DockwebError

    try:
        ref = refs.parse_normalized_named(name)
    except DockwebError:
        return None
    if not _service_for(path, store_root(package_root)):
        return None
    if ref.is_name_only and not quiet:
        print("Using default tag: latest", flush=True)
    full = ref if ref.tag or ref.digest else refs.Reference(ref.domain, ref.path, "latest", None)
    query = {"fromImage": full.familiar_name, "tag": full.digest or full.tag}
    if platform:
        query["platform"] = platform
    return _stream(path, f"{API}/images/create?{urlencode(query)}", quiet, full.string())


def _stream(path: str, url: str, quiet: bool, reference: str) -> int:
    from dockweb.cli.progress import PullRenderer

    renderer = PullRenderer(sys.stdout, quiet=quiet)
    conn = _UnixConnection(path, None)
    try:
        conn.request("POST", url, body=b"", headers={"Content-Type": "text/plain"})
        resp = conn.getresponse()
        if resp.status != 200:
            return _error(_message(resp.read(1 << 20)) or f"HTTP {resp.status}")
        for line in resp:
            if not line.strip():
                continue
            msg = json.loads(line)
            if msg.get("error") or msg.get("errorDetail"):
                renderer.finish()
                detail = msg.get("errorDetail") or {}
                return _error(detail.get("message") or msg.get("error"))
            detail = msg.get("progressDetail") or {}
            if msg.get("id"):
                renderer(
                    {
                        "kind": "layer",
                        "id": msg["id"],
                        "status": msg.get("status", ""),
                        "current": detail.get("current"),
                        "total": detail.get("total"),
                    }
                )
            else:
                renderer({"kind": "message", "text": msg.get("status", "")})
    except (OSError, ValueError, http.client.HTTPException) as err:
        renderer.finish()
        return _error(f"the dockweb service's answer broke off: {err}")
    finally:
        conn.close()
    renderer.finish()
    print(reference, flush=True)
    return 0


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip()
    return doc.get("message", "") if isinstance(doc, dict) else ""


def _error(message: str) -> int:
    sys.stdout.flush()
    print(f"Error response from daemon: {message}", file=sys.stderr, flush=True)
    return 1
