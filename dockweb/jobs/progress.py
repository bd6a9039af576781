"""A job's progress, kept in memory and written to its database rows at a bounded rate.

Pages render from the rows, so a reload, a poll or a stream all show the same truth; the
rate bound keeps a chatty job (a pull's byte counts, a build's output) from hammering the
database.
"""

from __future__ import annotations

import abc
import logging
import threading
import time

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)


# Seconds a woken writer waits for the rest of a burst of changes before it writes.
COALESCE = 0.02


def progress_interval() -> float:
    """Seconds between two progress writes (``DOCKWEB_PROGRESS_INTERVAL``)."""
    return settings.DOCKWEB_PROGRESS_INTERVAL


class RowWriter(abc.ABC):
    """Progress kept in memory and written to database rows at a bounded rate.

    Subclasses keep state under ``self.lock``, set ``self.dirty`` when it changes and
    implement ``flush()``. A writer thread calls ``flush()`` at most once per ``interval``
    (so a change shows within ``interval``) and then ``tick()``; ``close()`` stops the
    thread and makes the final write. A change that should not wait (the first layers of a
    pull, a new state) calls ``wake()``: it is written at once if nothing was written in
    the last ``interval``, else as soon as the interval is over.
    """

    kind = "row"

    def __init__(self, row_id: int, interval: float):
        self.row_id = row_id
        self.interval = interval
        self.dirty = False
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self._wake = threading.Event()
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

    def wake(self) -> None:
        """Write soon: now, or when ``interval`` has passed since the last write."""
        self._wake.set()

    def _run(self) -> None:
        last = float("-inf")
        try:
            while not self.stop.is_set():
                if self._wake.wait(self.interval) and not self.stop.is_set():
                    # a woken write takes the events that come in the same burst too (a
                    # pull announces all its layers at once)
                    self.stop.wait(COALESCE)
                self._wake.clear()
                # the rate bound: one write per interval at most
                gap = last + self.interval - time.monotonic()
                if self.stop.is_set() or (gap > 0 and self.stop.wait(gap)):
                    break
                last = time.monotonic()
                self.flush()
                self.tick()
        except Exception:
            log.exception("%s %s: progress writer stopped", self.kind, self.row_id)
        finally:
            connection.close()

    def close(self) -> None:
        self.stop.set()
        self._wake.set()
        self.thread.join()
        self.flush()
