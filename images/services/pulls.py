"""Pulls: ``docker pull`` into the store, and pulls queued from the pages and run by the
worker with their progress kept in Pull and PullLayer rows."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from dockweb import jobs, live
from dockweb.engine import get_store
from dockweb.runtime import manifest as mf
from dockweb.runtime.errors import InvalidReference
from dockweb.runtime.limits import LayerLimits
from dockweb.runtime.pull import (
    PullCancelled,
    PullResult,
    parse_pull_reference,
    pull,
)
from images.models import Image, Pull, PullLayer
from images.services.common import get_client
from images.services.explorer import analyze_after_pull
from images.services.mirror import sync_after_change

log = logging.getLogger(__name__)


def pull_image(
    reference: str,
    *,
    platform: str | None = None,
    on_progress: Callable[[dict], None] | None = None,
    cancel=None,
    credentials: dict[str, tuple[str, str]] | None = None,
    analyze: bool = True,
    mirror: bool = True,
) -> PullResult:
    """Pull into the store, then bring the database mirror up to date (unless ``mirror``
    is False) and analyze the image for the explorer (unless ``analyze`` is False): a
    caller that passes False does these later, off its critical path."""
    store = get_store()
    store.reconcile()
    result = pull(
        store,
        get_client(credentials),
        reference,
        platform=platform,
        on_progress=on_progress,
        max_concurrent=settings.DOCKWEB_MAX_CONCURRENT_DOWNLOADS,
        cancel=cancel,
        limits=layer_limits(),
    )
    if mirror:
        sync_after_change(store)
    if mirror and analyze:
        analyze_after_pull(store, result.image_id)
    return result


def layer_limits() -> LayerLimits:
    """The tar-bomb guards for pulls, from settings (``DOCKWEB_LAYER_MAX_ENTRIES``,
    ``_MAX_BYTES``, ``_MAX_RATIO``, ``_RATIO_FLOOR``: the runtime's defaults unless set)."""
    return LayerLimits(
        max_entries=settings.DOCKWEB_LAYER_MAX_ENTRIES,
        max_bytes=settings.DOCKWEB_LAYER_MAX_BYTES,
        max_ratio=settings.DOCKWEB_LAYER_MAX_RATIO,
        ratio_floor=settings.DOCKWEB_LAYER_RATIO_FLOOR,
    )


# -- references --------------------------------------------------------------------------


def normalize_reference(text: str) -> str:
    """The full reference ``docker pull`` pulls: ``ubuntu`` -> ``docker.io/library/ubuntu:latest``.

    Raises InvalidReference with Docker's message.
    """
    text = text.strip()
    if not text:
        raise InvalidReference("invalid reference format")
    return parse_pull_reference(text).string()


# -- pulls -------------------------------------------------------------------------------


def start_pull(reference: str, *, platform: str = "", user=None) -> Pull:
    """Queue a pull; the worker runs it (images.tasks.pull_image) once this transaction commits.

    Raises InvalidReference for a malformed reference and ValueError for a malformed
    platform. When the same reference and platform are already being pulled, that pull is
    returned instead of a second one.
    """
    normalized = normalize_reference(reference)
    platform = platform.strip()
    if platform:
        mf.parse_platform(platform)  # ValueError: '"x/": invalid platform specifier'
    with transaction.atomic():
        active = active_pulls().filter(normalized=normalized, platform=platform).first()
        if active:
            return active
        return jobs.start(
            Pull,
            user=user,
            reference=reference.strip(),
            normalized=normalized,
            platform=platform,
        )


def pull_here(
    reference: str,
    *,
    platform: str = "",
    on_progress: Callable[[dict], None] | None = None,
    credentials: dict | None = None,
    cancel: threading.Event | None = None,
    analyze: bool = True,
) -> tuple[Pull, jobs.Outcome | None]:
    """Pull in this process (the Engine API's ``images/create``) as a Pull row like any
    other: created queued, then claimed, run and recorded by the jobs layer (``run_pull``),
    so an open Pull page shows its per-layer bars as for a pull started in the browser.
    ``on_progress`` gets every runtime progress event too. Returns the row (reloaded) and
    the outcome (None when the row was cancelled before it started).

    With ``analyze`` False the explorer's analysis of the pulled image is left to the
    caller (``analyze_after_pull``), which can answer its client first.

    Raises InvalidReference for a malformed reference and ValueError for a malformed
    platform, before any row exists.
    """
    normalized = normalize_reference(reference)
    platform = platform.strip()
    if platform:
        mf.parse_platform(platform)
    row = Pull.objects.create(reference=reference.strip(), normalized=normalized, platform=platform)
    outcome = run_pull(
        row.pk, on_progress=on_progress, credentials=credentials, cancel=cancel, analyze=analyze
    )
    row.refresh_from_db()
    return row, outcome


def active_pulls() -> QuerySet[Pull]:
    """Pulls queued or running, newest first."""
    return Pull.objects.filter(status__in=Pull.ACTIVE).order_by("-created_at", "-pk")


def cancel_pull(pull_row: Pull) -> None:
    """Ask a pull to stop. Idempotent; a finished pull is left as it is.

    A queued pull is cancelled at once (the worker then finds nothing to claim); a running
    one is stopped by its worker within a fraction of a second.
    """
    now = timezone.now()
    Pull.objects.filter(pk=pull_row.pk, status=Pull.Status.QUEUED).update(
        status=Pull.Status.CANCELLED, cancel_requested=True, finished_at=now, updated_at=now
    )
    Pull.objects.filter(pk=pull_row.pk, status=Pull.Status.RUNNING).update(
        cancel_requested=True, updated_at=now
    )
    live.publish_on_commit("pull", f"pull-{pull_row.pk}")
    pull_row.refresh_from_db()


_DOWNLOADED_STATES = {"Verifying Checksum", "Download complete", "Extracting", "Pull complete"}


class PullProgress(jobs.RowWriter):
    """A pull's progress, kept in memory and written to its rows at a bounded rate.

    Call the instance with runtime progress events (from any thread; it only takes a lock
    and updates dicts). A writer thread writes what changed at most once per ``interval``
    (so state changes show within ``interval``), and checks ``Pull.cancel_requested``,
    setting ``cancel`` when a person asked to stop. ``close()`` stops the thread and makes
    the final write.
    """

    kind = "pull"

    def __init__(self, pull_row: Pull, cancel: threading.Event, *, interval: float = 0.2):
        super().__init__(pull_row.pk, interval)
        self.pull_id = pull_row.pk
        self.cancel = cancel
        self.layers: dict[int, dict] = {}
        self.positions: dict[str, int] = {}
        self.messages: list[str] = list(pull_row.messages or [])
        self.dirty_layers: set[int] = set()

    def __call__(self, event: dict) -> None:
        with self.lock:
            self.dirty = True
            if event.get("kind") == "message":
                # rides along with the next write: a message alone must not spend the
                # interval the first layer rows, a few milliseconds later, would wait for
                self.messages.append(event["text"])
                return
            index = event.get("index")
            if index is None:
                index = self.positions.setdefault(event["digest"], len(self.positions))
            state = self.layers.setdefault(
                index,
                {
                    "short_id": event["id"],
                    "digest": event["digest"],
                    "status": "",
                    "current": 0,
                    "total": 0,
                },
            )
            state["status"] = event["status"]
            if event.get("total"):
                state["total"] = event["total"]
            if event.get("current") is not None:
                state["current"] = event["current"]
            if event["status"] in _DOWNLOADED_STATES and state["total"]:
                state["current"] = state["total"]
            self.dirty_layers.add(index)
        # a layer's change is written at once when nothing was written for an interval (the
        # first layer rows reach the page without waiting), else at the interval's end
        self.wake()

    def totals(self) -> tuple[int, int]:
        """(bytes to download, bytes downloaded): layers already here count in neither."""
        total = done = 0
        for st in self.layers.values():
            if st["status"] == "Already exists":
                continue
            total += st["total"]
            if st["status"] in _DOWNLOADED_STATES:
                done += st["total"] or st["current"]
            elif st["status"] == "Downloading":
                done += st["current"]
        return total, done

    def flush(self) -> None:
        with self.lock:
            if not self.dirty:
                return
            rows = [
                PullLayer(pull_id=self.pull_id, position=i, **self.layers[i])
                for i in sorted(self.dirty_layers)
            ]
            messages = list(self.messages)
            total, done = self.totals()
            dirty_layers, self.dirty_layers, self.dirty = self.dirty_layers, set(), False
        now = timezone.now()
        try:
            with transaction.atomic():
                for row in rows:
                    row.updated_at = now
                PullLayer.objects.bulk_create(
                    rows,
                    update_conflicts=True,
                    unique_fields=["pull", "position"],
                    update_fields=[
                        "short_id",
                        "digest",
                        "status",
                        "current",
                        "total",
                        "updated_at",
                    ],
                )
                Pull.objects.filter(pk=self.pull_id).update(
                    total_bytes=total, downloaded_bytes=done, messages=messages, updated_at=now
                )
            live.publish("pull", f"pull-{self.pull_id}")
        except Exception:
            # the database was busy for longer than its timeout: try again next time
            log.exception("pull %s: could not write progress", self.pull_id)
            with self.lock:
                self.dirty = True
                self.dirty_layers |= dirty_layers

    def tick(self) -> None:
        if Pull.objects.filter(pk=self.pull_id, cancel_requested=True).exists():
            self.cancel.set()


# Seconds a cancelled pull is given to stop by itself before its job ends without it.
CANCEL_GRACE = 0.25


def _cancellable(cancel: threading.Event, work: Callable[[], PullResult]) -> PullResult:
    """``work()``, run in a thread of its own; PullCancelled within ``CANCEL_GRACE`` of
    ``cancel`` even when the pull waits on a registry that never answers (a read only ends
    at its timeout, a minute). The thread left behind ends by itself at its next read or
    timeout and records nothing after the cancel (the runtime checks it before each commit),
    so the worker's slot is free at once."""
    box: dict = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["result"] = work()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = err
        finally:
            done.set()

    threading.Thread(target=target, name="pull", daemon=True).start()
    while not done.wait(0.05):
        if cancel.is_set() and not done.wait(CANCEL_GRACE):
            raise PullCancelled("pull cancelled")
    if "error" in box:
        raise box["error"]
    return box["result"]


WORKER_STOPPED = (
    "the worker stopped during the pull; pull again to resume — finished layers are reused"
)


def _record_pulled(pull_row: Pull, outcome: dict) -> None:
    """After the row is recorded done (the page says Done as soon as the runtime's pull
    ended): the database mirror, then the explorer's analysis, unless the caller runs the
    analysis itself (``run_pull(analyze=False)``, set on the row by ``run_pull``)."""
    if outcome["status"] != Pull.Status.DONE:
        return
    store = get_store()
    try:
        sync_after_change(store)
    except Exception:
        # the pull itself is done; the worker's next start (or the next change) mirrors it
        log.exception("pull %s: could not mirror the store", pull_row.pk)
        return
    Image.objects.filter(image_id=outcome["image_id"]).update(pulled_at=timezone.now())
    if getattr(pull_row, "analyze_after", True):
        analyze_after_pull(store, outcome["image_id"])


def _layers_already_here(progress: PullProgress, image_id: str) -> None:
    """An image that was already here gives no layer events (as ``docker pull`` prints no
    layer lines then); its page shows each of its layers as "Already exists" all the same."""
    with progress.lock:
        if progress.layers:
            return
    try:
        rec = get_store().get_image(image_id)
    except Exception:  # noqa: BLE001 - removed meanwhile: nothing to show
        return
    for i, chain in enumerate(rec.layers):
        blob = rec.compressed[i] if i < len(rec.compressed) else {}
        digest = blob.get("digest") or chain
        progress(
            {
                "kind": "layer",
                "id": digest.partition(":")[2][:12],
                "digest": digest,
                "index": i,
                "status": "Already exists",
                "total": int(blob.get("size", 0)),
            }
        )


@jobs.kind(
    "pull",
    model=Pull,
    task="images.tasks.pull_image",
    what="pull",
    abandoned=WORKER_STOPPED,
    claim_stamps=("started_at", "updated_at"),
    end_stamps=("finished_at", "updated_at"),
    after=_record_pulled,
)
def run_pull(
    pull_row: Pull,
    *,
    on_progress: Callable[[dict], None] | None = None,
    credentials: dict | None = None,
    cancel: threading.Event | None = None,
    analyze: bool = True,
) -> dict:
    """Run a queued pull in this process (the worker); ``run_pull(pull_id)``. Does nothing
    unless the row is queued (a duplicate delivery of the task is a no-op).

    Ends the row done, failed (with an error a person can act on) or cancelled; never raises
    for a failed pull. A caller running the row itself (the Engine API) may add a listener
    that gets every progress event too, credentials that come before the saved ones
    (host -> (user, password) or AuthConfig), its own cancel event, and ``analyze=False``
    to run the explorer's analysis itself afterwards.
    """
    from images.credentials import credentials_map

    # the mirror and the analysis run after the row is recorded (_record_pulled)
    pull_row.analyze_after = analyze
    cancel = cancel or threading.Event()
    if pull_row.cancel_requested:
        cancel.set()
    progress = PullProgress(pull_row, cancel, interval=jobs.progress_interval()).start()
    ended = threading.Event()  # events a pull left behind after a cancel sends are dropped

    def listener(event: dict) -> None:
        if ended.is_set():
            return
        progress(event)
        if on_progress is not None:
            on_progress(event)

    saved = credentials_map()
    try:
        if cancel.is_set():
            raise PullCancelled("pull cancelled")
        result = _cancellable(
            cancel,
            lambda: pull_image(
                pull_row.normalized or pull_row.reference,
                platform=pull_row.platform or None,
                on_progress=listener,
                cancel=cancel,
                credentials={**saved, **(credentials or {})},
                mirror=False,
            ),
        )
        _layers_already_here(progress, result.image_id)
    except Exception as err:
        if isinstance(err, PullCancelled) or cancel.is_set():
            return {"status": Pull.Status.CANCELLED}
        raise
    finally:
        ended.set()
        progress.close()
    status = "Downloaded newer image for " if result.updated else "Image is up to date for "
    return {
        "manifest_digest": result.manifest_digest,
        "image_id": result.image_id,
        "status_text": status + result.familiar,
    }
