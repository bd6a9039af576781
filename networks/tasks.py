"""Celery tasks for networks: a thin wrapper that hands a row's ID to the job runner."""

from __future__ import annotations

from celery.signals import worker_ready

from dockweb import jobs
from dockweb.celery import app
from dockweb.jobs import queues
from networks import services
from networks.models import NetworkOperation


@app.task(acks_late=True, ignore_result=True)
def run_operation(op_id: int) -> None:
    services.run_operation(op_id)


@worker_ready.connect
def fail_abandoned(**kwargs) -> None:
    """Operations a stopped worker left running are failed (reconcile, run by the
    containers' hook, repairs the runtime's side)."""
    if queues.repairs_here(kwargs.get("sender")):
        jobs.fail_abandoned(NetworkOperation)
