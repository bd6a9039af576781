"""Celery tasks for the Disk page: thin wrappers that hand a row's ID to a service."""

from __future__ import annotations

from celery.signals import worker_ready

from disk import services
from disk.models import PruneOperation
from dockweb import jobs
from dockweb.celery import app
from dockweb.jobs import queues


@app.task(acks_late=True, ignore_result=True)
def run_prune(op_id: int) -> None:
    services.run_prune(op_id)


@app.task(acks_late=True, ignore_result=True)
def measure_volumes() -> None:
    services.measure_volumes()


@worker_ready.connect
def recover_after_restart(**kwargs) -> None:
    """Fail the prunes a stopped worker left running."""
    if not queues.repairs_here(kwargs.get("sender")):
        return
    jobs.fail_abandoned(PruneOperation)
