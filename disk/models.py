"""Disk models: prunes confirmed from a preview, and the volume sizes the worker measured.

The pages render from the database alone: images, layers and containers come from their
apps' mirrors; a volume's size needs a walk of its data as root, so the worker records it
here (``VolumeUsage``) whenever it measures or prunes.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class VolumeUsage(models.Model):
    """A volume's size (apparent bytes of its data) when the worker last measured it."""

    name = models.CharField(max_length=255, unique=True)
    size = models.BigIntegerField()
    measured_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.size}"


class PruneOperation(models.Model):
    """A prune a person confirmed after seeing its preview; the worker runs exactly that.

    ``preview`` holds what the page showed: images (with their references), containers,
    volumes and orphan layers, with sizes. The worker removes only those, and skips any
    that changed since (``skipped``). ``lines`` are Docker's output lines.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    preview = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    lines = models.JSONField(default=list, help_text=_("Docker's output lines"))
    skipped = models.JSONField(default=list, help_text=_("Items that changed since the preview"))
    reclaimed = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"prune {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)
