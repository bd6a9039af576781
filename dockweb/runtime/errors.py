"""Typed errors of the runtime.

Every error's ``str()`` is the message Docker prints for the same failure (without the
"Error response from daemon: " prefix, which the CLI adds), so the CLI and the dashboard
can show it unchanged.

Categories, as moby's errdefs and containerd's: ``NotFound`` (HTTP 404), ``Conflict`` (409),
``InvalidArgument`` (400), ``Unavailable`` (a service that could not be reached or broke off:
worth a retry). Concrete errors inherit their category; callers that mean "whatever is
missing" catch the category (``except NotFound``), not a list of classes.
"""

from __future__ import annotations


def os_reason(e: OSError) -> str:
    """An OSError as Go words it after the path: the C library's text, starting lower case
    ("no such file or directory")."""
    import os

    text = os.strerror(e.errno) if e.errno else str(e)
    return text[:1].lower() + text[1:]


class DockwebError(Exception):
    """Base class of every error the runtime raises on purpose."""


# -- categories ------------------------------------------------------------------------------


class NotFound(DockwebError):
    """What was named does not exist: an image, a container, a volume, a manifest (404)."""


class Conflict(DockwebError):
    """An operation is refused because of the state of what it touches: a reference or a
    container in use, a name taken, a container in the wrong state (Docker's ``conflict:``,
    HTTP 409)."""


class InvalidArgument(DockwebError):
    """The request itself is malformed or refused before anything is done (HTTP 400)."""


class Unavailable(DockwebError):
    """A service (the registry) could not be reached, timed out or broke off: transient,
    worth a retry."""


# -- errors ----------------------------------------------------------------------------------


class InvalidReference(InvalidArgument):
    """A reference string does not follow Docker's grammar."""


class RegistryError(DockwebError):
    """The registry answered with an error, or could not be reached.

    ``status`` is the HTTP status (None when there was no answer), ``code`` the registry's
    error code (``MANIFEST_UNKNOWN`` ...) when it gave one.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class AuthError(RegistryError):
    """The registry refused our credentials, or asked for ones we do not have."""


class RegistryUnavailable(RegistryError, Unavailable):
    """The registry could not be reached (refused, timed out, TLS failed) or a transfer broke
    off: Go's net/http words, ``Get "https://h/v2/": dial tcp h: connect: connection refused``."""


class ManifestUnknown(RegistryError, NotFound):
    """The registry has no manifest for that tag or digest."""


class DigestMismatch(DockwebError):
    """Content did not hash to the digest it was fetched by (or a DiffID did not match)."""


class UnsupportedManifest(DockwebError):
    """A manifest of a media type or schema we refuse (schema 1, unknown types)."""


class NoMatchingPlatform(DockwebError):
    """An index or manifest list has no entry for the requested platform."""


class LayerError(DockwebError):
    """A layer tar could not be applied."""


class BreakoutError(LayerError):
    """A layer tar entry tried to write outside its layer directory."""


class OverlayMountError(DockwebError):
    """An overlay could not be mounted; ``str(e)`` is the reason (mount(2)'s or mount(8)'s
    words), which callers put after what they were mounting."""


class ImageNotFound(NotFound):
    """No image matches a reference or ID: ``No such image: busybox:latest``."""


class StoreError(DockwebError):
    """The store on disk is inconsistent or could not be written (disk full ...)."""


class ContainerNotFound(NotFound):
    """No container matches an ID, ID prefix or name: ``No such container: x``."""


class ContainerConflict(Conflict):
    """A container operation is refused by the container's state or name (HTTP 409 in Docker):
    a name in use, removing a running container, pausing a paused one ..."""


class ContainerNotRunning(ContainerConflict):
    """``Container <id> is not running``."""


class InvalidContainerSpec(InvalidArgument):
    """The container's configuration is refused before anything is created (Docker's 400)."""


class ContainerStartError(DockwebError):
    """The container's process could not be started.

    ``exit_code`` is what ``docker run`` exits with: 127 the command was not found, 126 it
    could not be invoked, 125 anything else (the runtime or the daemon failed).
    """

    def __init__(self, message: str, exit_code: int = 125):
        super().__init__(message)
        self.exit_code = exit_code


class VolumeNotFound(NotFound):
    """``No such volume: x``."""


class VolumeInUse(Conflict):
    """``remove x: volume is in use - [<container ids>]``."""


class BuildError(DockwebError):
    """A build step failed or the Dockerfile is wrong; ``str(e)`` is Docker's message
    ("dockerfile parse error line 3: unknown instruction: FOO", "The command '/bin/sh -c
    exit 3' returned a non-zero code: 3"). ``line`` is the Dockerfile line (0: none),
    ``exit_code`` what ``docker build`` exits with (a failed RUN's code, else 1)."""

    def __init__(self, message: str, *, line: int = 0, exit_code: int = 1):
        super().__init__(message)
        self.line = line
        self.exit_code = exit_code
