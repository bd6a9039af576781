"""Docker's jsonmessage: the progress lines of a pull, push or load, as dockerd writes them
on the Engine API (``JSONMessage``) and as docker/cli draws their progress bars
(``JSONProgress.String``). Django-free; the CLI's renderer and the Engine API share it.

The runtime reports progress as events: ``{"kind": "message", "text": ...}`` for lines
without a layer, ``{"kind": "layer", "id", "status", "current", "total"}`` for a layer's
line (``current`` None when the state carries no byte count).
"""

from __future__ import annotations

import json
from typing import Any

from dockweb.runtime.units import human_size

_BAR_WIDTH = 50
_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def encode(obj: Any) -> bytes:
    """One message of dockerd's JSON streams (pull, push, load, build): Go's json.Marshal
    (``<``, ``>`` and ``&`` escaped as ``\\u003c`` ...) and streamformatter's ``\\r\\n``."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in _GO_ESCAPES:
        text = text.replace(ch, esc)
    return text.encode("utf-8", "replace") + b"\r\n"


def progress_bar(current: int | None, total: int | None) -> str:
    """``JSONProgress.String`` for a wide terminal (dockerd renders with width 200): the bar
    and ``current/total`` in decimal units; "" when no byte has been counted (a total alone
    rides along on the runtime's "Pulling fs layer" and "Waiting", which show no bar)."""
    current = current or 0
    total = total or 0
    if current <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(_BAR_WIDTH, int(current / total * 100) // 2)
    bar = "[" + "=" * pct + ">" + " " * (_BAR_WIDTH - pct) + "] "
    if current > total:  # as Go: a wonky current hides the total
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def layer_message(event: dict) -> dict:
    """A layer event as dockerd's JSONMessage: status, progressDetail (always there, empty
    without a byte count), progress (the bar, with one), id."""
    out: dict = {"status": event["status"]}
    current = event.get("current")
    detail: dict = {}
    if current is not None:
        if current:
            detail["current"] = current
        if event.get("total"):
            detail["total"] = event["total"]
    out["progressDetail"] = detail
    if current is not None:
        bar = progress_bar(current, event.get("total"))
        if bar:
            out["progress"] = bar
    out["id"] = event["id"]
    return out


def status_message(text: str, id: str = "") -> dict:
    """A line without a layer: ``{"status": text}`` (with ``id`` when given)."""
    return {"status": text, "id": id} if id else {"status": text}


def stream_message(text: str) -> dict:
    """Text for the client to print as it is (``docker load``'s ``Loaded image:`` lines)."""
    return {"stream": text}


def error_message(text: str) -> dict:
    """An error after the stream started: the client prints it and fails."""
    return {"errorDetail": {"message": text}, "error": text}


def aux_message(aux: dict) -> dict:
    """Auxiliary data for the client (a push's tag, digest and size)."""
    return {"progressDetail": {}, "aux": aux}
