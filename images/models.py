"""Image models: a database mirror of the runtime's store, and pulls with their progress.

The store on disk (dockweb/runtime/store.py) is the truth for images, layers and references;
``images.services.sync_images`` mirrors it here after every change (from the worker or the
CLI), so pages render from the database alone and the web process never touches the store.
Pulls and operations (removal, tagging) live only here: the worker claims a queued row,
runs it, and writes its progress and result into the row.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dockweb.jobs.models import Job
from dockweb.runtime.digest import short_id


class Layer(models.Model):
    """One unpacked layer of the store, by chain ID (shared by every image that has it)."""

    chain_id = models.CharField(max_length=71, unique=True)
    diff_id = models.CharField(max_length=71)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    blob_digest = models.CharField(max_length=71, blank=True)
    media_type = models.CharField(max_length=200, blank=True)
    size = models.BigIntegerField(help_text=_("On-disk size, as Docker counts it"))
    compressed_size = models.BigIntegerField(default=0, help_text=_("Size in the registry"))

    class Meta:
        ordering = ["chain_id"]

    def __str__(self) -> str:
        return short_id(self.chain_id)

    @property
    def short_id(self) -> str:
        return short_id(self.blob_digest or self.chain_id)


class Image(models.Model):
    """An image: its config (by ID, the config digest) over an ordered stack of layers."""

    image_id = models.CharField(max_length=71, unique=True)
    created = models.DateTimeField(null=True, blank=True)
    size = models.BigIntegerField(default=0, help_text=_("Sum of its layers' on-disk sizes"))
    compressed_size = models.BigIntegerField(default=0)
    os = models.CharField(max_length=40, blank=True)
    architecture = models.CharField(max_length=40, blank=True)
    variant = models.CharField(max_length=40, blank=True)
    config = models.JSONField(default=dict)
    parent_image_id = models.CharField(max_length=71, blank=True)
    last_tag_time = models.DateTimeField(null=True, blank=True)
    pulled_at = models.DateTimeField(null=True, blank=True)
    layers = models.ManyToManyField(Layer, through="ImageLayer", related_name="images")

    class Meta:
        ordering = ["-created", "image_id"]

    def __str__(self) -> str:
        return self.short_id

    @property
    def short_id(self) -> str:
        return short_id(self.image_id)

    @property
    def runtime_config(self) -> dict:
        """The image config's ``config`` (Entrypoint, Cmd, Env, WorkingDir, User, Labels)."""
        return self.config.get("config") or {}

    @property
    def history(self) -> list[dict]:
        return self.config.get("history") or []

    @property
    def is_dangling(self) -> bool:
        """``<none>:<none>``: no tag and no digest reference (docker/cli's isDangling, as
        ``dockweb.docker.images.without_references``). Not the ``dangling=true`` filter's
        rule, which counts an image with only digest references too
        (``dockweb.runtime.imagelist.is_dangling``)."""
        return not self.references.exists()

    def ordered_layers(self) -> list[Layer]:
        return [il.layer for il in self.image_layers.select_related("layer").order_by("position")]


class ImageLayer(models.Model):
    """The image–layer relation, in order: position 0 is the bottom layer."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="image_layers")
    layer = models.ForeignKey(Layer, on_delete=models.PROTECT, related_name="image_layers")
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["image", "position"]
        constraints = [
            models.UniqueConstraint(fields=["image", "position"], name="image_layer_position")
        ]


class Repository(models.Model):
    """A repository name, normalized (``docker.io/library/busybox``)."""

    name = models.CharField(max_length=255, unique=True)
    familiar_name = models.CharField(max_length=255, db_index=True)

    class Meta:
        ordering = ["familiar_name"]
        verbose_name_plural = "repositories"

    def __str__(self) -> str:
        return self.familiar_name


class Reference(models.Model):
    """A tag (``busybox:latest``) or digest reference (``busybox@sha256:…``) to an image."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="references")
    tag = models.CharField(max_length=128, blank=True)
    digest = models.CharField(max_length=135, blank=True)
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="references")

    class Meta:
        ordering = ["repository__familiar_name", "tag", "digest"]
        constraints = [
            models.UniqueConstraint(fields=["repository", "tag", "digest"], name="unique_reference")
        ]

    def __str__(self) -> str:
        return self.familiar

    @property
    def is_tag(self) -> bool:
        return bool(self.tag)

    @property
    def familiar(self) -> str:
        if self.tag:
            return f"{self.repository.familiar_name}:{self.tag}"
        return f"{self.repository.familiar_name}@{self.digest}"


