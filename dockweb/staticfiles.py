"""The static files storage of scripts/run (DOCKWEB_STATIC_HASHED): content-hashed names,
compressed copies, far-future caching (WhiteNoise)."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedStaticFiles(CompressedManifestStaticFilesStorage):
    """WhiteNoise's storage, rewriting references in CSS only: the vendored scripts name
    source maps that are not shipped (xterm's addons), which would fail collectstatic, and
    no script of ours names another static file."""

    patterns = tuple(p for p in CompressedManifestStaticFilesStorage.patterns if p[0] == "*.css")
