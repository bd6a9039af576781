"""Celery tasks for containers: thin wrappers that hand a row's ID to a service.

``services.run_operation`` claims its row with a conditional update, so a duplicate delivery
(acks_late after a worker crash) does nothing; nothing is retried.
"""

from __future__ import annotations

import logging

from celery.signals import worker_ready

from containers import services
from dockweb.celery import app

log = logging.getLogger(__name__)


@app.task(acks_late=True, ignore_result=True)
def run_operation(op_id: int) -> None:
    services.run_operation(op_id)


@worker_ready.connect
def mirror_containers_at_start(**kwargs) -> None:
    """Containers may have exited while no worker ran: mirror the runtime once at start."""
    try:
        services.sync_containers()
    except Exception:
        log.exception("could not mirror the containers at worker start")


@app.task(acks_late=True, ignore_result=True)
def run_console(session_pk: int) -> None:
    """Lives as long as the console's shell: it pumps the pty (containers/console.py)."""
    from containers import console

    console.run_console(session_pk)
