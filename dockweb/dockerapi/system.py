"""Engine API: ``_ping`` and ``version`` (version negotiation), ``info``, ``system/df``,
``events``."""

from __future__ import annotations

import os
import platform
import re
import threading
import time

from dockweb.docker.system import ARCH, ENGINE_VERSION, info_data
from dockweb.dockerapi.http import ApiError, Json, Raw, Request, Stream, bad_request, dumps
from dockweb.dockerapi.router import Routes
from dockweb.runtime import events as journal
from dockweb.runtime.units import TimestampError, get_timestamp

routes = Routes()

_PING_HEADERS = [
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Pragma", "no-cache"),
]


@routes.get("/_ping")
def ping(req: Request) -> Raw:
    return Raw(b"OK", headers=_PING_HEADERS)


@routes.head("/_ping")
def ping_head(req: Request) -> Raw:
    return Raw(b"", headers=_PING_HEADERS)


@routes.get("/version")
def version(req: Request) -> Json:
    from dockweb.dockerapi.server import API_VERSION, MIN_API_VERSION, version_text

    try:
        from importlib.metadata import version as dist_version

        own = dist_version("dockweb")
    except Exception:  # noqa: BLE001 - running from a checkout without metadata
        own = "0"
    details = {
        "ApiVersion": version_text(API_VERSION),
        "Arch": ARCH.get(platform.machine(), platform.machine()),
        "BuildTime": "",
        "Experimental": "false",
        "GitCommit": "",
        "GoVersion": "",
        "KernelVersion": os.uname().release,
        "MinAPIVersion": version_text(MIN_API_VERSION),
        "Os": "linux",
    }
    return Json(
        {
            "Platform": {"Name": f"dockweb {own}"},
            "Components": [
                {"Name": "Engine", "Version": ENGINE_VERSION, "Details": details},
                {"Name": "dockweb", "Version": own, "Details": {}},
            ],
            "Version": ENGINE_VERSION,
            "ApiVersion": details["ApiVersion"],
            "MinAPIVersion": details["MinAPIVersion"],
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": details["Arch"],
            "KernelVersion": details["KernelVersion"],
            "BuildTime": "",
        }
    )


# -- info, system/df ---------------------------------------------------------------------


class _Listeners:
    """The open ``GET /events`` streams (Info's NEventsListener)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.count += n


listeners = _Listeners()


@routes.get("/info")
def info(req: Request) -> Json:
    from django.conf import settings

    from dockweb.engine import get_manager, get_store

    return Json(
        info_data(
            get_store(),
            get_manager(),
            server_version=ENGINE_VERSION,
            insecure_registries=settings.DOCKWEB_INSECURE_REGISTRIES,
            events_listeners=listeners.count,
        )
    )


@routes.get("/system/df")
def system_df(req: Request) -> Json:
    """moby's types.DiskUsage (API 1.41) from the runtime, as ``dockweb system df``."""
    from disk import services

    du = services.disk_usage()
    return Json(
        {
            "LayersSize": du["LayersSize"],
            "Images": du["Images"],
            "Containers": du["Containers"],
            "Volumes": du["Volumes"],
            "BuildCache": du["BuildCache"] or None,
            "BuilderSize": du["BuilderSize"],
        }
    )


# -- events ------------------------------------------------------------------------------

_UNIX = re.compile(r"^(\d+)(?:\.(\d{1,9}))?$")


def _timestamp_ns(value: str) -> int:
    """``since``/``until`` as dockerd reads them (eventtime.GetTimestamp, then the seconds
    and nanoseconds), in nanoseconds; clients send ``S.NNNNNNNNN`` already."""
    m = _UNIX.match(value)
    if m:
        return int(m.group(1)) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))
    try:
        t = get_timestamp(value)
    except TimestampError:
        raise ApiError(500, f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    return int(round(t * 1e9))


def _exact(filters: dict[str, list[str]], key: str, value: str) -> bool:
    values = filters.get(key)
    return not values or value in values


def _fuzzy(filters: dict[str, list[str]], key: str, value: str) -> bool:
    values = filters.get(key)
    return not values or any(value == v or value.startswith(v) for v in values)


def _strip_tag(name: str) -> str:
    last = name.rsplit("/", 1)[-1]
    if "@" in name:
        return name.split("@", 1)[0]
    if ":" in last:
        return name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


def event_matcher(filters: dict[str, list[str]]):
    """dockerd's events Filter.Include (daemon/events/filter.go)."""

    def include(msg: dict) -> bool:
        actor = msg.get("Actor") or {}
        actor_id = actor.get("ID", "")
        attrs = actor.get("Attributes") or {}
        action = msg.get("Action", "")
        kind = msg.get("Type", "")
        fuzzy_event = any(
            v in ("health_status", "exec_create", "exec_start") for v in filters.get("event", [])
        )
        if fuzzy_event:
            if not _fuzzy(filters, "event", action):
                return False
        elif not _exact(filters, "event", action):
            return False
        if not _exact(filters, "type", kind):
            return False
        if "scope" in filters and not _exact(filters, "scope", msg.get("scope", "")):
            return False
        for key in (
            "daemon",
            "container",
            "plugin",
            "volume",
            "network",
            "node",
            "service",
            "secret",
            "config",
        ):
            if key in filters and not (
                _fuzzy(filters, key, actor_id) or _fuzzy(filters, key, attrs.get("name", ""))
            ):
                return False
        if "image" in filters:
            name = attrs.get("name" if kind == "image" else "image", "")
            if not any(
                _exact(filters, "image", v)
                for v in (actor_id, name, _strip_tag(actor_id), _strip_tag(name))
            ):
                return False
        for item in filters.get("label", []):
            key, eq, value = item.partition("=")
            if key not in attrs or (eq and attrs[key] != value):
                return False
        return True

    return include


@routes.get("/events")
def events(req: Request) -> Stream:
    """The store's event journal from ``since`` (nothing past without it), then what comes,
    until ``until`` or the client goes."""
    from dockweb.engine import get_store

    since_raw, until_raw = req.q("since", ""), req.q("until", "")
    since = _timestamp_ns(since_raw) if since_raw else None
    until = _timestamp_ns(until_raw) if until_raw else None
    if since is not None and until is not None and since > until:
        raise bad_request(f"`since` time ({since_raw}) cannot be after `until` time ({until_raw})")
    filters = req.qfilters()  # dockerd 20.10 takes any key (one it does not know matches all)
    root = get_store().root
    past_only = until is not None and until < time.time_ns()

    def chunks():
        listeners.add(1)
        try:
            for msg in journal.read(
                root,
                since_ns=since,
                until_ns=until,
                follow=not past_only,
                include=event_matcher(filters),
                stopped=req.gone,
            ):
                yield dumps(msg)
        finally:
            listeners.add(-1)

    return Stream(chunks())
