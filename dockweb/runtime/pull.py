"""Pull an image from a registry into the store, reporting progress as Docker does.

Layers download concurrently (``max_concurrent``, 3 by default like dockerd) and each one is
streamed straight through hashing and decompression into its own scratch directory: no
compressed copy is kept, so memory stays flat and the disk is written once. Because each
layer is unpacked in overlayfs form, independent of its parents, unpacking runs in parallel
too; layers are then committed bottom to top, and the image record is written last. An
interrupted pull leaves only scratch directories (removed by ``Store.reconcile``); layers it
did commit are reused by the next pull.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dockweb.runtime import events
from dockweb.runtime import manifest as mf
from dockweb.runtime import reference as refs
from dockweb.runtime.archive import apply_layer
from dockweb.runtime.compression import compression_of_media_type, open_decompressed
from dockweb.runtime.crashpoint import crashpoint
from dockweb.runtime.digest import HashingReader, chain_ids, short_id
from dockweb.runtime.errors import (
    DigestMismatch,
    DockwebError,
    LayerError,
    NoMatchingPlatform,
)
from dockweb.runtime.limits import DEFAULT_LAYER_LIMITS, LayerLimits
from dockweb.runtime.registry import (
    BlobReadError,
    CancelScope,
    RegistryClient,
    check_json_containers,
)
from dockweb.runtime.store import LayerLock, LayerRecord, Store
from dockweb.runtime.tarsplit import FILE_NAME as TAR_SPLIT

ProgressCallback = Callable[[dict], None]

_READ_SIZE = 1 << 20
_PROGRESS_INTERVAL = 0.1
#: The largest image config a pull reads (they are kilobytes; dockerd sets no limit, this
#: keeps a hostile one from taking the memory).
MAX_CONFIG_SIZE = 8 << 20
# A blob is read in pieces sized by time, not bytes: each read asks for about what arrives
# in _READ_TARGET seconds at the rate seen so far (within _READ_MIN.._READ_MAX), so that on
# a slow link the byte counts still move several times a second (a fixed 1 MiB read at
# 400 KB/s reported nothing for 2.5 s), and on a fast one reads stay large.
_READ_TARGET = 0.1
_READ_MIN = 16 << 10
_READ_FIRST = 64 << 10
_READ_MAX = 1 << 20


class PullCancelled(DockwebError):
    """The caller cancelled the pull; nothing it left is visible as complete."""


class _Stop:
    """The caller's cancel event joined with the pull's own stop signal.

    A failed layer stops the other downloads through ``set()``, which leaves the caller's
    event alone: a pull that failed must not look cancelled to whoever asked for it.
    """

    def __init__(self, caller: threading.Event):
        self.caller = caller
        self.own = threading.Event()

    def is_set(self) -> bool:
        return self.caller.is_set() or self.own.is_set()

    def set(self) -> None:
        self.own.set()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.own.wait(min(left, 0.05))
        return True


class _RatioExceeded(LayerError):
    from_limits = True  # apply_layer passes it on as it is


class _RatioGuard:
    """Refuses a layer that unpacks to more than ``max_ratio`` times the compressed bytes
    read so far (a decompression bomb), once past ``ratio_floor`` unpacked bytes."""

    def __init__(self, raw, blob: _Tap, limits: LayerLimits):
        self.raw = raw
        self.blob = blob
        self.limits = limits
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        ratio, floor = self.limits.max_ratio, self.limits.ratio_floor or 0
        if ratio and self.count > floor and self.count > ratio * max(self.blob.count, 1):
            raise _RatioExceeded(
                f"unpacks to more than {ratio:g} times its compressed size "
                f"({self.count} bytes from {self.blob.count}), the limit: "
                "refused as a decompression bomb"
            )
        return data


@dataclass
class PullResult:
    image_id: str
    manifest_digest: str
    reference: str  # full normalized reference, as `docker pull` prints last
    familiar: str  # what the Status line names
    updated: bool  # True: "Downloaded newer image", False: "Image is up to date"
    downloaded_layers: int
    existing_layers: int


class _Tap(HashingReader):
    """A read-through stream that hashes, counts and honours cancellation."""

    def __init__(self, raw, on_bytes: Callable[[int], None] | None, cancel: _Stop):
        super().__init__(raw, on_bytes)
        self.cancel = cancel

    def read(self, n: int = -1) -> bytes:
        if self.cancel.is_set():
            raise PullCancelled("pull cancelled")
        return super().read(n)

    def passed(self, data: bytes) -> None:
        crashpoint("pull.layer.reading")
        super().passed(data)


class _BlobTap(_Tap):
    """The compressed blob's tap: reads sized by time (see _READ_TARGET)."""

    def __init__(self, raw, on_bytes: Callable[[int], None] | None, cancel: _Stop):
        super().__init__(raw, on_bytes, cancel)
        self.size = _READ_FIRST

    def read(self, n: int = -1) -> bytes:
        want = self.size if n is None or n < 0 else min(n, self.size)
        started = time.monotonic()
        data = super().read(want)
        took = time.monotonic() - started
        if len(data) == want == self.size:
            if took < _READ_TARGET / 2:
                self.size = min(self.size * 2, _READ_MAX)
            elif took > _READ_TARGET:
                self.size = max(_READ_MIN, int(want * _READ_TARGET / took) & ~4095)
        return data


