"""Image references, parsed and normalized exactly as Docker 20.10 does.

A port of ``github.com/docker/distribution/reference`` (v2.8, as vendored by Docker 20.10:
regexp.go, reference.go, normalize.go, helpers.go) with ``github.com/opencontainers/go-digest``
v1.0.0 digest validation. Grammar::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain '/'] path-component ['/' path-component]*
    domain           := domain-component ['.' domain-component]* [':' port-number]
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component   := alpha-numeric [separator alpha-numeric]*
    alpha-numeric    := /[a-z0-9]+/
    separator        := /[_.]|__|[-]*/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex   (validated as go-digest does)

Every failure raises :class:`InvalidReference` whose ``str()`` is Docker's message, e.g.
``invalid reference format: repository name must be lowercase``. The Go regexps use
leftmost-first matching, as Python's ``re`` does, so submatches agree; they are anchored with
``\\A``/``\\Z`` (Go's ``$`` never matches before a trailing newline, Python's does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from dockweb.runtime.errors import InvalidReference

NAME_TOTAL_LENGTH_MAX = 255

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_NAME = "library"
DEFAULT_TAG = "latest"
# Where the default domain's registry API actually lives.
DEFAULT_REGISTRY_HOST = "registry-1.docker.io"

# Docker's error messages, word for word.
ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_TAG_INVALID_FORMAT = "invalid tag format"
ERR_DIGEST_INVALID_FORMAT = "invalid digest format"
ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
ERR_NAME_EMPTY = "repository name must have at least one component"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_NAME_NOT_CANONICAL = "repository name must be canonical"
ERR_NORMALIZED_UPPERCASE = "invalid reference format: repository name must be lowercase"
# go-digest v1.0.0
ERR_CHECKSUM_INVALID_FORMAT = "invalid checksum digest format"
ERR_CHECKSUM_INVALID_LENGTH = "invalid checksum digest length"
ERR_CHECKSUM_UNSUPPORTED = "unsupported digest algorithm"


# --- regexp.go -------------------------------------------------------------------------------


def _optional(*res: str) -> str:
    return "(?:" + "".join(res) + ")?"


def _repeated(*res: str) -> str:
    return "(?:" + "".join(res) + ")+"


def _capture(*res: str) -> str:
    return "(" + "".join(res) + ")"


def _anchored(*res: str) -> re.Pattern[str]:
    return re.compile(r"\A" + "".join(res) + r"\Z", re.ASCII)


_ALPHA_NUMERIC = r"[a-z0-9]+"
# distribution writes the dash separator as [-]*; the empty match adds nothing (alphanumeric
# runs already concatenate) but makes Python's backtracking engine exponential on a name that
# fails to match ("aaaaaaaaaaaaaaaaaaaa!" took minutes), unlike Go's RE2. [-]+ is the same
# language, matched in linear time.
_SEPARATOR = r"(?:[._]|__|[-]+)"
_NAME_COMPONENT = _ALPHA_NUMERIC + _optional(_repeated(_SEPARATOR, _ALPHA_NUMERIC))
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = (
    _DOMAIN_COMPONENT + _optional(_repeated(r"\.", _DOMAIN_COMPONENT)) + _optional(r":", r"[0-9]+")
)
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_NAME = _optional(_DOMAIN, r"/") + _NAME_COMPONENT + _optional(_repeated(r"/", _NAME_COMPONENT))

ANCHORED_TAG_RE = _anchored(_TAG)
ANCHORED_DIGEST_RE = _anchored(_DIGEST)
ANCHORED_NAME_RE = _anchored(
    _optional(_capture(_DOMAIN), r"/"),
    _capture(_NAME_COMPONENT, _optional(_repeated(r"/", _NAME_COMPONENT))),
)
REFERENCE_RE = _anchored(
    _capture(_NAME), _optional(r":", _capture(_TAG)), _optional(r"@", _capture(_DIGEST))
)
ANCHORED_IDENTIFIER_RE = _anchored(r"([a-f0-9]{64})")
ANCHORED_SHORT_IDENTIFIER_RE = _anchored(r"([a-f0-9]{6,64})")

# go-digest
_GO_DIGEST_RE = re.compile(r"\A[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z", re.ASCII)
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX_RE = re.compile(r"\A[a-f0-9]*\Z", re.ASCII)


def validate_go_digest(s: str) -> str:
    """Validate ``algorithm:hex`` as go-digest v1.0.0 ``Digest.Validate`` does; return it.

    Raises :class:`InvalidReference` with ``invalid checksum digest format``,
    ``unsupported digest algorithm`` or ``invalid checksum digest length``.
    """
    i = s.find(":")
    if i <= 0 or i + 1 == len(s):
        raise InvalidReference(ERR_CHECKSUM_INVALID_FORMAT)
    algorithm, encoded = s[:i], s[i + 1 :]
    if algorithm not in _DIGEST_HEX_LENGTHS:
        if not _GO_DIGEST_RE.match(s):
            raise InvalidReference(ERR_CHECKSUM_INVALID_FORMAT)
        raise InvalidReference(ERR_CHECKSUM_UNSUPPORTED)
    if len(encoded) != _DIGEST_HEX_LENGTHS[algorithm]:
        raise InvalidReference(ERR_CHECKSUM_INVALID_LENGTH)
    if not _LOWER_HEX_RE.match(encoded):
        raise InvalidReference(ERR_CHECKSUM_INVALID_FORMAT)
    return s


# --- reference.go ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``domain`` is empty only for references not normalized.

    A digest-only reference (an image ID, from :func:`parse_any_reference`) has an empty
    ``domain`` and ``path`` and only a ``digest``.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name, ``docker.io/library/busybox``."""
        if not self.domain:
            return self.path
        return f"{self.domain}/{self.path}"

    @property
    def is_digested(self) -> bool:
        return self.digest is not None

    @property
    def is_tagged(self) -> bool:
        return self.tag is not None

    @property
    def is_name_only(self) -> bool:
        """True when the reference has neither tag nor digest (``IsNameOnly``)."""
        return self.tag is None and self.digest is None

    @property
    def is_digest_only(self) -> bool:
        """True for an ID such as ``sha256:<hex>``, which names no repository."""
        return not self.path and self.digest is not None

    def string(self) -> str:
        """The full form: ``name``, ``name:tag``, ``name@digest`` or ``name:tag@digest``."""
        if self.is_digest_only:
            return self.digest or ""
        out = self.name
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def __str__(self) -> str:
        return self.string()

    def familiar(self) -> Reference:
        """The same reference with ``docker.io`` and ``library/`` dropped (``Familiar()``)."""
        if self.domain != DEFAULT_DOMAIN:
            return self
        path = self.path
        parts = path.split("/")
        # Only official repositories, exactly "library/<name>", lose the prefix.
        if len(parts) == 2 and parts[0] == OFFICIAL_REPO_NAME:
            path = parts[1]
        return replace(self, domain="", path=path)

    @property
    def familiar_name(self) -> str:
        """``busybox``, ``user/app``, ``localhost:5000/app`` (``FamiliarName``)."""
        return self.familiar().name

    def familiar_string(self) -> str:
        """``busybox:latest``, ``user/app@sha256:...`` (``FamiliarString``)."""
        return self.familiar().string()

    def trim_named(self) -> Reference:
        """The name alone, without tag or digest (``TrimNamed``)."""
        return replace(self, tag=None, digest=None)

    def with_tag(self, tag: str) -> Reference:
        """The same name with ``tag``; a digest, if any, is kept (``WithTag``)."""
        if not ANCHORED_TAG_RE.match(tag):
            raise InvalidReference(ERR_TAG_INVALID_FORMAT)
        return replace(self, tag=tag)

    def with_digest(self, digest: str) -> Reference:
        """The same name with ``digest``; a tag, if any, is kept (``WithDigest``)."""
        if not ANCHORED_DIGEST_RE.match(digest):
            raise InvalidReference(ERR_DIGEST_INVALID_FORMAT)
        return replace(self, digest=digest)


