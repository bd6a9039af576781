"""Network models: a database mirror of the runtime's networks (dockweb/runtime/networks.py)
and the operations the worker runs on them.

The runtime is the truth: ``networks.mirror.sync_networks`` mirrors it here whenever the
containers are mirrored (``containers.services.sync_containers``), so the pages render from
the database alone, without root. A network's ``endpoints`` are the addresses its running
containers held at the last sync; the pages keep only those whose container row is still
running (a container that exited holds no endpoint, and its exit is mirrored to the
Container row at once).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from dockweb.jobs.models import Job

PREDEFINED = ("bridge", "host", "none")


class Network(models.Model):
    """One network, as the runtime last reported it."""

    network_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255, db_index=True)
    position = models.IntegerField(default=0, help_text=_("The runtime's order (docker's)"))
    driver = models.CharField(max_length=32, default="bridge")
    created = models.DateTimeField(null=True, blank=True)
    subnet = models.CharField(max_length=64, blank=True)
    gateway = models.CharField(max_length=64, blank=True)
    ip_range = models.CharField(max_length=64, blank=True)
    internal = models.BooleanField(default=False)
    attachable = models.BooleanField(default=False)
    labels = models.JSONField(default=dict)
    options = models.JSONField(default=dict)
    endpoints = models.JSONField(
        default=list,
        help_text=_("container_id, name, ip, prefix, mac, aliases, ifname of each endpoint"),
    )
    members = models.JSONField(
        default=list,
        help_text=_("container_id, name, aliases, ipv4 of each container configured on it"),
    )
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def short_id(self) -> str:
        return self.network_id[:12]

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def scope(self) -> str:
        return "local"


class NetworkOperation(Job):
    """A change run by the worker (which has root): create, remove, prune, connect,
    disconnect."""

    class Kind(models.TextChoices):
        CREATE = "create", _("Create network")
        REMOVE = "remove", _("Remove network")
        PRUNE = "prune", _("Prune networks")
        CONNECT = "connect", _("Connect")
        DISCONNECT = "disconnect", _("Disconnect")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    args = models.JSONField(default=dict)
    network_id = models.CharField(max_length=64, blank=True, help_text=_("Set once known"))
    container_id = models.CharField(max_length=64, blank=True)
    result = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"{self.kind} {self.args} ({self.status})"

    @property
    def target(self) -> str:
        return str(self.args.get("name") or self.args.get("network") or "")