@dataclass
class _LayerJob:
    index: int
    descriptor: mf.Descriptor
    diff_id: str
    chain_id: str
    parent: str
    lock: LayerLock | None = None
    scratch: str = ""
    size: int = 0
    existed: bool = False


def parse_pull_reference(text: str) -> refs.Reference:
    """``docker pull`` parsing: normalized, ``latest`` when neither tag nor digest is given."""
    ref = refs.parse_normalized_named(text)
    if not ref.tag and not ref.digest:
        ref = refs.Reference(ref.domain, ref.path, "latest", None)
    return ref


def pull(
    store: Store,
    client: RegistryClient,
    reference: str,
    *,
    platform: str | None = None,
    on_progress: ProgressCallback | None = None,
    max_concurrent: int = 3,
    cancel: threading.Event | None = None,
    limits: LayerLimits | None = None,
) -> PullResult:
    """Pull ``reference`` into ``store``. Atomic: on any error nothing new looks complete.

    ``limits`` caps what each layer may unpack to (DEFAULT_LAYER_LIMITS when None); a layer
    over them fails the pull with LayerError. A layer download that breaks off mid-way is
    retried (the client's ``retries``, with backoff); a corrupt one is not, nor one longer
    than its descriptor. ``cancel`` is honoured within about 0.1 s, even while waiting on
    the network (the client's sockets are shut down): PullCancelled.
    """
    stop = _Stop(cancel or threading.Event())
    scope = client.cancel_scope(stop)
    try:
        with scope.enter():
            return _pull(
                store,
                client,
                reference,
                platform,
                on_progress,
                max_concurrent,
                stop,
                limits,
                scope,
            )
    except PullCancelled:
        raise
    except Exception as err:
        if stop.caller.is_set():
            raise PullCancelled("pull cancelled") from err
        raise
    finally:
        scope.close()


