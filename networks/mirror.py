"""The database mirror of the runtime's networks (``Network`` rows), kept by the processes
that change the runtime (the worker, the CLI): ``sync_networks`` runs whenever the
containers are mirrored (``containers.services.sync_containers``) and after every network
verb (``networks.services``); ``containers.fastmirror`` writes the same rows without Django.
Pages read the rows only."""

from __future__ import annotations

import logging

from django.db import connection, transaction

from dockweb import live
from networks.models import Network
from networks.rows import network_rows

log = logging.getLogger(__name__)


def sync_networks(mgr) -> None:
    """Make the Network rows mirror ``mgr``'s networks (a ContainerManager). Idempotent."""
    if Network._meta.db_table not in connection.introspection.table_names():
        log.warning("database not migrated: networks not mirrored (run `manage.py migrate`)")
        return
    rows = network_rows(mgr)
    with transaction.atomic():
        for nid, fields in rows:
            Network.objects.update_or_create(network_id=nid, defaults=fields)
        Network.objects.exclude(network_id__in=[nid for nid, _ in rows]).delete()
        live.publish_on_commit("networks")