class Pull(models.Model):
    """One pull, queued by a person or the CLI and run by a worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    reference = models.CharField(max_length=512, help_text=_("As typed"))
    normalized = models.CharField(max_length=512, blank=True)
    platform = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    total_bytes = models.BigIntegerField(default=0)
    downloaded_bytes = models.BigIntegerField(default=0)
    messages = models.JSONField(default=list, help_text=_("Lines without a layer ID"))
    manifest_digest = models.CharField(max_length=135, blank=True)
    image_id = models.CharField(max_length=71, blank=True)
    status_text = models.CharField(max_length=600, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(
        max_length=200, blank=True, help_text=_("host:pid:start time of the process running it")
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.reference} ({self.status})"

    @property
    def can_cancel(self) -> bool:
        return self.is_active and not self.cancel_requested

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total_bytes:
            return 0
        return min(100, int(self.downloaded_bytes * 100 / self.total_bytes))

    @property
    def console_lines(self) -> list[str]:
        """The pull's messages as ``docker pull`` prints them (``Digest:``, ``Status: …``),
        and the status line only when no message already says it."""
        lines = list(self.messages or [])
        if self.status_text and not any(line.endswith(self.status_text) for line in lines):
            lines.append(self.status_text)
        return lines

    @property
    def readable_error(self) -> str:
        """The error as a person reads it: Docker's text with a cause repeated after a
        colon said once ("manifest unknown: manifest unknown" -> "manifest unknown")."""
        parts = (self.error or self.status_text or "").split(": ")
        kept: list[str] = []
        for part in parts:
            if not kept or part != kept[-1]:
                kept.append(part)
        return ": ".join(kept)

    @property
    def elapsed(self) -> timedelta | None:
        """Time since the start, to the end or, while running, to the current whole second
        (so the many people watching a pull share one rendering: views._pull_progress)."""
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now().replace(microsecond=0)) - self.started_at

    @property
    def speed(self) -> float:
        """Bytes per second from the start to the last progress write, which wrote both the
        byte count and ``updated_at``: a rate of bytes and time measured together, sane
        from the first writes on (none before half a second of them)."""
        if not self.started_at or not self.downloaded_bytes:
            return 0.0
        span = ((self.finished_at or self.updated_at) - self.started_at).total_seconds()
        if span < 0.5:
            return 0.0
        return self.downloaded_bytes / span

    # The live page polls faster while a pull is young: its first layer rows show within
    # about 0.3 s of its start (written at once, then one fast poll), and a pull that ends
    # at once shows its end as fast; then every 0.35 s, so that with the request's own time
    # the bytes shown move at least every 0.5 s (they are written every 0.2 s), also across
    # the change from fast to steady polling.
    FAST_POLL_SECONDS = 2

    @property
    def poll_ms(self) -> int:
        """How often (ms) the live page asks for this pull's progress while it is active."""
        if self.status == self.Status.QUEUED:
            return 100
        elapsed = self.elapsed
        young = elapsed is not None and elapsed.total_seconds() < self.FAST_POLL_SECONDS
        return 100 if young else 350

    @property
    def eta(self) -> timedelta | None:
        speed = self.speed
        if not self.is_active or speed <= 0 or not self.total_bytes:
            return None
        return timedelta(seconds=max(0, self.total_bytes - self.downloaded_bytes) / speed)


