"""Celery tasks for images: thin wrappers that hand a row's ID to a service.

The job runners (``dockweb.jobs``) claim their row with a conditional update, so a duplicate
delivery (acks_late after a worker crash) does nothing; nothing is retried, because a
half-done pull or removal is resumed by a person starting it again, not by replaying it
blindly.
"""

from __future__ import annotations

import logging

from celery.signals import worker_ready

from dockweb import jobs
from dockweb.celery import app
from dockweb.engine import get_store
from dockweb.jobs import queues
from images.models import Build, Operation, Pull
from images.services import builds, mirror, operations, pulls

log = logging.getLogger(__name__)


@app.task(acks_late=True, ignore_result=True)
def pull_image(pull_id: int) -> None:
    pulls.run_pull(pull_id)


@app.task(acks_late=True, ignore_result=True)
def run_operation(op_id: int) -> None:
    operations.run_operation(op_id)


@app.task(acks_late=True, ignore_result=True)
def run_build(build_id: int) -> None:
    builds.run_build(build_id)


@worker_ready.connect
def recover_after_restart(**kwargs) -> None:
    """Repair what a stopped worker left: scratch files, rows still "running", the mirror."""
    if not queues.repairs_here(kwargs.get("sender")):
        return
    store = get_store()
    report = store.reconcile()
    failed = jobs.fail_abandoned(Pull, Operation, Build)
    mirror.sync_images(store)
    log.info("store reconciled %s; %d abandoned pulls/operations marked failed", report, failed)
