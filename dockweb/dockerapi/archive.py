"""Engine API: a container's files and processes as dockerd 20.10 serves them.

- ``GET|HEAD|PUT /containers/{name}/archive?path=`` (``docker cp`` both ways): the tar of a
  path with its ``X-Docker-Container-Path-Stat`` header, the header alone, a tar unpacked
  into a directory (``noOverwriteDirNonDir``, ``copyUIDGID``); ``dockweb.runtime.copy``
  resolves paths inside the container, as ``dockweb cp`` does;
- ``GET /containers/{name}/export``: the tar of its file system;
- ``GET /containers/{name}/changes``: ``docker diff`` as ``[{"Path", "Kind"}]``;
- ``GET /containers/{name}/top?ps_args=``: ``{"Processes", "Titles"}``;
- ``GET /containers/{name}/stats?stream=&one-shot=``: dockerd's stats frames, one a second
  while streaming.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

from containers import services
from dockweb.docker.stats import ZERO_TIME, stats_json, zero_cpu_stats
from dockweb.dockerapi.http import (
    Json,
    Raw,
    Request,
    Stream,
    bad_request,
    dumps,
    written,
)
from dockweb.dockerapi.router import Routes
from dockweb.runtime import copy
from dockweb.runtime.errors import ContainerNotFound, ContainerNotRunning, NotFound

routes = Routes()

STAT_HEADER = "X-Docker-Container-Path-Stat"
_KINDS = {"C": 0, "A": 1, "D": 2}  # archive.ChangeType: Modify, Add, Delete
_STATS_INTERVAL = 1.0  # dockerd's collector samples once a second


def _path(req: Request) -> str:
    path = req.q("path", "")
    if not path:
        raise bad_request("bad parameter: pathcannot be empty")  # dockerd's words, typo kept
    return path


def _stat_header(st: dict) -> tuple[str, str]:
    """base64 of the stat as Go's json.Marshal writes it (HTML characters escaped)."""
    text = json.dumps(st, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return STAT_HEADER, base64.b64encode(text.encode()).decode()


@routes.head("/containers/{name:.*}/archive")
def archive_head(req: Request) -> Raw:
    path = _path(req)
    name = req.params["name"]
    _c, scope = services.container_scope(name)
    st = copy.stat_path(scope, path, name)
    return Raw(b"", content_type=None, headers=[_stat_header(st)])


@routes.get("/containers/{name:.*}/archive")
def archive_get(req: Request) -> Stream:
    path = _path(req)
    name = req.params["name"]
    _c, scope = services.container_scope(name)
    st, write = copy.prepare_archive(scope, path, container=name)
    return Stream(written(write), content_type="application/x-tar", headers=[_stat_header(st)])


@routes.put("/containers/{name:.*}/archive", audit="container.cp", target="name")
def archive_put(req: Request) -> Raw:
    path = _path(req)
    services.put_archive(
        req.params["name"],
        req.body,
        path,
        no_overwrite_dir_non_dir=req.qbool("noOverwriteDirNonDir"),
        copy_uid_gid=req.qbool("copyUIDGID"),
    )
    return Raw(b"", content_type=None)


@routes.post("/containers/{name:.*}/copy")
def copy_removed(req: Request) -> Raw:
    """The copy endpoint before archive: gone since API 1.24, a bare 404 as dockerd's."""
    return Raw(b"", status=404, content_type=None)


@routes.get("/containers/{name:.*}/export")
def export(req: Request) -> Stream:
    name = req.params["name"]
    services.get_container(name)  # 404 before the answer starts

    def write(out) -> None:
        services.export_container(name, out)

    return Stream(written(write), content_type="application/octet-stream")


@routes.get("/containers/{name:.*}/changes")
def changes(req: Request) -> Json:
    found = services.container_diff(req.params["name"])
    # a nil slice when nothing changed: dockerd answers null
    return Json([{"Path": path, "Kind": _KINDS[kind]} for kind, path in found] or None)


@routes.get("/containers/{name:.*}/top")
def top(req: Request) -> Json:
    titles, processes = services.container_top(req.params["name"], req.q("ps_args", "") or "")
    return Json({"Processes": processes, "Titles": titles})


@routes.get("/containers/{name:.*}/stats")
def stats(req: Request) -> Json | Stream:
    stream = req.qbool("stream", True)
    one_shot = req.qbool("one-shot", False) if req.at_least(1, 41) else False
    c = services.get_container(req.params["name"])
    if stream and one_shot:
        raise bad_request("cannot have stream=true and one-shot=true")
    # not running, or restarting: dockerd's frame of zeros at once
    if not stream and c.status.value not in ("running", "paused"):
        zeros = stats_json(None, name=c.name, cid=c.id, preread=ZERO_TIME, precpu=zero_cpu_stats())
        return Json(zeros)
    frames = _frames(c.id, c.name)
    if not stream:
        if not one_shot:
            next(frames, None)  # dockerd primes the CPU figures with a first frame
        frame = next(frames, None)
        if frame is None:  # removed meanwhile
            raise ContainerNotFound(f"No such container: {req.params['name']}")
        return Json(frame)
    return Stream((dumps(frame) for frame in frames), content_type="")


def _frames(cid: str, name: str) -> Iterator[dict]:
    """Frames a second apart, as dockerd's collector publishes them; each carries the one
    before's ``read`` and ``cpu_stats`` as ``preread`` and ``precpu_stats``; zeros while
    the container is not running."""
    preread, precpu = ZERO_TIME, zero_cpu_stats()
    first = True
    while True:
        if not first:
            time.sleep(_STATS_INTERVAL)
        first = False
        try:
            sample = services.container_stats_sample(cid)
        except ContainerNotRunning:
            sample = None
        except NotFound:  # removed: the stream ends
            return
        frame = stats_json(sample, name=name, cid=cid, preread=preread, precpu=precpu)
        preread, precpu = frame["read"], frame["cpu_stats"]
        yield frame
