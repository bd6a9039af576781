"""Sign-in throttling (django-axes, configured by the AXES_* settings): the client address
it counts by, and each lockout written to the audit log."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from access.audit import audit, remote_addr


def client_address(request: HttpRequest) -> str | None:
    """The address failed sign-ins are counted by: REMOTE_ADDR, as in the audit log."""
    return remote_addr(request)


def connect() -> None:
    """Write each lockout to the audit log (called by AccessConfig.ready)."""
    from axes.signals import user_locked_out

    user_locked_out.connect(_locked_out, dispatch_uid="access.lockout")


def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    # django-axes sends the signal when a failure reaches the limit (it has just counted
    # the failures) and again for each sign-in refused while locked (it has not): only the
    # first is a lockout, so a locked-out attacker cannot flood the log.
    if request is not None and getattr(request, "axes_failures_since_start", None) is None:
        return
    # the actor is the request's (anonymous: nobody signed in), the target the username
    audit(
        request if request is not None else "anonymous",
        "auth.lockout",
        username or "",
        address=ip_address,
        failures=settings.AXES_FAILURE_LIMIT,
    )
