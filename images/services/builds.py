"""``docker build`` and ``docker commit``, and builds queued from the Build page and run by
the worker with their output and steps kept in Build and BuildStep rows."""

from __future__ import annotations

import bz2
import itertools
import logging
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from containers.services import sync_containers
from dockweb import jobs, live
from dockweb.engine import get_manager, get_store
from dockweb.runtime import reference as refs
from dockweb.runtime.errors import BuildError, DockwebError
from dockweb.runtime.store import Store
from dockweb.runtime.units import human_size
from images.models import Build, BuildStep
from images.services.explorer import analyze_after_pull
from images.services.mirror import sync_after_change
from images.services.pulls import pull_image

log = logging.getLogger(__name__)


# -- build and commit --------------------------------------------------------------------


def _pull_for_build(
    reference: str,
    out: Callable[[str], None],
    credentials: dict[str, tuple[str, str]] | None = None,
) -> None:
    """Pull a FROM image the store lacks, printing the lines ``docker build`` prints."""

    def progress(event: dict) -> None:
        if event["kind"] == "message":
            out(event["text"] + "\n")
        elif event.get("current") is None:
            out(f"{event['id']}: {event['status']}\n")

    pull_image(reference, on_progress=progress, credentials=credentials)


def build_image(
    options,
    *,
    on_output: Callable[[str], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
    credentials: dict[str, tuple[str, str]] | None = None,
    cancel: threading.Event | None = None,
):
    """``docker build`` (dockweb.runtime.build) with this store and container manager, then
    mirror images and containers and analyze the result for the layer explorer.

    ``on_stderr`` gets what RUN steps write to stderr (default: ``on_output``),
    ``on_stage(image_id)`` each stage's image as it ends; ``credentials`` (host -> (user,
    password)) are used to pull FROM images; ``cancel`` stops the build before its next
    step. Raises BuildError with Docker's message; the
    steps that succeeded keep their images.
    """
    from dockweb.runtime.build import build

    store = get_store()

    def pull(reference: str, out: Callable[[str], None]) -> None:
        _pull_for_build(reference, out, credentials)

    try:
        result = build(
            store,
            get_manager(),
            options,
            on_output=on_output,
            pull=pull,
            on_stderr=on_stderr,
            on_stage=on_stage,
            cancel=cancel,
        )
    finally:
        sync_after_change(store)
        sync_containers()  # a failed RUN leaves its container, as Docker's does
    analyze_after_pull(store, result.image_id)
    return result


def commit_container(
    container: str,
    repo_tag: str = "",
    *,
    message: str = "",
    author: str = "",
    changes: list[str] | tuple[str, ...] = (),
    pause: bool = True,
) -> str:
    """``docker commit``: the new image's ID (``sha256:...``), mirrored and analyzed."""
    from dockweb.runtime.build import commit

    store = get_store()
    try:
        image_id = commit(
            store,
            get_manager(),
            container,
            repo_tag,
            message=message,
            author=author,
            changes=changes,
            pause=pause,
        )
    finally:
        sync_after_change(store)
    analyze_after_pull(store, image_id)
    return image_id


def build_recorded(
    options,
    *,
    context_size: int = 0,
    on_output: Callable[[str], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
    credentials: dict[str, tuple[str, str]] | None = None,
    cancel: threading.Event | None = None,
    user=None,
):
    """``build_image`` run here and now (the Engine API's ``POST /build``), recorded as the
    Build page's builds are: a Build row, running from the start, with its output and steps
    written as they come, ended done (with the image ID) or failed (with Docker's message
    and the Dockerfile line it names). Returns the BuildResult; raises what build_image
    raises, once the row records it."""
    now = timezone.now()
    row = Build.objects.create(
        dockerfile=options.dockerfile,
        tags=list(options.tags),
        no_cache=options.no_cache,
        build_args={k: v for k, v in options.build_args.items() if v is not None},
        context_size=context_size,
        status=Build.Status.RUNNING,
        worker=jobs.worker_identity(),
        started_at=now,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    progress = BuildProgress(row, get_store(), interval=jobs.progress_interval()).start()

    def out(text: str) -> None:
        progress(text)
        if on_output:
            on_output(text)

    def err(text: str) -> None:
        progress(text)
        if on_stderr or on_output:
            (on_stderr or on_output)(text)

    fields: dict = {}
    try:
        result = build_image(
            options,
            on_output=out,
            on_stderr=err,
            on_stage=on_stage,
            credentials=credentials,
            cancel=cancel,
        )
        progress.finish(result.steps)
        fields = {"status": Build.Status.DONE, "image_id": result.image_id}
    except BaseException as e:
        fields = {
            "status": Build.Status.FAILED,
            "error": jobs.failure_message("build", e),
            **_error_line(row, e),
        }
        raise
    finally:
        progress.close()
        done = timezone.now()
        Build.objects.filter(pk=row.pk).update(finished_at=done, updated_at=done, **fields)
    return result


# -- builds from the Build page ----------------------------------------------------------


class BuildRefused(DockwebError):
    """A build the Build page cannot queue (bad upload, tag or Dockerfile); ``str(e)`` says
    what to change."""


def _builds_dir() -> str:
    return os.path.join(str(settings.DOCKWEB_DATA), "builds")


def _unsafe_member(m: tarfile.TarInfo) -> str:
    """Why a context archive's entry cannot be extracted ("" when it can)."""
    parts = m.name.replace("\\", "/").split("/")
    if m.name.startswith("/") or ".." in parts:
        return "its path leaves the context"
    if m.islnk() and (m.linkname.startswith("/") or ".." in m.linkname.split("/")):
        return "it is a hard link to a file outside the context"
    if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
        return "devices and pipes cannot be part of a build context"
    return ""


def extract_context(archive, dest: str) -> int:
    """Unpack a .tar / .tar.gz upload into ``dest``; bytes unpacked.

    Every entry is checked before anything is written, so a refused archive leaves nothing;
    extraction then goes through tarfile's "tar" filter too, which also refuses writing
    through a symlink the archive made.
    """
    try:
        with tarfile.open(fileobj=archive, mode="r:*") as tar:
            members = tar.getmembers()
            total = 0
            for m in members:
                why = _unsafe_member(m)
                if why:
                    raise BuildRefused(f"refused the context archive: {m.name}: {why}")
                total += m.size if m.isfile() else 0
            limit = settings.DOCKWEB_BUILD_CONTEXT_LIMIT
            if total > limit:
                raise BuildRefused(
                    f"refused the context archive: it unpacks to {human_size(total)}, more than "
                    f"the {human_size(limit)} allowed (DOCKWEB_BUILD_CONTEXT_LIMIT)"
                )
            tar.extractall(dest, members=members, filter="tar")
    except tarfile.FilterError as err:
        raise BuildRefused(f"refused the context archive: {err}") from None
    except (tarfile.TarError, EOFError, OSError) as err:
        raise BuildRefused(
            f"cannot read the context archive: {err}; upload a .tar or .tar.gz file"
        ) from None
    return total


def receive_context(chunks: Iterable[bytes]) -> tuple[str, int]:
    """A build context sent as a tar stream (plain, gzip, bzip2 or xz, as dockerd takes it),
    unpacked into a new directory under DOCKWEB_DATA/builds: (the context directory, bytes
    unpacked). An empty stream is an empty context. The caller removes
    ``os.path.dirname(context)`` when the build ends. Raises BuildRefused as
    ``extract_context``, or for a stream larger than DOCKWEB_BUILD_CONTEXT_LIMIT."""
    os.makedirs(_builds_dir(), exist_ok=True)
    work = tempfile.mkdtemp(prefix="api-", dir=_builds_dir())
    try:
        context = os.path.join(work, "context")
        os.mkdir(context)
        limit = settings.DOCKWEB_BUILD_CONTEXT_LIMIT
        received = 0
        with tempfile.TemporaryFile(dir=work) as spool:
            for chunk in _decompressed_chunks(chunks):
                received += len(chunk)
                if received > limit:
                    raise BuildRefused(
                        f"refused the context archive: more than the {human_size(limit)} "
                        "allowed (DOCKWEB_BUILD_CONTEXT_LIMIT)"
                    )
                spool.write(chunk)
            # Go's tar reader takes an archive whose last entry is not padded and that has
            # no end blocks (the docker CLI sends one when -f names a Dockerfile outside the
            # context); Python's wants both
            spool.write(b"\0" * (-received % 512 + 1024))
            spool.seek(0)
            size = extract_context(spool, context) if received else 0
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return context, size


def _decompressed_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The stream as moby's DecompressStream gives it: gzip, bzip2 and xz undone (told by
    their magic numbers), anything else as it is."""
    from dockweb.runtime.build import compression

    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= 6:
            break
    kind = compression(head)
    if not kind:
        if head:
            yield head
        yield from it
        return
    decoder = {
        "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
        "bzip2": bz2.BZ2Decompressor,
        "xz": lzma.LZMADecompressor,
    }[kind]()
    try:
        for chunk in itertools.chain([head], it):
            out = decoder.decompress(chunk)
            if out:
                yield out
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as err:
        raise BuildRefused(f"cannot read the context archive: {err}") from None


def _save_context_files(files, dest: str) -> int:
    """Save individually uploaded files at the top of the context; bytes saved."""
    limit = settings.DOCKWEB_BUILD_CONTEXT_LIMIT
    total = 0
    for f in files:
        name = os.path.basename(f.name or "")
        if name in ("", ".", "..") or "\0" in name:
            raise BuildRefused(f"refused the uploaded file {f.name!r}: name it something else")
        total += f.size or 0
        if total > limit:
            raise BuildRefused(
                f"refused the uploaded files: more than the {human_size(limit)} "
                "allowed (DOCKWEB_BUILD_CONTEXT_LIMIT)"
            )
        with open(os.path.join(dest, name), "wb") as out:
            for chunk in f.chunks():
                out.write(chunk)
    return total


def _check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        try:
            ref = refs.parse_normalized_named(tag)
        except DockwebError:
            ref = None
        if ref is None or ref.digest:
            raise BuildRefused(
                f'invalid argument "{tag}" for "-t, --tag" flag: invalid reference format'
            )
    return tags


def start_build(
    dockerfile: str,
    *,
    archive=None,
    files=(),
    tags: list[str] | tuple[str, ...] = (),
    no_cache: bool = False,
    build_args: dict[str, str] | None = None,
    user=None,
) -> Build:
    """Save the context, queue the build; the worker runs it (images.tasks.run_build) once
    this transaction commits.

    ``archive`` is an uploaded .tar/.tar.gz unpacked as the context, ``files`` uploaded
    files put at its top; with neither the build has no context (COPY then fails as
    Docker's does). An empty ``dockerfile`` takes the context's ``Dockerfile``. Raises
    BuildRefused for an unsafe or unreadable upload, a bad tag or a Dockerfile that does not
    parse (with its line), before anything is queued or kept.
    """
    from dockweb.runtime.build import parse_dockerfile

    tags = _check_tags([t for t in tags if t])
    os.makedirs(_builds_dir(), exist_ok=True)
    upload = tempfile.mkdtemp(prefix="upload-", dir=_builds_dir())
    try:
        context = os.path.join(upload, "context")
        os.mkdir(context)
        size = 0
        if archive is not None:
            size += extract_context(archive, context)
        size += _save_context_files(files, context)
        has_context = archive is not None or bool(files)
        if not dockerfile.strip():
            path = os.path.join(context, "Dockerfile")
            if not (has_context and os.path.isfile(path) and not os.path.islink(path)):
                raise BuildRefused(
                    "enter a Dockerfile, or upload a context with a Dockerfile at its top"
                )
            with open(path, encoding="utf-8", errors="replace") as f:
                dockerfile = f.read()
        try:
            parse_dockerfile(dockerfile)
        except DockwebError as err:
            raise BuildRefused(str(err)) from None
        with transaction.atomic():
            row = Build.objects.create(
                dockerfile=dockerfile,
                tags=tags,
                no_cache=no_cache,
                build_args=dict(build_args or {}),
                context_size=size,
                created_by=user if user is not None and user.is_authenticated else None,
            )
            if has_context:
                final = os.path.join(_builds_dir(), str(row.pk))
                shutil.rmtree(final, ignore_errors=True)  # left by a database reset
                os.rename(upload, final)
                row.context_dir = os.path.join(final, "context")
                row.save(update_fields=["context_dir"])
            jobs.enqueue(row)
    finally:
        shutil.rmtree(upload, ignore_errors=True)  # gone already when renamed
    return row


def mark_stages(steps: list) -> list[dict]:
    """The stages of a build's steps, as the classic builder runs them: each ``FROM`` step
    starts one (its index, its ``AS`` name, its base). Sets ``step.stage`` on each FROM
    step (None on the others) and returns the stages in order, with their step numbers."""
    stages: list[dict] = []
    for step in steps:
        step.stage = None
        words = [w for w in (step.instruction or "").split() if not w.startswith("--")]
        if words and words[0].upper() == "FROM" and len(words) >= 2:
            name = words[3].lower() if len(words) == 4 and words[2].lower() == "as" else ""
            stage = {"index": len(stages), "name": name, "base": words[1], "steps": []}
            stages.append(stage)
            step.stage = stage
        if stages:
            stages[-1]["steps"].append(step.number)
    return stages


_STEP_LINE = re.compile(r"^Step (\d+)/\d+ : (.*)$")
_STEP_DONE = re.compile(r"^ ---> ([0-9a-f]{12})$")
MAX_BUILD_LINES = 10_000


class BuildProgress(jobs.RowWriter):
    """A build's output and steps, kept in memory and written to its rows at a bounded rate.

    Call the instance with the text ``docker build`` prints (any chunks: lines are split
    here). ``Step n/N`` lines start a step record; `` ---> <id>`` ends it, with the size of
    the layer the step added, read from the store (this runs in the worker). A writer thread
    writes what changed at most once per ``interval``; ``close()`` stops it and makes the
    final write. Only the last MAX_BUILD_LINES lines are kept.
    """

    kind = "build"

    def __init__(self, build_row: Build, store: Store, *, interval: float = 0.2):
        super().__init__(build_row.pk, interval)
        self.build_id = build_row.pk
        self.store = store
        self.lines: list[str] = list(build_row.output or [])
        self.dropped = 0
        self.partial = ""
        self.steps: dict[int, dict] = {}
        self.current: int = 0
        self.dirty_steps: set[int] = set()

    def __call__(self, text: str) -> None:
        with self.lock:
            self.dirty = True
            *complete, self.partial = (self.partial + text).split("\n")
            for line in complete:
                self._line(line)

    def _line(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) > MAX_BUILD_LINES:
            self.dropped += len(self.lines) - MAX_BUILD_LINES
            del self.lines[: len(self.lines) - MAX_BUILD_LINES]
        m = _STEP_LINE.match(line)
        if m and int(m.group(1)) == self.current + 1:
            self.current = int(m.group(1))
            self.steps[self.current] = {
                "instruction": m.group(2),
                "image_id": "",
                "cached": False,
                "layer_size": None,
            }
            self.dirty_steps.add(self.current)
            return
        step = self.steps.get(self.current)
        if step is None or step["image_id"]:
            return
        if line == " ---> Using cache":
            step["cached"] = True
        elif m := _STEP_DONE.match(line):
            step["image_id"], step["layer_size"] = self._made(m.group(1), step)
            self.dirty_steps.add(self.current)

    def _made(self, short: str, step: dict) -> tuple[str, int | None]:
        """The step's full image ID and the size of the layer it added (None: none)."""
        try:
            rec = self.store.lookup(short)
        except DockwebError:
            return "sha256:" + short, None
        history = rec.config.get("history") or []
        new_layer = (
            not step["cached"]
            and not step["instruction"].upper().startswith("FROM ")
            and rec.layers
            and history
            and not history[-1].get("empty_layer")
        )
        if not new_layer:
            return rec.id, None
        try:
            return rec.id, self.store.get_layer(rec.layers[-1]).size
        except DockwebError:
            return rec.id, None

    def finish(self, steps) -> None:
        """Take the builder's own step results (runtime StepResult) as the final records."""
        with self.lock:
            for s in steps:
                self.steps[s.number] = {
                    "instruction": s.instruction,
                    "image_id": s.image_id,
                    "cached": s.cached,
                    "layer_size": s.layer_size,
                }
                self.dirty_steps.add(s.number)
            self.dirty = True

    def output(self) -> list[str]:
        lines = self.lines + ([self.partial] if self.partial else [])
        if self.dropped:
            lines = [f"[{self.dropped} earlier lines not kept]", *lines]
        return lines

    def flush(self) -> None:
        with self.lock:
            if not self.dirty:
                return
            rows = [
                BuildStep(build_id=self.build_id, number=n, **self.steps[n])
                for n in sorted(self.dirty_steps)
            ]
            output = self.output()
            dirty_steps, self.dirty_steps, self.dirty = self.dirty_steps, set(), False
        try:
            with transaction.atomic():
                BuildStep.objects.bulk_create(
                    rows,
                    update_conflicts=True,
                    unique_fields=["build", "number"],
                    update_fields=["instruction", "image_id", "cached", "layer_size"],
                )
                Build.objects.filter(pk=self.build_id).update(
                    output=output, updated_at=timezone.now()
                )
            live.publish(f"build-{self.build_id}")
        except Exception:
            log.exception("build %s: could not write progress", self.build_id)
            with self.lock:
                self.dirty = True
                self.dirty_steps |= dirty_steps


def _error_line(row: Build, err: BaseException) -> dict:
    """The Dockerfile line a build error names."""
    return {"error_line": err.line} if isinstance(err, BuildError) else {}


@jobs.kind(
    "build",
    model=Build,
    task="images.tasks.run_build",
    what="build",
    abandoned="the worker stopped during the build; start the build again",
    claim_stamps=("started_at", "updated_at"),
    end_stamps=("finished_at", "updated_at"),
    failed_fields=_error_line,
)
def run_build(row: Build) -> dict:
    """Run a queued build in this process (the worker); ``run_build(build_id)``. Does
    nothing unless the row is queued (a duplicate delivery is a no-op).

    Ends the row done (with the image ID) or failed (with Docker's message and the
    Dockerfile line it names); never raises for a failed build. The saved context is
    removed either way.
    """
    from dockweb.runtime.build import BuildOptions

    progress = BuildProgress(row, get_store(), interval=jobs.progress_interval()).start()
    try:
        options = BuildOptions(
            dockerfile=row.dockerfile,
            context_dir=row.context_dir or None,
            tags=list(row.tags),
            build_args=dict(row.build_args),
            no_cache=row.no_cache,
        )
        result = build_image(options, on_output=progress)
        progress.finish(result.steps)
    finally:
        progress.close()
        if row.context_dir:
            shutil.rmtree(os.path.dirname(row.context_dir), ignore_errors=True)
    return {"image_id": result.image_id}
