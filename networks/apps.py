from __future__ import annotations

from django.apps import AppConfig


class NetworksConfig(AppConfig):
    name = "networks"
    verbose_name = "Networks"
    default_auto_field = "django.db.models.BigAutoField"