class PullLayer(models.Model):
    """One layer's progress in a pull, in Docker's words (Downloading, Pull complete...)."""

    pull = models.ForeignKey(Pull, on_delete=models.CASCADE, related_name="layers")
    position = models.PositiveIntegerField()
    short_id = models.CharField(max_length=12)
    digest = models.CharField(max_length=135)
    status = models.CharField(max_length=40)
    current = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pull", "position"]
        constraints = [
            models.UniqueConstraint(fields=["pull", "position"], name="pull_layer_position")
        ]

    @property
    def percent(self) -> int:
        if self.status in ("Pull complete", "Already exists", "Download complete"):
            return 100
        if not self.total:
            return 0
        return min(100, int(self.current * 100 / self.total))


class Operation(Job):
    """A change to the store run by the worker (which has root): removal, tag, untag."""

    class Kind(models.TextChoices):
        REMOVE = "remove", _("Remove")
        TAG = "tag", _("Tag")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    args = models.JSONField(default=dict)
    result = models.JSONField(default=list, help_text=_("[kind, value] records, as docker prints"))
    conflict = models.BooleanField(default=False, help_text=_("Refused; forcing may help"))
    freed_bytes = models.BigIntegerField(default=0)
    image_id = models.CharField(max_length=71, blank=True, help_text=_("The image it acted on"))
    deleted_layers = models.PositiveIntegerField(default=0)
    references_left = models.PositiveIntegerField(
        default=0, help_text=_("References to the image after the operation")
    )
    tags_left = models.PositiveIntegerField(
        default=0, help_text=_("Of those, tags (the rest are digest references)")
    )

    def __str__(self) -> str:
        return f"{self.kind} {self.args} ({self.status})"

    @property
    def untagged(self) -> list[str]:
        return [v for k, v in self.result if k == "Untagged"]

    @property
    def deleted(self) -> list[str]:
        return [v for k, v in self.result if k == "Deleted"]


class RegistryCredential(models.Model):
    """Credentials for a private registry; the secret is encrypted at rest."""

    registry = models.CharField(max_length=255, unique=True, help_text=_("host[:port]"))
    username = models.CharField(max_length=255)
    secret = models.BinaryField(help_text=_("Encrypted password or token"))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["registry"]

    def __str__(self) -> str:
        return f"{self.username}@{self.registry}"


class ImageAnalysis(models.Model):
    """What each layer of an image adds, changes and deletes, and the bytes it wastes.

    Written by the worker after a pull (``images.services.analyze_image``, from
    ``dockweb.runtime.layerfs``) so that pages show it without reading the store. An image
    never changes for its ID, so neither does its analysis. ``layers`` holds one summary per
    layer, bottom to top (``LayerAnalysis.summary()``); the file lists and the merged tree
    are in ImageAnalysisLayer and ImageAnalysisDir rows, so that a page loads only the one
    layer or directory it shows.
    """

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="analysis")
    version = models.PositiveSmallIntegerField(help_text=_("layerfs.VERSION that wrote it"))
    total_bytes = models.BigIntegerField(help_text=_("Bytes of all its layers"))
    wasted_bytes = models.BigIntegerField(
        help_text=_("Bytes of lower layers that later layers overwrite or delete")
    )
    file_count = models.PositiveIntegerField(help_text=_("Entries of the final image"))
    seconds = models.FloatField(default=0, help_text=_("How long the analysis took"))
    layers = models.JSONField(default=list)
    analyzed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"analysis of {self.image}"

    @property
    def efficiency(self) -> float:
        """Percent of the layers' bytes the final image can reach (100 for an empty image)."""
        if not self.total_bytes:
            return 100.0
        return 100.0 * (1 - self.wasted_bytes / self.total_bytes)


class ImageAnalysisLayer(models.Model):
    """One layer's changes in an analysis: rows as ``layerfs.FileChange``, sorted by path."""

    analysis = models.ForeignKey(
        ImageAnalysis, on_delete=models.CASCADE, related_name="layer_files"
    )
    position = models.PositiveIntegerField()
    files = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["analysis", "position"], name="image_analysis_layer_position"
            )
        ]


