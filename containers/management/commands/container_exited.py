"""``manage.py container_exited <id>``: the supervisor's exit hook (docs/containers.md).

The runtime runs it after a container's process exits, so the dashboard mirrors the exit
(status, exit code, finish time, or the row's removal with --rm) without polling.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from containers import services


class Command(BaseCommand):
    help = "Mirror one container's state into the database after it exited."

    def add_arguments(self, parser) -> None:
        parser.add_argument("container_id")

    def handle(self, *args, container_id: str, **options) -> None:
        services.sync_containers(container_id)
