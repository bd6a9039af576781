"""The job pattern, written once: queue after commit, claim, run, record, fail the abandoned.

A kind of job is one function and one registration::

    @jobs.kind("prune", model=PruneOperation, task="disk.tasks.run_prune", what="prune",
               abandoned="the worker stopped during the prune; ...")
    def run_prune(op: PruneOperation) -> dict:
        ...  # the work; returns the fields to record with the outcome

The decorator returns a runner that takes the row's ID (``run_prune(op_id)``), which the
kind's thin Celery task calls. Guarantees, for every kind:

- ``enqueue(row)`` sends the kind's task, on its lane's queue (``queues.py``: pulls,
  builds, quick operations and consoles each have their own worker), once the current
  transaction commits; when the
  broker cannot be reached the row is failed at once, with a message saying what to do,
  instead of staying queued forever.
- The runner claims the row with ``UPDATE ... WHERE status='queued'``: a duplicate delivery
  (acks_late after a worker crash) or a row cancelled meanwhile does nothing.
- The outcome is recorded in one update: the function's fields with status done, or status
  failed with the message a person reads (``failure_message``). The runner never raises
  for a failed job.
- ``fail_abandoned`` fails the rows left running by a worker process that is gone.

A process other than the worker may run a row itself (the Engine API runs a ``docker
pull`` in the request's thread): it creates the row queued and calls the runner with keyword
arguments only it has (a progress listener, credentials, a cancel event), which go to the
kind's function; the claim and the recording are the same, and the runner returns the
``Outcome`` so that the caller can answer with it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from dockweb import live
from dockweb.jobs.workers import worker_identity, worker_is_alive
from dockweb.runtime.errors import DockwebError

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass(frozen=True)
class Kind:
    """How one kind of job is run and recorded (see ``kind``)."""

    name: str
    model: type[models.Model]
    work: Callable[..., dict | None]  # (row, **context)
    task: str  # dotted path of the Celery task that takes the row's ID
    what: str | Callable[[Any], str]  # "<what> failed: ..." for errors that are not Docker's
    abandoned: str  # the error of a row whose worker died
    claim_stamps: tuple[str, ...] = ()  # fields set to now when claimed
    end_stamps: tuple[str, ...] = ("finished_at",)  # fields set to now when finished
    done: str = DONE  # the status of a job whose function returned
    failed_fields: Callable[[Any, BaseException], dict] | None = None
    after: Callable[[Any, dict], None] | None = None  # once the outcome is recorded

    def describe(self, row: Any) -> str:
        return self.what(row) if callable(self.what) else self.what

    def stamps(self, fields: tuple[str, ...]) -> dict:
        now = timezone.now()
        return {f: now for f in fields}


_kinds: dict[str, Kind] = {}
_by_model: dict[type[models.Model], Kind] = {}


def kind(
    name: str,
    *,
    model: type[models.Model],
    task: str,
    what: str | Callable[[Any], str],
    abandoned: str,
    **options: Any,
) -> Callable[[Callable[[Any], dict | None]], Callable[[int], None]]:
    """Register a kind of job; the decorated function does the work on a claimed row.

    The function takes the row (status running) and returns the fields to record with the
    outcome (``status`` defaults to ``done``); an exception fails the row, with
    ``failed_fields(row, err)`` recorded too. ``after(row, fields)`` runs once the outcome
    is recorded, whatever it was. ``options`` are Kind's optional fields (``claim_stamps``,
    ``end_stamps``, ``done``, ``failed_fields``, ``after``). The decorator returns the
    runner: ``runner(row_id)``.
    """

    def register(work: Callable[[Any], dict | None]) -> Callable[[int], None]:
        k = Kind(
            name=name,
            model=model,
            work=work,
            task=task,
            what=what,
            abandoned=abandoned,
            **options,
        )
        _kinds[name] = k
        _by_model[model] = k

        def runner(row_id: int, **context: Any) -> Outcome | None:
            return run_job(name, row_id, **context)

        runner.__name__ = work.__name__
        runner.__qualname__ = work.__qualname__
        runner.__doc__ = work.__doc__
        runner.kind = k  # type: ignore[attr-defined]
        return runner

    return register


def kind_of(model_or_name: type[models.Model] | str) -> Kind:
    if isinstance(model_or_name, str):
        return _kinds[model_or_name]
    return _by_model[model_or_name]


def kinds() -> list[Kind]:
    """Every registered kind (those whose modules are imported: all of them in a worker)."""
    return list(_kinds.values())


def failure_message(what: str, err: BaseException) -> str:
    """What to tell a person about a failed job: the runtime's (Docker's) words, else the
    OS's, else the exception named, after ``<what> failed:``."""
    if isinstance(err, DockwebError):
        return str(err)
    if isinstance(err, OSError):
        return f"{what} failed: {err.strerror or err}" + (
            f": {err.filename}" if getattr(err, "filename", None) else ""
        )
    return f"{what} failed: {err.__class__.__name__}: {err}"


