from __future__ import annotations

from django.apps import AppConfig


class DiskConfig(AppConfig):
    name = "disk"
    verbose_name = "Disk"
    default_auto_field = "django.db.models.BigAutoField"
