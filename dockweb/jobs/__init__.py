"""Background jobs: one layer for every kind (pulls, image removals and tags, builds,
container operations, prunes, consoles).

- ``models.Job``: the abstract row (status, error, worker, who, when).
- ``runner``: a kind is one function and one registration (``@jobs.kind``); a new row
  queued (``start``); queueing after commit with broker-down handling (``enqueue``), the
  claim/run/record loop (``run_job``), failing what a dead worker left (``fail_abandoned``)
  and the message a person reads.
- ``progress.RowWriter``: progress written to rows at a bounded rate.
- ``workers``: a worker's identity and whether it still lives.
- ``views.operation``: one operation page for every kind (template ``jobs/operation.html``).

Django-side and Celery-free: a kind's Celery task is named by its dotted path and imported
only when a row is queued.
"""

from __future__ import annotations

from dockweb.jobs.progress import RowWriter, progress_interval
from dockweb.jobs.runner import (
    Outcome,
    enqueue,
    fail_abandoned,
    failure_message,
    kind,
    kind_of,
    kinds,
    run_job,
    start,
)
from dockweb.jobs.workers import worker_identity, worker_is_alive

__all__ = [
    "Outcome",
    "RowWriter",
    "enqueue",
    "fail_abandoned",
    "failure_message",
    "kind",
    "kind_of",
    "kinds",
    "progress_interval",
    "run_job",
    "start",
    "worker_identity",
    "worker_is_alive",
]
