"""Engine API: ``POST /build`` (the classic builder, its JSON stream), ``POST /build/prune``
and ``POST /commit``.

A build takes the tar context of the request body (plain, gzip, bzip2 or xz), unpacks it
under DOCKWEB_DATA/builds, and runs ``images.services.build_recorded``: the same builder as
``dockweb build`` and the Build page, recorded as a Build row the Build page lists, images
and containers mirrored into the database. Its output is dockerd's stream, message for
message: ``{"stream":"Step 1/3 : FROM ..."}`` and its newline apart, a RUN step's stderr
between ``ESC[91m`` and ``ESC[0m``, ``{"aux":{"ID":...}}`` as each stage ends (API 1.30 and
later), ``Successfully built/tagged``, and an error as ``{"errorDetail":...,"error":...}``
(with the exit code of a failed RUN as ``code``). An error before the first message (the
options, the context, the Dockerfile's syntax, the target) is an HTTP status instead, as
dockerd's; ``q`` keeps the output until the end and sends the image ID alone. A client that
goes away cancels the build before its next step, as dockerd's.

Options dockweb cannot honour are refused with a 400 naming them: BuildKit (``version=2``),
remote contexts, resource limits, a ``networkmode`` other than default,
bridge, host or none (passed to the RUN containers), another platform. ``cachefrom`` and
``target`` are the classic builder's. The zero values the
docker CLI always sends are accepted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import queue
import re
import shutil
import threading
from typing import Any

from dockweb.docker.jsonmessage import encode as encode_message
from dockweb.docker.run_options import InvalidOption, parse_hosts
from dockweb.dockerapi.errors import as_api_error
from dockweb.dockerapi.http import ApiError, Json, Request, Stream, bad_request, unsupported
from dockweb.dockerapi.router import Routes

routes = Routes()

# what moby's StderrFormatter puts around a RUN step's stderr
_STDERR_START = "\x1b[91m"
_STDERR_END = "\x1b[0m"
_RUN_FAILED = re.compile(r"^The command '.*' returned a non-zero code: (\d+)$", re.S)


def error_message(err: BaseException) -> dict:
    """streamformatter.FormatError: the exit code of a failed RUN step as ``code``."""
    message = as_api_error(err).message
    detail: dict[str, Any] = {"message": message}
    m = _RUN_FAILED.match(message)
    if m:
        detail = {"code": int(m.group(1)), "message": message}
    return {"errorDetail": detail, "error": message}


# -- options ----------------------------------------------------------------------------


def _json_option(req: Request, name: str, what: str, kind: type) -> Any:
    raw = req.q(name)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise bad_request(f"error reading {what}: {err}") from None
    if value is not None and not isinstance(value, kind):
        raise bad_request(f"error reading {what}: expected a JSON {kind.__name__}")
    return value


def _zero(req: Request, name: str) -> None:
    """A numeric option dockweb does not apply: 0 (what the docker CLI sends) or absent."""
    value = req.qint(name, 0)
    if value:
        raise unsupported(f"the build option {name} ({value})")


def _build_options(req: Request):
    """dockerd's newImageBuildOptions, validated; a BuildOptions for the runtime, and
    whether the output is quiet."""
    from dockweb.runtime.build import BuildOptions

    version = req.q("version") or "1"
    if version == "2":
        raise unsupported(
            "BuildKit (version=2): build with the classic builder (DOCKER_BUILDKIT=0)"
        )
    if version != "1":
        raise ApiError(500, f'invalid version "{version}"')
    if req.qlist("securityopt"):
        raise bad_request(
            "The daemon on this platform does not support setting security options on build"
        )
    if req.qbool("squash"):
        raise bad_request("squash is only supported with experimental mode")
    isolation = req.q("isolation") or ""
    if isolation not in ("", "default"):
        raise bad_request(f'Unsupported isolation: "{isolation}"')
    for name in ("memory", "memswap", "cpushares", "cpuperiod", "cpuquota", "shmsize"):
        _zero(req, name)
    for name in ("cpusetcpus", "cpusetmems", "cgroupparent", "remote", "session", "buildid"):
        if req.q(name):
            raise unsupported(f"the build option {name} ({req.q(name)})")
    # the docker CLI sends --add-host as one comma-separated value
    extra_hosts = [h for v in req.qlist("extrahosts") for h in v.split(",") if h]
    try:
        extra_hosts = parse_hosts(extra_hosts)
    except InvalidOption as e:
        raise bad_request(str(e)) from None
    network = req.q("networkmode") or ""
    if network not in ("", "default", "bridge", "host", "none"):
        raise unsupported(f'the build network mode "{network}" (default, bridge, host, none)')
    if _json_option(req, "ulimits", "ulimit settings", list):
        raise unsupported("the build option ulimits")
    cache_from = _json_option(req, "cachefrom", "cache-from images", list) or []
    if not all(isinstance(c, str) for c in cache_from):
        raise bad_request("error reading cache-from images: expected a list of strings")
    if req.q("outputs") and _json_option(req, "outputs", "outputs", list):
        raise unsupported("the build option outputs")
    platform = req.q("platform") or ""
    if platform and req.at_least(1, 32):
        _check_platform(platform)
    build_args = _json_option(req, "buildargs", "build args", dict) or {}
    labels = _json_option(req, "labels", "labels", dict) or {}
    for what, values, nullable in (("build args", build_args, True), ("labels", labels, False)):
        for key, value in values.items():
            if not (isinstance(value, str) or (nullable and value is None)):
                raise bad_request(f"error reading {what}: the value of {key} is not a string")
    for tag in req.qlist("t"):
        _check_tag(tag)
    force_rm = req.qbool("forcerm")
    remove = True if (force_rm or req.q("rm") in (None, "")) else req.qbool("rm")
    options = BuildOptions(
        dockerfile="",
        tags=req.qlist("t"),
        build_args=build_args,
        no_cache=req.qbool("nocache"),
        remove=remove,
        force_rm=force_rm,
        labels=labels,
        target=req.q("target") or "",
        pull=req.qbool("pull"),
        network=network,
        extra_hosts=extra_hosts,
        cache_from=[c for c in cache_from if c],
    )
    return options, req.qbool("q")


def _check_tag(tag: str) -> None:
    """moby's sanitizeRepoAndTags (its errors are 500s)."""
    from dockweb.runtime import reference as refs
    from dockweb.runtime.errors import DockwebError

    try:
        ref = refs.parse_normalized_named(tag)
    except DockwebError as err:
        raise ApiError(500, str(err)) from None
    if ref.digest:
        raise ApiError(500, "build tag cannot contain a digest")


