"""Container models: a database mirror of the runtime's containers and volumes, and operations.

The runtime (dockweb/runtime/containers.py) is the truth: ``containers.services.sync_containers``
mirrors it here after every change, and the container supervisor's exit command
(``manage.py container_exited <id>``) mirrors an exit as it happens, so pages render from
the database alone and learn of exits without polling the runtime.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dockweb.docker.ps import display_ports, size_text, summary_ports
from dockweb.jobs.models import Job
from dockweb.runtime.containers.state import Status as RuntimeStatus
from dockweb.runtime.containers.state import health_label, status_text
from dockweb.runtime.units import parse_go_time


class Container(models.Model):
    """One container, as the runtime last reported it."""

    class Status(models.TextChoices):
        CREATED = "created", _("Created")
        RUNNING = "running", _("Running")
        PAUSED = "paused", _("Paused")
        RESTARTING = "restarting", _("Restarting")
        REMOVING = "removing", _("Removing")
        EXITED = "exited", _("Exited")
        DEAD = "dead", _("Dead")

    container_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255, db_index=True, help_text=_("Without the leading /"))
    image = models.CharField(max_length=512, help_text=_("As given to create/run"))
    image_id = models.CharField(max_length=71, blank=True)
    path = models.CharField(max_length=4096, blank=True)
    args = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    exit_code = models.IntegerField(default=0)
    error = models.TextField(blank=True)
    pid = models.IntegerField(default=0)
    created = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    auto_remove = models.BooleanField(default=False)
    tty = models.BooleanField(default=False)
    network = models.CharField(max_length=255, default="bridge")
    labels = models.JSONField(default=dict)
    mounts = models.JSONField(default=list, help_text=_("Docker's MountPoint dicts"))
    size_rw = models.BigIntegerField(null=True, blank=True)
    size_root_fs = models.BigIntegerField(null=True, blank=True)
    inspect = models.JSONField(
        default=dict, help_text=_("docker inspect's object at the last sync")
    )
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-container_id"]

    def __str__(self) -> str:
        return self.name or self.short_id

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    @property
    def command(self) -> str:
        """The COMMAND column before quoting: path and args, args with spaces in '…'."""
        if not self.args:
            return self.path
        args = [f"'{a}'" if " " in a else a for a in self.args]
        return f"{self.path} {' '.join(args)}"

    @property
    def ports_text(self) -> str:
        """The PORTS column of docker ps."""
        info = self.inspect or {}
        if "State" not in info:
            return ""
        return display_ports(summary_ports(info))

    @property
    def published_ports(self) -> list[str]:
        """``0.0.0.0:8080 → 80/tcp`` for each port published while it runs (docker port)."""
        ports = ((self.inspect or {}).get("NetworkSettings") or {}).get("Ports") or {}
        return [
            f"{b['HostIp']}:{b['HostPort']} → {key}"
            for key, binds in sorted(ports.items())
            for b in binds or []
        ]

    @property
    def health(self) -> dict | None:
        """``.State.Health`` at the last sync (None: no health check): Status,
        FailingStreak and the last results (Start, End, ExitCode, Output)."""
        return ((self.inspect or {}).get("State") or {}).get("Health")

    @property
    def health_results(self) -> list[dict]:
        """The last results, newest first, their times as datetimes."""
        out = []
        for r in reversed((self.health or {}).get("Log") or []):
            out.append({**r, "start": parse_go_time(r.get("Start")),
                        "end": parse_go_time(r.get("End"))})
        return out

    # -- guards: the runtime's Status (dockweb.runtime.containers.state) -------------------

    @property
    def is_running(self) -> bool:
        return RuntimeStatus(self.status).is_active

    @property
    def can_start(self) -> bool:
        return RuntimeStatus(self.status).can_start()

    @property
    def can_stop(self) -> bool:
        return RuntimeStatus(self.status).can_stop()

    @property
    def can_restart(self) -> bool:
        return RuntimeStatus(self.status).can_restart()

    @property
    def can_kill(self) -> bool:
        return RuntimeStatus(self.status).can_signal()

    @property
    def can_pause(self) -> bool:
        return RuntimeStatus(self.status).can_pause()

    @property
    def can_unpause(self) -> bool:
        return RuntimeStatus(self.status).can_unpause()

    @property
    def can_exec(self) -> bool:
        return RuntimeStatus(self.status).can_exec()

    def can_remove(self, force: bool = False) -> bool:
        return RuntimeStatus(self.status).can_remove(force)

    @property
    def can_remove_plain(self) -> bool:
        return self.can_remove(False)

    @property
    def actions(self) -> list[tuple[str, str, bool, bool]]:
        """(action, label, allowed now, dangerous) for the buttons the pages show."""
        return [
            ("start", _("Start"), self.can_start, False),
            ("stop", _("Stop"), self.can_stop, False),
            ("restart", _("Restart"), self.can_restart and self.is_running, False),
            ("pause", _("Pause"), self.can_pause, False),
            ("unpause", _("Unpause"), self.can_unpause, False),
            ("kill", _("Kill"), self.can_kill, True),
            ("remove", _("Remove"), self.can_remove_plain, True),
        ]

    def status_text(self, now: datetime | None = None) -> str:
        """The STATUS column, as dockerd's State.String(): "Up 3 seconds", "Exited (0) …"."""
        return status_text(
            self.status,
            started_at=self.started_at,
            finished_at=self.finished_at,
            exit_code=self.exit_code,
            now=now or timezone.now(),
            health=health_label(self.health),
        )

    @property
    def size_text(self) -> str:
        """The SIZE column of ``ps -s``: "1.2kB (virtual 4.26MB)"."""
        return size_text(self.size_rw or 0, self.size_root_fs or 0)


