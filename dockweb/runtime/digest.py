"""Content digests and the IDs derived from them.

``validate_digest`` follows go-digest v1.0.0 (as vendored by Docker 20.10) and raises
:class:`~dockweb.runtime.errors.InvalidReference` with Docker's message: a digest reaches us
inside a reference, a manifest or a user's argument, and Docker reports all of these the same
way (``invalid checksum digest format`` ...). ``ValueError`` is never raised for a bad digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from dockweb.runtime.reference import validate_go_digest

SHA256_PREFIX = "sha256:"
_READ_SIZE = 1 << 20


def sha256_digest(data: bytes) -> str:
    """``sha256:<64 hex>`` of ``data``."""
    return SHA256_PREFIX + hashlib.sha256(data).hexdigest()


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is a valid sha256/sha384/sha512 digest; raise otherwise.

    The hex part must be lowercase and of the algorithm's length (64, 96, 128). Raises
    :class:`InvalidReference` with ``invalid checksum digest format``, ``unsupported digest
    algorithm`` or ``invalid checksum digest length``, as go-digest does.
    """
    return validate_go_digest(digest)


def hex_of(digest: str) -> str:
    """The encoded part of ``algorithm:hex`` (``Digest.Encoded``); a bare hex is returned as is."""
    _, sep, encoded = digest.partition(":")
    return encoded if sep else digest


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI ChainIDs of a layer stack, bottom first.

    ``ChainID(L0) = DiffID(L0)``; ``ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))``.
    """
    chain: list[str] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            chain.append(sha256_digest(f"{chain[-1]} {diff_id}".encode()))
    return chain


def short_id(digest_or_id: str) -> str:
    """The 12-character short ID Docker shows (``stringid.TruncateID``).

    Everything up to the first ``:`` is dropped (the algorithm), then the rest is cut to 12.
    """
    i = digest_or_id.find(":")
    if i > -1:
        digest_or_id = digest_or_id[i + 1 :]
    return digest_or_id[:12]


class HashingReader:
    """A read-through stream (``read(n)``) that hashes (sha256) and counts every byte that
    passes, and reports the running count to ``on_bytes`` after each read."""

    def __init__(self, raw, on_bytes: Callable[[int], None] | None = None):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0
        self.on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n and n > 0 else _READ_SIZE)
        if data:
            self.passed(data)
        return data

    def passed(self, data: bytes) -> None:
        """Account for ``data``, just read (not empty)."""
        self.hash.update(data)
        self.count += len(data)
        if self.on_bytes:
            self.on_bytes(self.count)

    def digest(self) -> str:
        return SHA256_PREFIX + self.hash.hexdigest()