def _check_platform(text: str) -> None:
    from dockweb.runtime import manifest as mf

    try:
        wanted = mf.parse_platform(text)
    except ValueError as err:
        raise bad_request(str(err)) from None
    host = mf.host_platform()
    if not mf.platform_matches(wanted, host):
        raise unsupported(f"building for another platform ({text})")


def _registry_config(header: str) -> dict[str, tuple[str, str]]:
    """X-Registry-Config (base64url JSON of registry -> AuthConfig) as host -> (user,
    password). As dockerd, an undecodable header is no credentials."""
    if not header:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error):
        return {}
    out: dict[str, tuple[str, str]] = {}
    if not isinstance(data, dict):
        return out
    for key, conf in data.items():
        if not isinstance(conf, dict):
            continue
        user, password = conf.get("username") or "", conf.get("password") or ""
        if not user and conf.get("auth"):
            with contextlib.suppress(ValueError, binascii.Error):
                user, _, password = base64.b64decode(conf["auth"]).decode().partition(":")
        if not user:
            continue
        host = re.sub(r"^[a-z]+://", "", key).split("/", 1)[0]
        host = "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host
        out[host] = (user, password)
    return out


def _read_dockerfile(context: str, name: str) -> tuple[str, str]:
    """The Dockerfile's text and its path in the context; dockerd's 500 when there is none
    (the default name also as ``dockerfile``, as moby's)."""
    candidates = [name] + (["dockerfile"] if name == "Dockerfile" else [])
    for candidate in candidates:
        path = os.path.normpath(os.path.join(context, candidate))
        real = os.path.realpath(path)
        if not (real == context or real.startswith(context + os.sep)):
            continue
        if os.path.isfile(real):
            with open(real, encoding="utf-8", errors="replace") as f:
                return f.read(), os.path.relpath(path, context)
    raise ApiError(500, f"Cannot locate specified Dockerfile: {name}")


# -- POST /build ------------------------------------------------------------------------


