from __future__ import annotations

from django.apps import AppConfig


class ContainersConfig(AppConfig):
    name = "containers"
    verbose_name = "Containers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # a user demoted below operator (or deleted) loses their open consoles at once
        from access.signals import role_changed

        role_changed.connect(_close_consoles, dispatch_uid="containers.consoles")


def _close_consoles(sender, user_ids, deleted: bool = False, **kwargs) -> None:
    from containers import console  # redis and the runtime only when a role changes

    console.close_when_demoted(user_ids, deleted=deleted)
