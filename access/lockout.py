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
    """Write each lockout, and each lock an admin lifts in the admin, to the audit log
    (called by AccessConfig.ready, after the admin modules are loaded)."""
    from axes.signals import user_locked_out

    user_locked_out.connect(_locked_out, dispatch_uid="access.lockout")
    _audit_lifts_in_the_admin()


def _audit_lifts_in_the_admin() -> None:
    """django-axes' "Access attempts" admin, with each deletion (lifting a lock) audited as
    ``auth.unlock`` by the admin who did it."""
    from axes.admin import AccessAttemptAdmin
    from axes.models import AccessAttempt
    from django.contrib import admin

    class AuditedAccessAttemptAdmin(AccessAttemptAdmin):
        def delete_model(self, request, obj):
            _lifted(request, obj)
            super().delete_model(request, obj)

        def delete_queryset(self, request, queryset):
            for obj in queryset:
                _lifted(request, obj)
            super().delete_queryset(request, queryset)

    if admin.site.is_registered(AccessAttempt):
        admin.site.unregister(AccessAttempt)
    admin.site.register(AccessAttempt, AuditedAccessAttemptAdmin)


def _lifted(request, attempt) -> None:
    audit(
        request,
        "auth.unlock",
        attempt.username or "",
        address=attempt.ip_address,
        failures=attempt.failures_since_start,
    )


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
