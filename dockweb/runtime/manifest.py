"""Manifests, indexes and platforms.

Media types follow the Docker v2 schema 2 and OCI image-spec documents. Platform
normalisation and matching follow containerd's ``platforms`` package (``Normalize``,
``Only``, ``platformVector``), which is what Docker uses to pick an entry from a manifest
list.
"""

from __future__ import annotations

import json
import platform as _pyplatform
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from dockweb.runtime.errors import NoMatchingPlatform, UnsupportedManifest

# Docker v2 schema 2
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
# Docker v2 schema 1 (refused)
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# OCI image-spec
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
#: What we send in ``Accept`` for manifests: every type we can parse, best first.
SUPPORTED_MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)

#: Layer media type -> compression ("gzip", "zstd" or "none").
LAYER_COMPRESSION = {
    DOCKER_LAYER: "gzip",
    DOCKER_FOREIGN_LAYER: "gzip",
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: "none",
    OCI_LAYER_NONDIST_GZIP: "gzip",
    OCI_LAYER_NONDIST_ZSTD: "zstd",
}
#: Layers that registries may not hold: fetched from their ``urls`` instead.
FOREIGN_LAYER_TYPES = frozenset(
    {DOCKER_FOREIGN_LAYER, OCI_LAYER_NONDIST, OCI_LAYER_NONDIST_GZIP, OCI_LAYER_NONDIST_ZSTD}
)

# Annotations BuildKit puts on attestation entries of an index.
ANNOTATION_REFERENCE_TYPE = "vnd.docker.reference.type"
ATTESTATION_MANIFEST = "attestation-manifest"

SCHEMA1_DEPRECATION = (
    "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, "
    "schema 1 support is disabled by default and will be removed in an upcoming release. "
    "Suggest the author of {ref} to upgrade the image to the OCI Format or Docker Image "
    "manifest v2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/"
)


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def string(self) -> str:
        """``os/arch[/variant]``, as containerd's ``platforms.Format``."""
        parts = [self.os or "unknown", self.architecture or "unknown"]
        if self.variant:
            parts.append(self.variant)
        return "/".join(parts)

    def normalize(self) -> Platform:
        arch, variant = _normalize_arch(self.architecture, self.variant)
        return Platform(
            (self.os or "").lower().replace("macos", "darwin"),
            arch,
            variant,
            self.os_version,
            self.os_features,
        )

    @classmethod
    def from_json(cls, data: dict) -> Platform:
        strings = ("os", "architecture", "variant", "os.version")
        if any(not isinstance(data.get(k) or "", str) for k in strings) or not isinstance(
            data.get("os.features") or [], list
        ):
            raise UnsupportedManifest("invalid platform in manifest")
        return cls(
            os=data.get("os", ""),
            architecture=data.get("architecture", ""),
            variant=data.get("variant", "") or "",
            os_version=data.get("os.version", "") or "",
            os_features=tuple(data.get("os.features") or ()),
        )


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    platform: Platform | None = None

    @property
    def compression(self) -> str:
        """ "gzip", "zstd" or "none"; raises UnsupportedManifest for a non-layer type."""
        try:
            return LAYER_COMPRESSION[self.media_type]
        except KeyError:
            raise UnsupportedManifest(f"unsupported layer media type {self.media_type}") from None

    @property
    def is_attestation(self) -> bool:
        if self.annotations.get(ANNOTATION_REFERENCE_TYPE) == ATTESTATION_MANIFEST:
            return True
        p = self.platform
        return p is not None and p.os == "unknown" and p.architecture == "unknown"

    @classmethod
    def from_json(cls, data: dict) -> Descriptor:
        """Raises UnsupportedManifest when ``data`` is not a well-typed descriptor."""
        if not isinstance(data, dict):
            raise UnsupportedManifest("invalid descriptor in manifest: not an object")
        try:
            media_type = data["mediaType"]
            digest = data["digest"]
            size = int(data["size"])
        except (KeyError, TypeError, ValueError) as e:
            raise UnsupportedManifest(f"invalid descriptor in manifest: missing {e}") from None
        if (
            not isinstance(media_type, str)
            or not isinstance(digest, str)
            or not isinstance(data.get("annotations") or {}, dict)
            or not isinstance(data.get("urls") or [], list)
        ):
            raise UnsupportedManifest("invalid descriptor in manifest: wrong field types")
        plat = data.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            urls=tuple(data.get("urls") or ()),
            annotations=dict(data.get("annotations") or {}),
            platform=Platform.from_json(plat) if isinstance(plat, dict) else None,
        )


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def _descriptors(doc: dict, key: str) -> tuple[Descriptor, ...]:
    items = doc.get(key) or []  # null is an empty list, as Go's json reads it
    if not isinstance(items, list):
        raise UnsupportedManifest(f"invalid manifest: {key} is not a list")
    return tuple(Descriptor.from_json(d) for d in items)


