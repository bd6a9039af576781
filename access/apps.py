from __future__ import annotations

from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access: roles and audit log"

    def ready(self) -> None:
        from access import lockout, signals

        signals.connect()
        lockout.connect()