def parse(s: str) -> Reference:
    """Parse without normalizing (``reference.Parse``): ``busybox`` keeps an empty domain."""
    m = REFERENCE_RE.match(s)
    if m is None:
        if s == "":
            raise InvalidReference(ERR_NAME_EMPTY)
        if REFERENCE_RE.match(s.lower()) is not None:
            raise InvalidReference(ERR_NAME_CONTAINS_UPPERCASE)
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT)
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG)
    nm = ANCHORED_NAME_RE.match(name)
    if nm is not None:
        domain, path = nm.group(1) or "", nm.group(2)
    else:
        domain, path = "", name
    if digest:
        validate_go_digest(digest)
    # Go keeps "" for an absent tag; the regexp cannot match an empty tag anyway.
    return Reference(domain=domain, path=path, tag=tag or None, digest=digest or None)


def with_name(name: str) -> Reference:
    """A name-only reference from a full name (``WithName``); no normalization."""
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG)
    m = ANCHORED_NAME_RE.match(name)
    if m is None:
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT)
    return Reference(domain=m.group(1) or "", path=m.group(2))


# --- normalize.go ----------------------------------------------------------------------------


def split_docker_domain(name: str) -> tuple[str, str]:
    """Split ``name`` into domain and remainder, defaulting to ``docker.io`` (+ ``library/``)."""
    i = name.find("/")
    if i == -1 or (not any(c in name[:i] for c in ".:") and name[:i] != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = name[:i], name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_NAME + "/" + remainder
    return domain, remainder


def parse_normalized_named(s: str) -> Reference:
    """Parse a reference as typed by a person (``ParseNormalizedNamed``).

    ``busybox`` becomes ``docker.io/library/busybox``; tag and digest are kept as given (no
    default tag is added: see :func:`parse_docker_ref`).
    """
    if ANCHORED_IDENTIFIER_RE.match(s):
        raise InvalidReference(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = split_docker_domain(s)
    tag_sep = remainder.find(":")
    remote_name = remainder[:tag_sep] if tag_sep > -1 else remainder
    if remote_name.lower() != remote_name:
        raise InvalidReference(ERR_NORMALIZED_UPPERCASE)
    ref = parse(domain + "/" + remainder)
    if not ref.path:  # pragma: no cover - the domain prefix always gives a name
        raise InvalidReference(f"reference {ref.string()} has no name")
    return ref


def tag_name_only(ref: Reference) -> Reference:
    """Add the ``latest`` tag to a reference with neither tag nor digest (``TagNameOnly``)."""
    if ref.is_name_only:
        return ref.with_tag(DEFAULT_TAG)
    return ref


with_default_tag = tag_name_only


def parse_docker_ref(s: str) -> Reference:
    """Normalize as ``docker pull`` does (``ParseDockerRef``).

    The result is either tagged or digested, never both: ``busybox`` gives
    ``docker.io/library/busybox:latest``; ``busybox:1@sha256:...`` drops the tag and gives
    ``docker.io/library/busybox@sha256:...``.
    """
    named = parse_normalized_named(s)
    if named.tag is not None and named.digest is not None:
        return with_name(named.name).with_digest(named.digest)
    return tag_name_only(named)


def parse_any_reference(s: str) -> Reference:
    """Parse an image ID, a digest or a familiar name (``ParseAnyReference``).

    A 64-hex string is an ID (``sha256:<hex>``); ``sha256:<hex>`` is taken as a digest;
    anything else goes through :func:`parse_normalized_named`.
    """
    if ANCHORED_IDENTIFIER_RE.match(s):
        return Reference(domain="", path="", digest="sha256:" + s)
    try:
        validate_go_digest(s)
    except InvalidReference:
        return parse_normalized_named(s)
    return Reference(domain="", path="", digest=s)


def is_short_identifier(s: str) -> bool:
    """True for 6 to 64 lowercase hex characters, a possible ID prefix."""
    return ANCHORED_SHORT_IDENTIFIER_RE.match(s) is not None


def registry_host(domain: str) -> str:
    """The host serving a domain's registry API: ``docker.io`` is ``registry-1.docker.io``."""
    if domain == DEFAULT_DOMAIN:
        return DEFAULT_REGISTRY_HOST
    return domain