def parse_manifest(
    data: bytes, content_type: str | None, *, ref: str | None = None
) -> Manifest | Index:
    """Parse a manifest or index by its Content-Type (or its own ``mediaType``).

    ``ref`` (the familiar reference, e.g. ``docker.io/library/ubuntu:10.04``) only goes into
    the schema 1 refusal, whose text is Docker 26's.
    Raises UnsupportedManifest for schema 1, unknown types and malformed JSON.
    """
    ctype = (content_type or "").split(";")[0].strip().lower()
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise UnsupportedManifest(f"invalid manifest: {e}") from None
    if not isinstance(doc, dict):
        raise UnsupportedManifest("invalid manifest: not a JSON object")
    inner = doc.get("mediaType") or ""
    if not isinstance(inner, str):
        raise UnsupportedManifest("invalid manifest: mediaType is not a string")
    # Registries answer with text/plain or application/json for old pushes; fall back to the
    # document's own mediaType, and to schemaVersion 1 detection.
    media_type = ctype if ctype and ctype not in ("application/json", "text/plain") else inner
    if (
        media_type in (DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED)
        or doc.get("schemaVersion") == 1
    ):
        raise UnsupportedManifest(SCHEMA1_DEPRECATION.format(ref=ref or "this image"))
    if not media_type:
        # OCI allows omitting mediaType: tell an index from a manifest by its shape.
        if "manifests" in doc:
            media_type = OCI_INDEX
        elif "config" in doc:
            media_type = OCI_MANIFEST
    if inner and inner != media_type:
        raise UnsupportedManifest(
            f"manifest media type mismatch: Content-Type {media_type}, document {inner}"
        )
    if media_type in INDEX_TYPES:
        return Index(media_type, _descriptors(doc, "manifests"))
    if media_type in MANIFEST_TYPES:
        if "config" not in doc:
            raise UnsupportedManifest("invalid manifest: no config descriptor")
        return Manifest(
            media_type, Descriptor.from_json(doc["config"]), _descriptors(doc, "layers")
        )
    raise UnsupportedManifest(f"unsupported manifest media type {media_type or '(none)'}")


# --- platforms ---------------------------------------------------------------------------


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = (arch or "").lower(), (variant or "").lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


# one part of a platform specifier, as containerd/platforms' specifierRe (v8.2 is a variant)
_SPECIFIER = re.compile(r"[A-Za-z0-9_.-]+")


def parse_platform(spec: str) -> Platform:
    """Parse ``os[/arch[/variant]]`` (or a bare arch) as containerd's ``platforms.Parse``."""
    parts = spec.strip().split("/")
    if not spec or len(parts) > 3 or not all(_SPECIFIER.fullmatch(p) for p in parts):
        raise ValueError(f'"{spec}": invalid platform specifier')
    if len(parts) == 1:
        # A lone known OS means this machine's arch; otherwise it is an arch on Linux.
        name = parts[0].lower()
        if name in _KNOWN_OS:
            host = host_platform()
            return Platform(name, host.architecture, host.variant).normalize()
        return Platform("linux", name).normalize()
    os_, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else ""
    return Platform(os_, arch, variant).normalize()


_KNOWN_OS = frozenset(
    "aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd "
    "plan9 solaris windows zos".split()
)


def _arm_variant_from_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() == "cpu architecture":
                    value = value.strip()
                    return "v" + value if value.isdigit() else value
    except OSError:
        pass
    return ""