class _Run:
    """A build in a thread of its own; its messages come through a queue. Messages are
    (encoded bytes); the end is ``(None, error or None)``."""

    def __init__(self, options, *, context: str, size: int, quiet: bool, aux: bool, creds):
        self.options = options
        self.context = context
        self.size = size
        self.quiet = quiet
        self.aux = aux
        self.creds = creds
        self.queue: queue.Queue = queue.Queue()
        self.cancel = threading.Event()  # set when the client goes away
        self.held: list[bytes] = []  # quiet: the output, sent only with an error
        self.image_id = ""

    def _send(self, obj: dict) -> None:
        data = encode_message(obj)
        if self.quiet:
            self.held.append(data)
        else:
            self.queue.put(data)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="dockerapi-build").start()

    def _run(self) -> None:
        from django.db import connection

        from images import services

        error: BaseException | None = None
        try:
            result = services.build_recorded(
                self.options,
                context_size=self.size,
                on_output=lambda text: self._send({"stream": text}),
                on_stderr=lambda text: self._send({"stream": _STDERR_START + text + _STDERR_END}),
                on_stage=(lambda image_id: self._send({"aux": {"ID": image_id}}))
                if self.aux
                else None,
                credentials=self.creds,
                cancel=self.cancel,
            )
            self.image_id = result.image_id
        except Exception as err:  # noqa: BLE001 - every failure is the client's error message
            error = err
        finally:
            shutil.rmtree(os.path.dirname(self.context), ignore_errors=True)
            connection.close()
        self.queue.put((None, error))

    def first(self) -> bytes | tuple:
        return self.queue.get()

    def messages(self, first) -> Any:
        item = first
        while True:
            if isinstance(item, tuple):
                _, error = item
                if error is not None:
                    yield from self.held  # quiet: what it kept, then the error (dockerd's errf)
                    yield encode_message(error_message(error))
                elif self.quiet:
                    yield encode_message({"stream": self.image_id + "\n"})
                return
            yield item
            item = self.queue.get()


@routes.post("/build", audit="image.build", target="t")
def build(req: Request) -> Stream:
    from dockweb.runtime.errors import BuildError
    from images import services

    options, quiet = _build_options(req)
    creds = _registry_config(req.headers.get("x-registry-config", ""))
    try:
        context, size = services.receive_context(req.body.chunks())
    except services.BuildRefused as err:
        raise ApiError(500, str(err)) from None
    try:
        name = req.q("dockerfile") or "Dockerfile"
        options.dockerfile, options.dockerfile_name = _read_dockerfile(context, name)
        if not options.dockerfile.strip():
            raise bad_request(f"the Dockerfile ({name}) cannot be empty")
        options.context_dir = context
        run = _Run(
            options, context=context, size=size, quiet=quiet, aux=req.at_least(1, 30), creds=creds
        )
    except BaseException:
        shutil.rmtree(os.path.dirname(context), ignore_errors=True)
        raise
    run.start()
    first = run.first()
    if isinstance(first, tuple) and first[1] is not None and not run.held:
        # nothing was written yet: dockerd answers with a status, not a stream
        err = first[1]
        if isinstance(err, BuildError):
            raise bad_request(str(err))
        raise err
    return Stream(run.messages(first), on_close=run.cancel.set)


@routes.post("/build/prune", audit="build.prune")
def build_prune(req: Request) -> Json:
    """dockweb's classic builder keeps no cache apart from its intermediate images (which
    ``image prune`` removes): nothing to delete, as dockerd's answer for an empty cache."""
    keep = req.q("keep-storage") or "0"
    try:
        int(keep)
    except ValueError:
        raise ApiError(
            500,
            f"keep-storage is in bytes and expects an integer, got {keep}: strconv.Atoi: "
            f'parsing "{keep}": invalid syntax',
        ) from None
    return Json({"CachesDeleted": None, "SpaceReclaimed": 0})


# -- POST /commit -----------------------------------------------------------------------


@routes.post("/commit", audit="container.commit", target="container")
def commit(req: Request) -> Json:
    from dockweb.runtime.errors import BuildError
    from images import services

    container = req.q("container") or ""
    if not container:
        raise bad_request('invalid name or ID supplied: ""')
    config = req.json(default=None)
    if isinstance(config, dict) and any(
        v not in (None, "", [], {}, False, 0) for v in config.values()
    ):
        raise unsupported("a container config in the commit's body: use changes")
    repo, tag = req.q("repo") or "", req.q("tag") or ""
    repo_tag = f"{repo}:{tag}" if repo and tag else repo
    pause = req.qbool("pause") if req.q("pause") not in (None, "") else True
    changes = [c for c in req.qlist("changes") if c]
    try:
        image_id = services.commit_container(
            container,
            repo_tag,
            message=req.q("comment") or "",
            author=req.q("author") or "",
            changes=changes,
            pause=pause,
        )
    except BuildError as err:
        raise bad_request(str(err)) from None
    return Json({"Id": image_id}, status=201)
