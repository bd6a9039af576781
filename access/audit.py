"""``audit(request_or_user, action, target, **detail)``: one row in the audit log.

Views call it with the request once a change is accepted (queued or done); the CLI calls it
with ``cli_actor()``. It never raises: an audit row that cannot be written is logged as an
error rather than failing the operation it describes.
"""

from __future__ import annotations

import getpass
import logging
import os

from django.db import transaction
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def cli_actor() -> str:
    """``cli:<unix user>`` for the user running the command (``cli:uid<N>`` if unnamed)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = f"uid{os.getuid()}"
    return f"cli:{name}"


def remote_addr(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client says unless a proxy we
    # trust rewrites it, and this log must not be forgeable by the client.
    return request.META.get("REMOTE_ADDR") or None


def audit(request_or_user, action: str, target: str = "", /, **detail):
    """Record ``action`` on ``target``; ``request_or_user`` is an HttpRequest, a User or an
    actor name such as ``cli:root``. Returns the AuditEvent, or None if it could not be
    written."""
    from access.models import AuditEvent

    user = None
    remote = None
    if isinstance(request_or_user, HttpRequest):
        remote = remote_addr(request_or_user)
        request_or_user = request_or_user.user
    if isinstance(request_or_user, str):
        actor = request_or_user
    elif request_or_user is not None and request_or_user.is_authenticated:
        user, actor = request_or_user, request_or_user.get_username()
    else:
        actor = "anonymous"
    try:
        # a savepoint: a failed insert must not break the caller's transaction
        with transaction.atomic():
            return AuditEvent.objects.create(
                user=user,
                actor=actor[:150],
                action=action,
                target=str(target)[:512],
                detail=detail,
                remote_addr=remote,
            )
    except Exception:
        logger.exception("audit: cannot record %s %s by %s", action, target, actor)
        return None
