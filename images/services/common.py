"""What the image services share: the store and registry client, worker identity, queueing
a row's task, the bounded-rate progress writer, failure words and abandoned-work recovery.

The claim/run/record helpers here are the job pattern's pieces (see dockweb/jobs once it
exists); everything else in images.services imports them from here.
"""

from __future__ import annotations

import abc
import logging
import os
import threading
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from dockweb.runtime.errors import DockwebError
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store
from images.models import Build, Operation, Pull

log = logging.getLogger(__name__)


def get_store() -> Store:
    return Store(str(settings.DOCKWEB_ROOT))


def get_client(credentials: dict[str, tuple[str, str]] | None = None) -> RegistryClient:
    """A registry client; ``credentials`` (host -> (user, password)) come before config.json."""
    # the docker CLI's own credentials (`docker login`), as `docker pull` would use them
    config = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    config_path = os.path.join(config, "config.json")
    return RegistryClient(
        insecure_registries=tuple(settings.DOCKWEB_INSECURE_REGISTRIES),
        auth_config_path=config_path,
        credentials=credentials,
    )


def containers_using_images(store: Store | None = None) -> list[tuple[str, str, bool]]:
    """(container ID, image ID, running) for every container the runtime has, so that
    image removal refuses (or forces past) the images containers use, as Docker does."""
    from dockweb.runtime.containers import ContainerManager

    return ContainerManager(store or get_store()).used_images()


def now() -> datetime:
    return datetime.now(UTC)


def enqueue(task, row_id: int, rows: QuerySet) -> None:
    """Send a task; if the broker cannot be reached, fail the row now rather than leave it
    queued forever."""
    try:
        task.delay(row_id)
    except Exception as err:  # kombu's OperationalError, redis errors, DNS ...
        broker = task.app.conf.broker_url
        rows.filter(status="queued").update(
            status="failed",
            finished_at=timezone.now(),
            error=(
                f"could not reach the task queue at {broker}: {err}. Start redis-server "
                "(scripts/run starts one) or set CELERY_BROKER_URL, then try again."
            ),
        )


def worker_identity() -> str:
    """``host:pid:start time`` of this process, to tell later whether it is still alive."""
    import socket

    import psutil

    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.2f}"


def worker_is_alive(identity: str) -> bool:
    """False when ``identity`` (from worker_identity) names a process of this host that is gone.

    Another host's worker is assumed alive: only that host can tell.
    """
    import socket

    import psutil

    try:
        host, pid, started = identity.rsplit(":", 2)
        pid_n, started_f = int(pid), float(started)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    try:
        return f"{psutil.Process(pid_n).create_time():.2f}" == f"{started_f:.2f}"
    except psutil.NoSuchProcess:
        return False


class RowWriter(abc.ABC):
    """Progress kept in memory and written to database rows at a bounded rate.

    Subclasses keep state under ``self.lock``, set ``self.dirty`` when it changes and
    implement ``flush()``. A writer thread calls ``flush()`` at most once per ``interval``
    (so a change shows within ``interval``) and then ``tick()``; ``close()`` stops the
    thread and makes the final write.
    """

    kind = "row"

    def __init__(self, row_id: int, interval: float):
        self.row_id = row_id
        self.interval = interval
        self.dirty = False
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"{self.kind}-{row_id}-writer", daemon=True
        )

    def start(self):
        self.thread.start()
        return self

    @abc.abstractmethod
    def flush(self) -> None:
        """Write what changed since the last flush."""

    def tick(self) -> None:  # noqa: B027 - optional hook, most writers need none
        """Called by the writer thread after each flush."""

    def _run(self) -> None:
        try:
            while not self.stop.wait(self.interval):
                self.flush()
                self.tick()
        except Exception:
            log.exception("%s %s: progress writer stopped", self.kind, self.row_id)
        finally:
            connection.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.flush()


def failure(what: str, err: BaseException) -> str:
    """What to tell a person about a failed pull or build: the runtime's (Docker's) words,
    else the OS's."""
    if isinstance(err, DockwebError):
        return str(err)
    if isinstance(err, OSError):
        return f"{what} failed: {err.strerror or err}" + (
            f": {err.filename}" if getattr(err, "filename", None) else ""
        )
    return f"{what} failed: {err.__class__.__name__}: {err}"


WORKER_STOPPED = (
    "the worker stopped during the pull; pull again to resume — finished layers are reused"
)


def fail_abandoned_work() -> int:
    """Mark pulls, operations and builds left running by a worker process that is gone as
    failed.

    Run at worker start. Returns how many rows it changed.
    """
    now = timezone.now()
    changed = 0
    for pk, worker in Pull.objects.filter(status=Pull.Status.RUNNING).values_list("pk", "worker"):
        if not worker_is_alive(worker):
            changed += Pull.objects.filter(pk=pk, status=Pull.Status.RUNNING).update(
                status=Pull.Status.FAILED,
                error=WORKER_STOPPED,
                finished_at=now,
                updated_at=now,
            )
    for pk, worker in Operation.objects.filter(status=Operation.Status.RUNNING).values_list(
        "pk", "worker"
    ):
        if not worker_is_alive(worker):
            changed += Operation.objects.filter(pk=pk, status=Operation.Status.RUNNING).update(
                status=Operation.Status.FAILED,
                finished_at=now,
                error="the worker stopped during the operation; look at the image and try again",
            )
    for pk, worker in Build.objects.filter(status=Build.Status.RUNNING).values_list("pk", "worker"):
        if not worker_is_alive(worker):
            changed += Build.objects.filter(pk=pk, status=Build.Status.RUNNING).update(
                status=Build.Status.FAILED,
                finished_at=now,
                updated_at=now,
                error="the worker stopped during the build; start the build again",
            )
    return changed