def _pull(
    store: Store,
    client: RegistryClient,
    reference: str,
    platform: str | None,
    on_progress: ProgressCallback | None,
    max_concurrent: int,
    cancel: _Stop,
    limits: LayerLimits | None,
    scope: CancelScope,
) -> PullResult:
    emit = on_progress or (lambda event: None)
    limits = limits or DEFAULT_LAYER_LIMITS
    ref = parse_pull_reference(reference)
    host = ref.domain
    repo = ref.path
    # dockerd names a digest pull by its whole reference, a tag pull by its tag
    tag_or_digest = ref.string() if ref.digest else ref.tag

    wanted = mf.parse_platform(platform) if platform else mf.host_platform()
    data, media_type, manifest_digest = client.get_manifest(host, repo, ref.digest or ref.tag)
    if ref.digest and manifest_digest != ref.digest:
        raise DigestMismatch(f"manifest verification failed for digest {ref.digest}")
    emit({"kind": "message", "text": f"{tag_or_digest}: Pulling from {repo}"})
    crashpoint("pull.manifest")
    parsed = mf.parse_manifest(data, media_type)
    if isinstance(parsed, mf.Index):
        chosen = mf.select_manifest(parsed, wanted)
        data, media_type, _ = client.get_manifest(host, repo, chosen.digest)
        parsed = mf.parse_manifest(data, media_type)
        if isinstance(parsed, mf.Index):
            raise DockwebError(f"{ref.familiar_string()}: nested image indexes are not supported")

    if store.has_image(parsed.config.digest):
        # as dockerd: an image already here needs no layer, only its references
        with store.locked():
            store.put_manifest(manifest_digest, data)
            updated = _record_references(store, ref, manifest_digest, parsed.config.digest)
        return _finish(
            store,
            emit,
            ref,
            parsed.config.digest,
            manifest_digest,
            updated,
            0,
            len(parsed.layers),
        )

    config_bytes = client.fetch_blob(
        host, repo, parsed.config.digest, max_size=MAX_CONFIG_SIZE, size=parsed.config.size
    )
    crashpoint("pull.config")
    check_json_containers(config_bytes, f"image config {parsed.config.digest}")
    config = json.loads(config_bytes)
    if platform and (
        config.get("os") != wanted.os or config.get("architecture") != wanted.architecture
    ):
        actual = f"{config.get('os')}/{config.get('architecture')}"
        raise NoMatchingPlatform(
            f"image with reference {ref.familiar_string()} was found but does not match the "
            f"specified platform: wanted {wanted.os}/{wanted.architecture}, actual: {actual}"
        )
    diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
    if len(diff_ids) != len(parsed.layers):
        raise DockwebError(
            f"{ref.familiar_string()}: the manifest lists {len(parsed.layers)} layers but the "
            f"image config {len(diff_ids)}"
        )
    chains = chain_ids(diff_ids)
    jobs = [
        _LayerJob(i, d, diff_ids[i], chains[i], chains[i - 1] if i else "")
        for i, d in enumerate(parsed.layers)
    ]

    progress = _Progress(emit)
    try:
        for job in jobs:
            if store.has_layer(job.chain_id):
                job.lock = store.layer_lock(job.chain_id)
                job.lock.acquire(shared=True)
                if store.has_layer(job.chain_id):
                    job.existed = True
                    progress.layer(job, "Already exists")
                    continue
                job.lock.release()
                job.lock = None
            # the size rides along (no bytes yet) so a dashboard can total the pull at once
            progress.layer(job, "Pulling fs layer", None, job.descriptor.size)
        todo = [j for j in jobs if not j.existed]
        for job in todo[max_concurrent:]:
            progress.layer(job, "Waiting", None, job.descriptor.size)

        def fetch(job: _LayerJob) -> None:
            with scope.enter():
                _fetch_layer(store, client, host, repo, job, progress, cancel, limits)

        with ThreadPoolExecutor(max_workers=max(1, max_concurrent)) as pool:
            futures = {j.index: pool.submit(fetch, j) for j in todo}
            try:
                for job in jobs:
                    if job.existed:
                        continue
                    futures[job.index].result()
                    if cancel.caller.is_set():
                        raise PullCancelled("pull cancelled")
                    if job.scratch:
                        progress.layer(job, "Extracting", job.descriptor.size, job.descriptor.size)
                        store.commit_layer(
                            job.scratch,
                            LayerRecord(
                                chain_id=job.chain_id,
                                diff_id=job.diff_id,
                                parent=job.parent,
                                size=job.size,
                                link="",
                                compressed_size=job.descriptor.size,
                                blob_digest=job.descriptor.digest,
                                media_type=job.descriptor.media_type,
                            ),
                        )
                        job.scratch = ""
                        crashpoint("pull.layer.committed")
                        progress.layer(job, "Pull complete")
                    # keep the layer from being deleted until the image is recorded
                    job.lock.acquire(shared=True)
            except BaseException:
                cancel.set()
                raise

        compressed = [
            {
                "digest": j.descriptor.digest,
                "size": j.descriptor.size,
                "media_type": j.descriptor.media_type,
            }
            for j in jobs
        ]
        crashpoint("pull.layers_done")
        if cancel.caller.is_set():
            raise PullCancelled("pull cancelled")
        with store.locked():
            rec = store.put_image(config_bytes, compressed=compressed)
            crashpoint("pull.image_recorded")
            store.put_manifest(manifest_digest, data)
            crashpoint("pull.manifest_recorded")
            updated = _record_references(store, ref, manifest_digest, rec.id)
        crashpoint("pull.references_recorded")
    finally:
        for job in jobs:
            if job.scratch:
                shutil.rmtree(job.scratch, ignore_errors=True)
            if job.lock:
                job.lock.release()

    return _finish(
        store,
        emit,
        ref,
        rec.id,
        manifest_digest,
        updated,
        sum(1 for j in jobs if not j.existed),
        sum(1 for j in jobs if j.existed),
    )


