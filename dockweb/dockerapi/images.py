"""Engine API: images — list, pull (``images/create``), inspect, history, tag, remove,
prune, save (``images/get``), load, push; search answers 501 (dockweb has no registry
search).

Pull, push, load and save run in a thread of their own that feeds the answer through a
queue (``_Producer``): as dockerd, an error before the first byte is an HTTP error with its
status, one after it ends the stream (``errorDetail`` for the JSON streams). A pull is a
Pull row run in this process by the jobs layer (``services.pull_here``), so the dashboard's
Pull page shows it live; the client going away cancels it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator

from dockweb.docker import jsonmessage
from dockweb.dockerapi.errors import as_api_error
from dockweb.dockerapi.http import (
    ApiError,
    Json,
    Raw,
    Request,
    Stream,
    bad_request,
    unsupported,
)
from dockweb.dockerapi.router import Routes
from dockweb.runtime import reference as refs
from dockweb.runtime.auth import AuthConfig, auth_config_from_entry
from dockweb.runtime.errors import AuthError, InvalidReference
from dockweb.runtime.pull import PullCancelled
from images import services

log = logging.getLogger(__name__)
routes = Routes()

_QUEUE_ITEMS = 64  # chunks a slow client may leave unread before the producer waits
_TAR_CHUNK = 1 << 16


# -- streams -----------------------------------------------------------------------------


class _Gone(Exception):
    """The client went away: a producer that cannot stop otherwise (save) stops here."""


_END = object()


class _Producer:
    """``work(put)`` in a thread of its own, its output (bytes given to ``put``) sent on as
    it comes; a callable ``work`` returns runs once the answer has ended.

    ``answer()`` waits for the first output: an error raised before any becomes the HTTP
    answer (dockerd's ``if !output.Flushed() { return err }``); afterwards the stream goes on
    and an error is written into it by ``on_error`` (the JSON streams) or ends the
    connection (a tarball). ``cancel`` is set when the client goes away; ``put`` then drops
    the output, or raises ``_Gone`` with ``stop_when_gone``.
    """

    def __init__(
        self,
        work: Callable[[Callable[[bytes], None]], None],
        *,
        on_error: Callable[[BaseException], bytes] | None = None,
        cancel: threading.Event | None = None,
        stop_when_gone: bool = False,
    ):
        self.work = work
        self.on_error = on_error
        self.cancel = cancel or threading.Event()
        self.stop_when_gone = stop_when_gone
        self.error: BaseException | None = None
        self.queue: queue.Queue = queue.Queue(_QUEUE_ITEMS)
        threading.Thread(target=self._run, daemon=True, name="dockerapi-producer").start()

    def put(self, data) -> None:
        while not self.cancel.is_set():
            try:
                self.queue.put(data, timeout=0.25)
                return
            except queue.Full:
                continue
        if self.stop_when_gone and data is not _END:
            raise _Gone

    def _run(self) -> None:
        from django.db import connection

        after = None
        try:
            after = self.work(self.put)
        except BaseException as err:  # noqa: BLE001 - handed to the answer
            self.error = err
        finally:
            self.put(_END)
        try:
            if callable(after):
                after()  # work that the client need not wait for
        except Exception:
            log.exception("dockerapi: after an answer")
        finally:
            connection.close()

    def answer(self, content_type: str = "application/json", *, always: bool = False) -> Stream:
        """The answer, once there is output (or, with ``always``, at once: an error is then
        reported in the stream whenever it comes)."""
        first = b"" if always else self.queue.get()
        if first is _END and self.error is not None:
            raise self.error
        return Stream(self._rest(first), content_type=content_type, on_close=self.cancel.set)

    def _rest(self, first) -> Iterator[bytes]:
        item = first
        while item is not _END:
            yield item
            item = self.queue.get()
        if self.error is not None:
            if self.on_error is None:
                raise self.error
            yield self.on_error(self.error)


def _stream_error(err: BaseException) -> bytes:
    if isinstance(err, _Gone):
        return b""
    return jsonmessage.encode(jsonmessage.error_message(as_api_error(err).message))


def _progress_line(event: dict) -> dict:
    """A runtime progress event as dockerd's JSONMessage."""
    if event.get("kind") == "message":
        text = event["text"]
        head, sep, repo = text.partition(": Pulling from ")
        if sep:
            return jsonmessage.status_message("Pulling from " + repo, head)
        return jsonmessage.status_message(text)
    return jsonmessage.layer_message(event)


def _json_put(put: Callable[[bytes], None]) -> Callable[[dict], None]:
    return lambda event: put(jsonmessage.encode(_progress_line(event)))


# -- input -------------------------------------------------------------------------------


def _registry_auth(req: Request, domain: str) -> dict[str, AuthConfig]:
    """``X-Registry-Auth`` (base64url JSON AuthConfig) as credentials for ``domain``; a
    header that does not decode counts as none, as dockerd's."""
    encoded = req.headers.get("x-registry-auth", "")
    if not encoded:
        return {}
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        doc = json.loads(raw)
    except (ValueError, binascii.Error):
        return {}
    return _auth_from_doc(doc, domain)


def _auth_from_doc(doc, domain: str) -> dict[str, AuthConfig]:
    if not isinstance(doc, dict):
        return {}
    try:
        config = auth_config_from_entry(doc)
    except AuthError:
        return {}
    return {} if config.anonymous else {domain: config}


def _named(text: str) -> refs.Reference:
    try:
        return refs.parse_normalized_named(text)
    except InvalidReference as err:
        raise bad_request(str(err)) from None


def _pull_reference(image: str, tag: str) -> refs.Reference:
    """dockerd's PullImage: ``fromImage`` (a trailing ":" dropped) with ``tag``, which may
    be a digest."""
    ref = _named(image.removesuffix(":"))
    try:
        if tag:
            try:
                digest = refs.validate_go_digest(tag)
            except InvalidReference:
                ref = ref.with_tag(tag)
            else:
                ref = ref.trim_named().with_digest(digest)
    except InvalidReference as err:
        raise bad_request(str(err)) from None
    if not ref.tag and not ref.digest:
        raise unsupported("pulling every tag of a repository (docker pull --all-tags)")
    return ref


# -- list, inspect, history --------------------------------------------------------------


def _summary(s: dict) -> dict:
    """An ImageSummary as dockerd 20.10 encodes it (its field order, null for no list)."""
    return {
        "Containers": s["Containers"],
        "Created": s["Created"],
        "Id": s["Id"],
        "Labels": s["Labels"],  # an empty map stays {}, as Go encodes a non-nil one
        "ParentId": s["ParentId"],
        "RepoDigests": s["RepoDigests"] or None,
        "RepoTags": s["RepoTags"] or None,
        "SharedSize": s["SharedSize"],
        "Size": s["Size"],
        "VirtualSize": s["VirtualSize"],
    }


@routes.get("/images/json")
def list_images(req: Request) -> Json:
    filters = req.qfilters()
    legacy = req.q("filter")  # deprecated since 1.13, still read by dockerd 20.10
    if legacy:
        filters.setdefault("reference", []).append(legacy)
    summaries = services.list_images(
        all=req.qbool("all"), filters=filters, shared_size=req.qbool("shared-size")
    )
    return Json([_summary(s) for s in summaries])


@routes.get("/images/search")
def search(req: Request) -> Json:
    raise ApiError(501, "dockweb does not support searching a registry (docker search)")


@routes.get("/images/get")
def save_many(req: Request) -> Stream:
    return _save(req.qlist("names"))


@routes.get("/images/{name:.*}/json")
def inspect(req: Request) -> Json:
    return Json(services.inspect_image(req.params["name"]))


@routes.get("/images/{name:.*}/history")
def history(req: Request) -> Json:
    return Json(
        [
            {
                "Comment": h["Comment"],
                "Created": h["Created"],
                "CreatedBy": h["CreatedBy"],
                "Id": h["Id"],
                "Size": h["Size"],
                "Tags": h["Tags"],
            }
            for h in services.image_history(req.params["name"])
        ]
    )


@routes.get("/images/{name:.*}/get")
def save_one(req: Request) -> Stream:
    return _save([req.params["name"]])


# -- pull --------------------------------------------------------------------------------


@routes.post("/images/create", audit="image.pull", target="fromImage")
def create(req: Request) -> Stream:
    image, tag = req.q("fromImage") or "", req.q("tag") or ""
    platform = req.q("platform") or ""
    if platform:
        from dockweb.runtime import manifest as mf

        try:
            mf.parse_platform(platform)
        except ValueError as err:
            raise bad_request(str(err)) from None
    if not image:
        if req.q("fromSrc") is not None:
            raise unsupported("fromSrc (docker import)")
        raise bad_request("fromImage or fromSrc is required")
    ref = _pull_reference(image, tag)
    credentials = _registry_auth(req, ref.domain)
    cancel = threading.Event()

    def work(put: Callable[[bytes], None]) -> Callable[[], None]:
        row, outcome = services.pull_here(
            ref.familiar_string(),
            platform=platform,
            on_progress=_json_put(put),
            credentials=credentials,
            cancel=cancel,
            analyze=False,
        )
        if outcome is None or outcome.fields.get("status") == "cancelled":
            raise PullCancelled("pull cancelled")
        if outcome.error is not None:
            raise outcome.error
        # the layer explorer's analysis is the dashboard's alone: after the client's answer
        return lambda: services.analyze_after_pull(services.get_store(), row.image_id)

    return _Producer(work, on_error=_stream_error, cancel=cancel).answer()


# -- tag, remove, prune ------------------------------------------------------------------


@routes.post("/images/{name:.*}/tag", audit="image.tag", target="name")
def tag(req: Request) -> Raw:
    """dockerd's TagImage: the image first (404), then the new name (500 when malformed,
    as dockerd's plain errors), then a digest reference is refused (400)."""
    name = req.params["name"]
    services.inspect_image(name)
    try:
        target = refs.parse_normalized_named(req.q("repo") or "")
        if req.q("tag"):
            target = target.trim_named().with_tag(req.q("tag"))
    except InvalidReference as err:
        raise ApiError(500, str(err)) from None
    if target.digest:
        raise bad_request("refusing to create a tag with a digest reference")
    services.tag_image(name, target.string())
    return Raw(b"", status=201, content_type=None)


@routes.delete("/images/{name:.*}", audit="image.remove", target="name")
def remove(req: Request) -> Json:
    records = services.remove_image(
        req.params["name"], force=req.qbool("force"), prune=not req.qbool("noprune")
    )
    return Json([{kind: value} for kind, value in records])


@routes.post("/images/prune", audit="image.prune")
def prune(req: Request) -> Json:
    from disk import services as disk

    filters = req.qfilters()
    prune_all = False
    if "dangling" in filters:
        values = filters["dangling"]
        if any(v.lower() in ("false", "0") for v in values):
            prune_all = True
        elif not any(v.lower() in ("true", "1") for v in values):
            raise bad_request(f"Invalid filter 'dangling=[{' '.join(values)}]'")
        filters = {k: v for k, v in filters.items() if k != "dangling"}
    records, space = disk.prune_images(all=prune_all, filters=filters)
    deleted = [{kind.capitalize(): value} for kind, value in records]
    return Json({"ImagesDeleted": deleted or None, "SpaceReclaimed": space})


# -- save, load, push --------------------------------------------------------------------


class _ChunkWriter:
    """A binary stream whose writes leave as chunks of about 64 KiB."""

    def __init__(self, put: Callable[[bytes], None]):
        self.put = put
        self.buf = bytearray()

    def write(self, data) -> int:
        self.buf += data
        if len(self.buf) >= _TAR_CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            self.put(data)


def _save(names: list[str]) -> Stream:
    def work(put: Callable[[bytes], None]) -> None:
        out = _ChunkWriter(put)
        services.save_images(names, out)
        out.flush()

    return _Producer(work, stop_when_gone=True).answer("application/x-tar")


@routes.post("/images/load", audit="image.load")
def load(req: Request) -> Stream:
    quiet = req.qbool("quiet", True)
    # the whole upload first: the connection's reader is this thread's alone, and the
    # runtime wants a seekable tarball anyway
    spool = tempfile.TemporaryFile(dir=services.get_store().tmp_dir)
    for chunk in req.body.chunks():
        spool.write(chunk)
    spool.seek(0)

    def line(event: dict) -> dict:
        if event.get("kind") == "message":
            return jsonmessage.stream_message(event["text"] + "\n")
        return jsonmessage.layer_message(event)

    def work(put: Callable[[bytes], None]) -> None:
        with spool:
            services.load_images(
                spool, on_output=lambda e: put(jsonmessage.encode(line(e))), quiet=quiet
            )

    # dockerd answers 200 and reports a failed load in the stream, even before any output
    return _Producer(work, on_error=_stream_error).answer(always=True)


@routes.post("/images/{name:.*}/push", audit="image.push", target="name")
def push(req: Request) -> Stream:
    name = req.params["name"]
    ref = _named(name)
    if "x-registry-auth" in req.headers:
        credentials = _registry_auth(req, ref.domain)
    else:
        try:
            doc = json.loads(req.body.read() or b"")
        except ValueError:
            raise bad_request("Bad parameters and missing X-Registry-Auth: EOF") from None
        credentials = _auth_from_doc(doc, ref.domain)
    tag = req.q("tag") or ""
    if tag:
        try:
            ref = ref.with_tag(tag)
        except InvalidReference as err:
            raise bad_request(str(err)) from None
    targets = [ref] if ref.tag else _repository_tags(ref)

    def work(put: Callable[[bytes], None]) -> None:
        said: set[str] = set()
        emit = _json_put(put)

        def on_progress(event: dict) -> None:
            # one "The push refers to repository" line however many tags go
            if event.get("kind") == "message" and event["text"].startswith("The push refers"):
                if event["text"] in said:
                    return
                said.add(event["text"])
            emit(event)

        for target in targets or [ref]:
            result = services.push_image(
                target.string(), on_progress=on_progress, credentials=credentials
            )
            put(
                jsonmessage.encode(
                    jsonmessage.aux_message(
                        {"Tag": result.tag, "Digest": result.digest, "Size": result.size}
                    )
                )
            )

    return _Producer(work, on_error=_stream_error).answer()


def _repository_tags(ref: refs.Reference) -> list[refs.Reference]:
    """Every tag of ``ref``'s repository, for a push without a tag (``--all-tags``)."""
    found = {
        r
        for rs in services.get_store().all_references().values()
        for r in rs
        if r.tag and r.name == ref.name
    }
    return sorted(found, key=lambda r: r.tag)

