"""Go's time texts as Docker prints them: RFC 3339 with nanoseconds (how Go marshals a
time.Time), time.String() in the local zone, "3 minutes ago" (units.HumanDuration).

Reading Go's times (``parse_go_time``: None for the zero time; ``go_unix``: 0) and the
durations themselves (``human_duration``) are ``dockweb.runtime.units``', which the runtime
uses too.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from dockweb.runtime.units import GO_ZERO_TEXT, go_unix, human_duration


def go_time(value: object) -> str:
    """RFC 3339 with nanoseconds, as Go marshals time.Time; "" or None is the zero time.
    ``value`` is a datetime, a Unix time or a string (returned as it is)."""
    if not value:
        return GO_ZERO_TEXT
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def unix_ns(value: str) -> int:
    """An RFC 3339 time in nanoseconds: creation order, where seconds tie."""
    if not value or value.startswith("0001-01-01"):
        return 0
    head, _, frac = value.rstrip("Z").partition(".")
    digits = "".join(c for c in frac if c.isdigit())[:9].ljust(9, "0")
    return go_unix(head + "Z") * 10**9 + int(digits)


def since(unix_time: int, now: float | None = None) -> str:
    """docker/cli's CreatedSince: "3 minutes ago"; "N/A" for no time."""
    if unix_time <= 0:
        return "N/A"
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - unix_time)) + " ago"


def created_at(unix_time: int) -> str:
    """Go's time.Time.String() in the local zone: "2006-01-02 15:04:05 -0700 MST"."""
    t = datetime.fromtimestamp(unix_time, UTC).astimezone()
    return t.strftime("%Y-%m-%d %H:%M:%S %z ") + (t.tzname() or "UTC")


def rfc3339(unix_time: int) -> str:
    """Go's time.Unix(t, 0).Format(time.RFC3339) in the local zone."""
    t = datetime.fromtimestamp(unix_time, UTC).astimezone()
    offset = t.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return t.strftime("%Y-%m-%dT%H:%M:%S") + zone
