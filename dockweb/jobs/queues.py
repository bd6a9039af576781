"""Which Celery queue each kind of work goes to, and the workers that consume them.

Work is split into lanes, each with its own queue and its own worker process (with its own
concurrency), so that no kind of work can starve another: two pulls stuck on a registry
that never answers hold pull slots only, never the slot a tag, a removal or a console needs.

- ``pulls``: pulls (long, network-bound).
- ``builds``: image builds (long, may pull their base images).
- ``quick``: image, container and network operations (tag, remove, run, start/stop,
  network create/connect...), prunes and
  whatever else is sent without a lane (Celery's default queue is this one).
- ``consoles``: browser consoles, each holding its slot for as long as its shell lives.

A queue's name derives from the lane and, later, the host whose worker runs it (one worker
per machine on its own queue) in one place: ``queue_name``. Plain Python: scripts/run, the
tests' workers and the benchmarks read it without Django (``python -m dockweb.jobs.queues``
prints one worker per line).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Lane:
    name: str
    kinds: tuple[str, ...]  # the job kinds (``@jobs.kind`` names) it runs
    concurrency: int  # tasks its worker runs at once, unless the setting says otherwise
    setting: str  # the environment variable that sets its concurrency
    pool: str = "threads"


LANES: tuple[Lane, ...] = (
    Lane("pulls", ("pull",), 3, "DOCKWEB_PULL_WORKERS"),
    Lane("builds", ("build",), 2, "DOCKWEB_BUILD_WORKERS"),
    Lane(
        "quick",
        ("image_operation", "container_operation", "network_operation", "prune"),
        4,
        "DOCKWEB_QUICK_WORKERS",
    ),
    Lane("consoles", ("console",), 16, "DOCKWEB_CONSOLE_WORKERS"),
)
DEFAULT_LANE = "quick"  # a kind no lane names, and tasks sent outside the job layer
_BY_KIND = {kind: lane.name for lane in LANES for kind in lane.kinds}


def queue_name(lane: str, host: str | None = None) -> str:
    """The queue of ``lane`` (on ``host``'s worker, when work is bound to a machine)."""
    return f"dockweb.{lane}" + (f"@{host}" if host else "")


def lane_of(kind: str) -> str:
    """The lane of a job kind (``DEFAULT_LANE`` for one no lane names)."""
    return _BY_KIND.get(kind, DEFAULT_LANE)


def queue_for(kind: str, host: str | None = None) -> str:
    """The queue a job of ``kind`` is sent to."""
    return queue_name(lane_of(kind), host)


def default_queue(host: str | None = None) -> str:
    return queue_name(DEFAULT_LANE, host)


def all_queues(host: str | None = None) -> tuple[str, ...]:
    """Every lane's queue: what a single worker consuming everything (tests) listens to."""
    return tuple(queue_name(lane.name, host) for lane in LANES)


def concurrency(lane: Lane, environ: dict[str, str] | None = None) -> int:
    """The lane's concurrency: its setting (a positive integer) or its default."""
    environ = os.environ if environ is None else environ
    value = environ.get(lane.setting, "").strip()
    if not value:
        return lane.concurrency
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{lane.setting}={value!r}: expected a positive whole number")
    return int(value)


def repairs_here(consumer) -> bool:
    """Whether the worker of ``consumer`` (``worker_ready``'s sender) runs the start-up
    repair (store, containers, abandoned rows, mirror): the one that consumes the default
    queue, so that the repair runs once per start of the workers, not once per lane."""
    try:
        consumed = set(consumer.app.amqp.queues.consume_from)
    except AttributeError:  # not a worker's consumer: repair, as before lanes
        return True
    return default_queue() in consumed


def main(argv: list[str]) -> int:
    """``python -m dockweb.jobs.queues``: one line per worker to start, ``lane queue
    concurrency pool`` (scripts/run reads it); with ``--all``, every queue, comma-separated
    (``celery worker -Q`` of a single worker for everything)."""
    if argv == ["--all"]:
        print(",".join(all_queues()))
        return 0
    try:
        for lane in LANES:
            print(lane.name, queue_name(lane.name), concurrency(lane), lane.pool)
    except ValueError as err:
        print(f"dockweb: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