# -- queueing ----------------------------------------------------------------------------


def enqueue(row: models.Model) -> None:
    """Send ``row``'s task once the current transaction commits (at once outside one).

    If the broker cannot be reached, the row is failed then, with a message saying how to
    start it, rather than left queued forever.
    """
    k = kind_of(type(row))
    row_id = row.pk
    transaction.on_commit(lambda: _send(k, row_id))


def start(model: type[models.Model], *, user=None, **fields: Any) -> models.Model:
    """A new row of a kind's ``model`` with ``fields``, asked by ``user`` (kept when signed
    in), queued: its task is sent once the transaction that writes the row commits."""
    with transaction.atomic():
        row = model.objects.create(
            created_by=user if user is not None and user.is_authenticated else None,
            **fields,
        )
        enqueue(row)
    return row


def _send(k: Kind, row_id: int) -> None:
    module, _, name = k.task.rpartition(".")
    # by name: the tasks module imports the kind's module, not the other way round, and
    # Celery stays out of the processes (the CLI) that never queue
    task = getattr(importlib.import_module(module), name)
    try:
        task.delay(row_id)  # on its lane's queue: route_task
    except Exception as err:  # kombu's OperationalError, redis errors, DNS ...
        broker = task.app.conf.broker_url
        k.model.objects.filter(pk=row_id, status=QUEUED).update(
            status=FAILED,
            error=(
                f"could not reach the task queue at {broker}: {err}. Start redis-server "
                "(scripts/run starts one) or set CELERY_BROKER_URL, then try again."
            ),
            **k.stamps(k.end_stamps),
        )
    # the new row (or its failure) shows on the open pages
    live.publish(k.name, f"{k.name}-{row_id}")


def route_task(name: str, args, kwargs, options, task=None, **kw) -> dict | None:
    """Celery's router (``task_routes`` in dockweb/celery.py): a kind's task goes to its
    lane's queue (``queues.py``), consumed by that lane's own worker; any other task to the
    default queue."""
    from dockweb.jobs.queues import queue_for  # here: `python -m dockweb.jobs.queues` alone

    for k in _kinds.values():
        if k.task == name:
            return {"queue": queue_for(k.name)}
    return None


# -- running -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What ``run_job`` recorded: the row's fields, and the exception that failed it."""

    fields: dict
    error: BaseException | None = None


def run_job(name: str, row_id: int, **context: Any) -> Outcome | None:
    """Claim the queued row, run its kind's function (with ``context`` as keyword
    arguments), record the outcome and return it. A no-op (None) unless the row is queued;
    never raises for a failed job."""
    k = _kinds[name]
    rows = k.model.objects.filter(pk=row_id)
    claimed = rows.filter(status=QUEUED).update(
        status=RUNNING, worker=worker_identity(), **k.stamps(k.claim_stamps)
    )
    if not claimed:
        return
    live.publish_on_commit(k.name, f"{k.name}-{row_id}")
    row = rows.get()
    error: BaseException | None = None
    try:
        fields = dict(k.work(row, **context) or {})
        fields.setdefault("status", k.done)
    except Exception as err:
        error = err
        if not isinstance(err, DockwebError):
            log.exception("%s %s failed", k.name, row_id)
        fields = {"status": FAILED, "error": failure_message(k.describe(row), err)}
        if k.failed_fields is not None:
            fields.update(k.failed_fields(row, err))
    rows.update(**k.stamps(k.end_stamps), **fields)
    live.publish_on_commit(k.name, f"{k.name}-{row_id}")
    if k.after is not None:
        k.after(row, fields)
    return Outcome(fields, error)


def fail_abandoned(*models_: type[models.Model]) -> int:
    """Fail the rows of these kinds (every kind when none is named) left running by a
    worker process that is gone, with each kind's message. Returns how many it changed.
    Run at worker start; a row whose worker still runs is left alone."""
    chosen = [kind_of(m) for m in models_] if models_ else kinds()
    changed = 0
    for k in chosen:
        running = k.model.objects.filter(status=RUNNING)
        for pk, worker in running.values_list("pk", "worker"):
            if not worker_is_alive(worker):
                changed += running.filter(pk=pk).update(
                    status=FAILED, error=k.abandoned, **k.stamps(k.end_stamps)
                )
                live.publish_on_commit(k.name, f"{k.name}-{pk}")
    return changed
