"""``manage.py analyze_images [IMAGE ...] [--refresh]``: fill the layer explorer's analyses.

The worker analyzes each image it pulls; this backfills images pulled before (or by a
dockweb without the explorer). It reads the store, so run it where the worker runs (as
root). Idempotent: images already analyzed are skipped unless ``--refresh``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from dockweb.runtime.errors import DockwebError
from dockweb.runtime.units import human_size
from images import services
from images.models import Image


class Command(BaseCommand):
    help = "Analyze images' layers for the layer explorer (all images not analyzed yet)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("images", nargs="*", help="references or IDs (default: all)")
        parser.add_argument(
            "--refresh", action="store_true", help="analyze again, ignoring cached results"
        )

    def handle(self, *args, images: list[str], refresh: bool, **options) -> None:
        services.sync_images()
        try:
            rows = (
                [services.get_image(key) for key in images]
                if images
                else list(Image.objects.order_by("pk"))
            )
        except DockwebError as e:
            raise CommandError(str(e)) from e
        failed = 0
        for image in rows:
            try:
                analysis = services.analyze_image(image, refresh=refresh)
            except DockwebError as e:
                failed += 1
                self.stderr.write(f"analyze {image.short_id}: {e}")
                continue
            self.stdout.write(
                f"{image.short_id}  {analysis.file_count} files  efficiency "
                f"{analysis.efficiency:.1f}%  {human_size(analysis.wasted_bytes, 3)} wasted"
            )
        if failed:
            raise CommandError(f"{failed} of {len(rows)} images could not be analyzed")
