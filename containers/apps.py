from __future__ import annotations

from django.apps import AppConfig


class ContainersConfig(AppConfig):
    name = "containers"
    verbose_name = "Containers"
    default_auto_field = "django.db.models.BigAutoField"
