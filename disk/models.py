"""Disk models: prunes confirmed from a preview, and the volume sizes the worker measured.

The pages render from the database alone: images, layers and containers come from their
apps' mirrors; a volume's size needs a walk of its data as root, so the worker records it
here (``VolumeUsage``) whenever it measures or prunes.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from dockweb.jobs.models import Job


class VolumeUsage(models.Model):
    """A volume's size (apparent bytes of its data) when the worker last measured it."""

    name = models.CharField(max_length=255, unique=True)
    size = models.BigIntegerField()
    measured_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.size}"


class PruneOperation(Job):
    """A prune a person confirmed after seeing its preview; the worker runs exactly that.

    ``preview`` holds what the page showed: images (with their references), containers,
    volumes and orphan layers, with sizes. The worker removes only those, and skips any
    that changed since (``skipped``). ``lines`` are Docker's output lines.
    """

    preview = models.JSONField(default=dict)
    lines = models.JSONField(default=list, help_text=_("Docker's output lines"))
    skipped = models.JSONField(default=list, help_text=_("Items that changed since the preview"))
    reclaimed = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"prune {self.pk} ({self.status})"
