"""Registry credentials, encrypted at rest.

The password (or token) is stored as a Fernet token whose key is derived from SECRET_KEY
with HKDF, so a copy of the database alone does not reveal it. Changing SECRET_KEY makes
the stored secrets unreadable: ``credentials_map`` then skips them (with a warning) and
they must be saved again.
"""

from __future__ import annotations

import base64
import logging
import re
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from images.models import RegistryCredential

log = logging.getLogger(__name__)

_DOCKER_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


@cache
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None,
        info=b"dockweb registry credentials v1",
    ).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def normalize_registry(registry: str) -> str:
    """``host[:port]`` as the registry client looks it up; Docker Hub's names read docker.io.

    Accepts what people paste (``https://index.docker.io/v1/``). Raises ValueError.
    """
    host = registry.strip()
    host = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", host).split("/", 1)[0].lower()
    if not _HOST.match(host):
        raise ValueError(f"invalid registry {registry!r}: use host or host:port")
    return "docker.io" if host in _DOCKER_HUB_ALIASES else host


def encrypt_secret(password: str) -> bytes:
    """The value stored in RegistryCredential.secret for ``password``."""
    return _fernet(settings.SECRET_KEY).encrypt(password.encode())


def save_credential(registry: str, username: str, password: str) -> RegistryCredential:
    """Store (or replace) the credentials for ``registry``. Idempotent."""
    if not username or not password:
        raise ValueError("a username and a password are both needed")
    secret = encrypt_secret(password)
    cred, _ = RegistryCredential.objects.update_or_create(
        registry=normalize_registry(registry),
        defaults={"username": username, "secret": secret},
    )
    return cred


def delete_credential(registry: str) -> bool:
    """Forget the credentials for ``registry``; False when there were none."""
    deleted, _ = RegistryCredential.objects.filter(
        registry=normalize_registry(registry)
    ).delete()
    return bool(deleted)


def credentials_map() -> dict[str, tuple[str, str]]:
    """host -> (username, password), decrypted, for RegistryClient(credentials=...)."""
    fernet = _fernet(settings.SECRET_KEY)
    out = {}
    for cred in RegistryCredential.objects.all():
        try:
            out[cred.registry] = (cred.username, fernet.decrypt(bytes(cred.secret)).decode())
        except InvalidToken:
            log.warning(
                "credentials for %s cannot be decrypted (SECRET_KEY changed?): save them again",
                cred.registry,
            )
    return out
