"""Celery tasks for the Disk page: thin wrappers that hand a row's ID to a service."""

from __future__ import annotations

from disk import services
from dockweb.celery import app


@app.task(acks_late=True, ignore_result=True)
def run_prune(op_id: int) -> None:
    services.run_prune(op_id)


@app.task(acks_late=True, ignore_result=True)
def measure_volumes() -> None:
    services.measure_volumes()