class ImageAnalysisDir(models.Model):
    """One directory of the image's merged tree: rows as ``layerfs.TreeEntry``, by name."""

    analysis = models.ForeignKey(
        ImageAnalysis, on_delete=models.CASCADE, related_name="directories"
    )
    path = models.TextField(help_text=_('"/" or "/usr/bin"'))
    entries = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["analysis", "path"], name="image_analysis_dir_path")
        ]


class Build(Job):
    """One ``docker build`` from the Build page, queued here and run by a worker.

    The context a person uploaded is saved under ``context_dir`` (DOCKWEB_DATA/builds/<id>/
    context) before the row is queued, and removed when the build ends. ``output`` holds
    the lines classic ``docker build`` prints, written at a bounded rate; BuildStep rows
    hold what each step made.
    """

    dockerfile = models.TextField()
    context_dir = models.CharField(
        max_length=1000, blank=True, help_text=_("Saved build context; empty: none")
    )
    context_size = models.BigIntegerField(default=0, help_text=_("Bytes of the saved context"))
    tags = models.JSONField(default=list)
    no_cache = models.BooleanField(default=False)
    build_args = models.JSONField(default=dict)
    output = models.JSONField(default=list, help_text=_("Lines as docker build prints them"))
    image_id = models.CharField(max_length=71, blank=True)
    error_line = models.PositiveIntegerField(default=0, help_text=_("Dockerfile line; 0: none"))
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"build {self.pk} ({self.status})"

    @property
    def first_line(self) -> str:
        """The FROM line, or the first line that says something: the build's name in lists."""
        lines = [s.strip() for s in self.dockerfile.splitlines()]
        lines = [s for s in lines if s and not s.startswith("#")]
        return next((s for s in lines if s.upper().startswith("FROM ")), lines[0] if lines else "")

    @property
    def error_source(self) -> str:
        """The Dockerfile line the error names, as written ("" when it names none)."""
        lines = self.dockerfile.splitlines()
        if 0 < self.error_line <= len(lines):
            return lines[self.error_line - 1].strip()
        return ""

    @property
    def elapsed(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class BuildStep(models.Model):
    """One step of a build (``Step 2/5 : RUN ...``) and what it made.

    ``image_id`` is the step's (intermediate) image, empty while the step runs or when it
    failed; ``layer_size`` is None when the step added no layer (metadata only, or a RUN
    that changed nothing) or came from the cache (``cached``).
    """

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="steps")
    number = models.PositiveIntegerField()
    instruction = models.TextField()
    image_id = models.CharField(max_length=71, blank=True)
    cached = models.BooleanField(default=False)
    layer_size = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["build", "number"]
        constraints = [
            models.UniqueConstraint(fields=["build", "number"], name="build_step_number")
        ]

    def __str__(self) -> str:
        return f"step {self.number}: {self.instruction}"

    @property
    def finished(self) -> bool:
        return bool(self.image_id)


class MirrorGeneration(models.Model):
    """One row whose ``value`` changes whenever a row of the image mirror changes.

    Database triggers (migration 0005) give it a fresh random value, in the writing
    transaction, on every insert, update or delete of Image, Layer, ImageLayer, Repository
    and Reference, whoever writes them (sync_images, the CLI, a test, a bulk_create): a
    cache keyed by it (services.image_table) never serves a table from before a change.
    """

    value = models.BigIntegerField(default=0)

    @classmethod
    def current(cls) -> int | None:
        """The value now; None when the row is missing (a flushed database, not yet
        written since): then nothing may be cached."""
        # plain SQL: every Images page and API listing asks first
        from django.db import connections, router

        connection = connections[router.db_for_read(cls)]
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT value FROM {connection.ops.quote_name(cls._meta.db_table)} WHERE id = 1"
            )
            row = cursor.fetchone()
        return None if row is None else row[0]