class Volume(models.Model):
    """A named or anonymous volume: a directory under the store that outlives containers."""

    name = models.CharField(max_length=255, unique=True)
    driver = models.CharField(max_length=40, default="local")
    mountpoint = models.CharField(max_length=4096)
    created = models.DateTimeField(null=True, blank=True)
    labels = models.JSONField(default=dict)
    options = models.JSONField(default=dict)
    anonymous = models.BooleanField(default=False)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def users(self) -> list[Container]:
        """Containers that mount this volume (running or not): prune keeps the volume."""
        return [
            c for c in Container.objects.all()
            if any(m.get("Type") == "volume" and m.get("Name") == self.name for m in c.mounts)
        ]


class ContainerOperation(Job):
    """A change run by the worker (which has root): run, start, stop, remove, volume verbs.

    Also read-only snapshots the pages cannot take themselves (diff, top, stats), whose
    result the page shows when done.
    """

    class Kind(models.TextChoices):
        RUN = "run", _("Run")
        START = "start", _("Start")
        STOP = "stop", _("Stop")
        RESTART = "restart", _("Restart")
        KILL = "kill", _("Kill")
        PAUSE = "pause", _("Pause")
        UNPAUSE = "unpause", _("Unpause")
        REMOVE = "remove", _("Remove")
        DIFF = "diff", _("Changes")
        TOP = "top", _("Processes")
        STATS = "stats", _("Stats")
        VOLUME_CREATE = "volume_create", _("Create volume")
        VOLUME_REMOVE = "volume_remove", _("Remove volume")
        VOLUME_PRUNE = "volume_prune", _("Prune volumes")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    args = models.JSONField(default=dict)
    container_id = models.CharField(max_length=64, blank=True, help_text=_("Set once known"))
    result = models.JSONField(default=dict)
    conflict = models.BooleanField(default=False, help_text=_("Refused; forcing may help"))

    def __str__(self) -> str:
        return f"{self.kind} {self.args} ({self.status})"

    @property
    def target(self) -> str:
        return str(self.args.get("container") or self.args.get("name") or "")

    @property
    def target_name(self) -> str:
        """What the pages call the target: the container's name when the operation was
        asked by name (as the pages do), else its 12-character short ID; never 64 hex."""
        named = self.args.get("container_name") or self.args.get("name")
        if named:
            return str(named)
        return self.target[:12]


def _console_id() -> str:
    return secrets.token_urlsafe(24)


class ConsoleSession(models.Model):
    """A shell exec'd with a tty into a running container for one user's browser tab.

    The worker (root) runs the exec and pumps its pty through Redis (``channel_out``,
    ``queue_in``); the web side only reads and writes those. Ending a session ends the
    shell, never the container. ``session_id`` is random: it names the Redis keys and the
    URLs, and is only served to ``user``.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Starting")
        RUNNING = "running", _("Connected")
        ENDED = "ended", _("Ended")
        FAILED = "failed", _("Failed")

    SHELLS = ("/bin/sh", "/bin/bash", "/bin/ash")

    session_id = models.CharField(max_length=40, unique=True, default=_console_id)
    container_id = models.CharField(max_length=64)
    shell = models.CharField(max_length=64, default="/bin/sh")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.shell} in {self.container_id[:12]} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def channel_out(self) -> str:
        """Redis pub/sub channel of the pty's output and the session's end."""
        return f"dockweb:console:{self.session_id}:out"

    @property
    def queue_in(self) -> str:
        """Redis list of keystrokes, resizes and the close request, oldest first."""
        return f"dockweb:console:{self.session_id}:in"
