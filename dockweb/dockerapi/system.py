"""Engine API: ``_ping`` and ``version`` (version negotiation), ``info``, ``system/df``,
``events``."""

from __future__ import annotations

import os
import platform

from dockweb.dockerapi.http import Json, Raw, Request
from dockweb.dockerapi.router import Routes

routes = Routes()

ENGINE_VERSION = "20.10.24"

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


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


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
        "Arch": _arch(),
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