def host_platform() -> Platform:
    """This machine's platform, as containerd's ``platforms.DefaultSpec`` normalised."""
    machine = _pyplatform.machine().lower()
    os_ = _pyplatform.system().lower() or "linux"
    variant = ""
    if machine.startswith("armv") or machine in ("arm", "armhf", "armel"):
        variant = _arm_variant_from_cpuinfo()
        if not variant and machine.startswith("armv"):
            variant = "v" + machine[4]  # armv7l -> v7, armv6l -> v6
        machine = "arm"
    elif machine in ("aarch64", "arm64"):
        variant = _arm_variant_from_cpuinfo()
    return Platform(os_, machine, variant).normalize()


def platform_vector(platform: Platform) -> list[Platform]:
    """The platforms ``platform`` can run, best first (containerd's ``platformVector``)."""
    p = platform
    vector = [p]

    def same(arch: str, variant: str) -> Platform:
        return Platform(p.os, arch, variant, p.os_version, p.os_features)

    if p.architecture == "amd64":
        level = _int_variant(p.variant)
        if level is not None and level > 1:
            vector += [same("amd64", f"v{v}") for v in range(level - 1, 0, -1)]
        vector.append(same("386", ""))
    elif p.architecture == "arm":
        level = _int_variant(p.variant)
        if level is not None and level > 5:
            vector += [same("arm", f"v{v}") for v in range(level - 1, 4, -1)]
    elif p.architecture == "arm64":
        variant = p.variant or "v8"
        major_s, dot, minor_s = variant.partition(".")
        major = _int_variant(major_s)
        if major is not None and major >= 8:
            minor = int(minor_s) if dot and len(variant) == 4 and minor_s.isdigit() else 0
            if major == 9:
                for m in range(minor - 1, -1, -1):
                    vector.append(same("arm64", f"v9.{m}" if m else "v9"))
                # v9.0 diverged from v8.5: v9.x runs v8.{x+5}
                minor, major = minor + 5, 8
                vector.append(same("arm64", f"v8.{minor}"))
            for m in range(minor - 1, -1, -1):
                vector.append(same("arm64", f"v{major}.{m}" if m else f"v{major}"))
        if variant.startswith(("v8.", "v9.")):
            variant = "v8"
        vector += platform_vector(same("arm", variant))
    return vector


def _int_variant(variant: str) -> int | None:
    v = variant[1:] if variant.startswith("v") else variant
    return int(v) if v.isdigit() else None


def platform_matches(want: Platform, candidate: Platform) -> bool:
    """containerd's ``NewMatcher(want).Match(candidate)`` (OS version only for Windows)."""
    a, b = want.normalize(), candidate.normalize()
    if (a.os, a.architecture, a.variant) != (b.os, b.architecture, b.variant):
        return False
    if a.os == "windows" and a.os_version and b.os_version:
        # Windows: same build (major.minor.build) required, as containerd does.
        return a.os_version.split(".")[:3] == b.os_version.split(".")[:3]
    return True


def select_manifest(index: Index, platform: Platform | None = None) -> Descriptor:
    """The entry of ``index`` that best runs on ``platform`` (default: this machine).

    Ordering is containerd's ``platforms.Only``: the exact platform first, then compatible
    ones (amd64 -> 386, arm64 -> arm/v8..v5, arm/v7 -> v6, v5); ties keep index order.
    Attestation entries are skipped. Raises NoMatchingPlatform with Docker's message.
    """
    want = (platform or host_platform()).normalize()
    vector = platform_vector(want)
    candidates = [d for d in index.manifests if d.platform is not None and not d.is_attestation]
    for p in vector:
        for desc in candidates:
            if platform_matches(p, desc.platform):  # type: ignore[arg-type]
                return desc
    raise NoMatchingPlatform(
        f"no matching manifest for {want.string()} in the manifest list entries"
    )


def manifest_json(
    config: Descriptor, layers: Sequence[Descriptor], media_type: str = OCI_MANIFEST
) -> bytes:
    """Serialise a manifest (used to push images and to build test fixtures)."""

    def desc(d: Descriptor) -> dict:
        out: dict = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
        if d.urls:
            out["urls"] = list(d.urls)
        if d.annotations:
            out["annotations"] = dict(d.annotations)
        return out

    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": desc(config),
        "layers": [desc(d) for d in layers],
    }
    return json.dumps(doc, indent=3).encode()
