"""``manage.py image_pulled [IMAGE_ID]``: what the CLI's Django-free pull
(dockweb/cli/fastpull.py) leaves to a process of its own once it has printed: the store
mirrored into the database (its live notice updates open pages), then the layer explorer's
analysis of the pulled image. Without an ID (a failed pull) only the mirror: an interrupted
pull may keep layers for reuse, which the mirror shows.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from dockweb.engine import get_store
from images.services.explorer import analyze_after_pull
from images.services.mirror import sync_after_change


class Command(BaseCommand):
    help = "Mirror the store into the database after a pull, then analyze the pulled image."

    def add_arguments(self, parser) -> None:
        parser.add_argument("image_id", nargs="?", default="")

    def handle(self, *args, image_id: str, **options) -> None:
        store = get_store()
        sync_after_change(store)
        if image_id:
            analyze_after_pull(store, image_id)