def _finish(
    store, emit, ref, image_id, manifest_digest, updated, downloaded, existing
) -> PullResult:
    familiar = ref.familiar_string()
    events.image(
        store.root, "pull", familiar, ref.familiar_name, events.image_labels(store, image_id)
    )
    emit({"kind": "message", "text": f"Digest: {manifest_digest}"})
    status = "Downloaded newer image for " if updated else "Image is up to date for "
    emit({"kind": "message", "text": "Status: " + status + familiar})
    return PullResult(
        image_id=image_id,
        manifest_digest=manifest_digest,
        reference=ref.string(),
        familiar=familiar,
        updated=updated,
        downloaded_layers=downloaded,
        existing_layers=existing,
    )


def _record_references(
    store: Store, ref: refs.Reference, manifest_digest: str, image_id: str
) -> bool:
    """Tag and digest references as dockerd's pullV2Tag records them. True if the ref moved."""
    digest_ref = refs.Reference(ref.domain, ref.path, None, manifest_digest)
    if store.resolve_reference(ref) == image_id:
        if not ref.digest and store.resolve_reference(digest_ref) is None:
            store.add_reference(digest_ref, image_id)
        return False
    if ref.digest:
        store.add_reference(refs.Reference(ref.domain, ref.path, None, ref.digest), image_id)
    else:
        if store.resolve_reference(digest_ref) is None:
            store.add_reference(digest_ref, image_id)
            crashpoint("pull.digest_reference")
        store.add_reference(ref, image_id, force=True)
    return True


def _fetch_layer(
    store: Store,
    client: RegistryClient,
    host: str,
    repo: str,
    job: _LayerJob,
    progress: _Progress,
    cancel: _Stop,
    limits: LayerLimits,
) -> None:
    """Download and unpack one layer into scratch space, holding its lock exclusively.

    When another pull is fetching the same layer, wait for it and reuse its work: as soon
    as that layer is committed, a shared lock is enough (waiting for the exclusive one would
    deadlock two pulls that each hold a layer the other needs, until one of them ended).
    """
    job.lock = store.layer_lock(job.chain_id)
    while not job.lock.acquire(blocking=False):
        if store.has_layer(job.chain_id) and job.lock.acquire(shared=True, blocking=False):
            if store.has_layer(job.chain_id):
                progress.layer(job, "Download complete")
                return
        if cancel.wait(0.1):
            raise PullCancelled("pull cancelled")
    if store.has_layer(job.chain_id):
        progress.layer(job, "Download complete")
        return
    attempts = max(1, int(getattr(client, "retries", 1)))
    delay = float(getattr(client, "backoff", 0.5))
    stalled = 0.0  # seconds this layer's attempts have waited on a silent registry
    for attempt in range(1, attempts + 1):
        job.scratch = store.new_layer_dir(job.chain_id)
        crashpoint("pull.layer.scratch")
        try:
            _download_layer(client, host, repo, job, progress, cancel, limits)
            break
        except BlobReadError as err:
            # as dockerd: a transfer that broke off is tried again from the start; one that
            # stalled only while the waits stay within the client's deadline
            shutil.rmtree(job.scratch, ignore_errors=True)
            job.scratch = ""
            if err.stalled:
                stalled += client.timeout.read_timeout or 0
            if attempt == attempts or (err.stalled and not client.may_retry_stall(stalled)):
                raise
            wait = min(delay, float(getattr(client, "max_backoff", 10.0)))
            progress.layer(job, f"Retrying in {max(1, round(wait))} second" + "s" * (wait > 1))
            if cancel.wait(wait):
                raise PullCancelled("pull cancelled") from None
            delay *= 2
    crashpoint("pull.layer.verified")
    progress.layer(job, "Download complete")


