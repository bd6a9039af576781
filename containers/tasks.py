"""Celery tasks for containers: thin wrappers that hand a row's ID to a job runner.

The runners (``dockweb.jobs``) claim their row with a conditional update, so a duplicate
delivery (acks_late after a worker crash) does nothing; nothing is retried.
"""

from __future__ import annotations

import logging

from celery.signals import worker_ready

from containers import console, services
from containers.models import ConsoleSession
from dockweb import jobs
from dockweb.celery import app
from dockweb.jobs import queues

log = logging.getLogger(__name__)


@app.task(acks_late=True, ignore_result=True)
def run_operation(op_id: int) -> None:
    services.run_operation(op_id)


@worker_ready.connect
def recover_after_restart(**kwargs) -> None:
    """Repair what a stopped worker left (creations and starts cut short, operations and
    consoles still "running") and mirror the runtime: containers may also have exited while
    no worker ran."""
    if not queues.repairs_here(kwargs.get("sender")):
        return
    jobs.fail_abandoned(ConsoleSession)
    try:
        report = services.recover_after_restart()
    except Exception:
        log.exception("could not reconcile the containers at worker start")
        return
    log.info("containers reconciled %s", {k: len(v) for k, v in report.items()})


@app.task(acks_late=True, ignore_result=True)
def run_console(session_pk: int) -> None:
    """Lives as long as the console's shell: it pumps the pty (containers/console.py)."""
    console.run_console(session_pk)
