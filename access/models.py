"""The audit log, and the permissions behind the roles (access/roles.py).

The permissions ``access.operate`` and ``access.administer`` hang on AuditEvent only because
Django permissions need a model; the groups "viewer", "operator" and "admin" that carry them
are created by migration 0002.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AuditEvent(models.Model):
    """Who did what to which object, from where: one row per accepted request or CLI command.

    ``actor`` keeps the name at the time (a user may be renamed or deleted later); CLI
    commands have no ``user`` and an actor of ``cli:<unix user>``.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor = models.CharField(max_length=150, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=512, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-pk"]
        permissions = [
            ("operate", _("Can pull, run, control and exec into containers, and tag")),
            ("administer", _("Can remove and prune, manage registry credentials and users")),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"