def _download_layer(
    client: RegistryClient,
    host: str,
    repo: str,
    job: _LayerJob,
    progress: _Progress,
    cancel: _Stop,
    limits: LayerLimits,
) -> None:
    desc = job.descriptor
    total = desc.size

    def on_bytes(count: int) -> None:
        progress.layer(job, "Downloading", count, total, throttle=True)

    with client.open_blob(host, repo, desc.digest, size=desc.size) as raw:
        blob = _BlobTap(raw, on_bytes, cancel)
        unpacked = _Tap(
            _RatioGuard(
                open_decompressed(blob, compression_of_media_type(desc.media_type)), blob, limits
            ),
            None,
            cancel,
        )
        try:
            job.size = apply_layer(
                unpacked,
                job.scratch + "/diff",
                limits=limits,
                # keep what save and push need to give back the very tar (the DiffID)
                tar_split=job.scratch + "/" + TAR_SPLIT,
            )
            # drain whatever follows the tar (padding) so both digests cover everything
            while unpacked.read(_READ_SIZE):
                pass
        except LayerError as err:
            if getattr(err, "from_limits", False):
                raise LayerError(f"refusing filesystem layer {desc.digest}: {err}") from err
            # bytes damaged on the way break the gzip or tar stream before the digest can be
            # checked: read the rest (no more than the manifest promised) to tell which
            while total and blob.count <= total and blob.read(_READ_SIZE):
                pass
            if total and blob.digest() != desc.digest:
                raise DigestMismatch(
                    f"filesystem layer verification failed for digest {desc.digest}"
                ) from err
            raise
        while blob.read(_READ_SIZE):
            pass
    crashpoint("pull.layer.unpacked")
    progress.layer(job, "Verifying Checksum")
    if blob.digest() != desc.digest:
        raise DigestMismatch(f"filesystem layer verification failed for digest {desc.digest}")
    if total and blob.count != total:
        raise DigestMismatch(
            f"filesystem layer verification failed for digest {desc.digest}: "
            f"expected {total} bytes, got {blob.count}"
        )
    if unpacked.digest() != job.diff_id:
        raise DigestMismatch(
            f"layer {short_id(desc.digest)} does not match the image config: diffID "
            f"{unpacked.digest()} found, {job.diff_id} expected"
        )


class _Progress:
    """Turns layer states into progress events, throttling byte counts per layer."""

    def __init__(self, emit: ProgressCallback):
        self.emit = emit
        self.last: dict[int, float] = {}
        self.lock = threading.Lock()

    def layer(
        self,
        job: _LayerJob,
        status: str,
        current: int | None = None,
        total: int | None = None,
        *,
        throttle: bool = False,
    ) -> None:
        if throttle:
            now = time.monotonic()
            with self.lock:
                if now - self.last.get(job.index, 0.0) < _PROGRESS_INTERVAL and current != total:
                    return
                self.last[job.index] = now
        with contextlib.suppress(Exception):
            self.emit(
                {
                    "kind": "layer",
                    "id": short_id(job.descriptor.digest),
                    "digest": job.descriptor.digest,
                    "index": job.index,
                    "status": status,
                    "current": current,
                    "total": total,
                }
            )
