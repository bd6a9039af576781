"""Human-readable sizes and durations, as ``github.com/docker/go-units`` prints them.

``docker images`` shows ``human_size(size, 3)`` (``HumanSizeWithPrecision(size, 3)``, e.g.
``4.26MB``); ``docker history`` and ``docker ps -s`` use the default precision 4
(``HumanSize``). Progress bars use ``bytes_size`` (binary units, ``1.5MiB``). Go's ``%.*g``
and C's, which Python's ``%`` operator uses, give the same text for these values
(``1e+03kB``, ``999B``, ``0B``).
"""

from __future__ import annotations

from datetime import UTC, datetime

DECIMAL_ABBRS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
BINARY_ABBRS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")

# Go's zero time.Time, which docker/cli treats as "no time".
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def _size_and_unit(size: float, base: float, abbrs: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    limit = len(abbrs) - 1
    while size >= base and i < limit:
        size /= base
        i += 1
    return size, abbrs[i]


def custom_size(fmt: str, size: float, base: float, abbrs: tuple[str, ...]) -> str:
    """``CustomSize``: ``fmt`` gets the scaled size and the unit (``"%.4g%s"``)."""
    value, unit = _size_and_unit(float(size), base, abbrs)
    return fmt % (value, unit)


def human_size(size: float, precision: int = 4) -> str:
    """``HumanSizeWithPrecision``: decimal units, ``precision`` significant digits.

    ``human_size(4_257_000, 3) == "4.26MB"``; ``docker images`` uses precision 3.
    """
    value, unit = _size_and_unit(float(size), 1000.0, DECIMAL_ABBRS)
    return f"{value:.{precision}g}{unit}"


def human_size_precision3(size: float) -> str:
    """The SIZE column of ``docker images``."""
    return human_size(size, 3)


def bytes_size(size: float) -> str:
    """``BytesSize``: binary units, 4 significant digits (``"1.5MiB"``)."""
    return custom_size("%.4g%s", size, 1024.0, BINARY_ABBRS)


def human_duration(seconds: float) -> str:
    """``HumanDuration``: ``"Less than a second"``, ``"About a minute"``, ``"3 weeks"`` ...

    ``seconds`` may be negative (a clock skew), which reads as less than a second.
    """
    # Go computes on an int64 of nanoseconds; d.Seconds() etc. are float64, truncated by int().
    ns = int(round(seconds * 1e9))
    secs = int(ns / 1e9)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(ns / 6e10)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(ns / 3.6e12 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(ns / 3.6e12) // 24 // 365} years"


def created_since(created: datetime | None, now: datetime | None = None) -> str:
    """The CREATED column of ``docker images``: ``human_duration(now - created) + " ago"``.

    docker/cli returns ``""`` for a zero time (Go's ``time.Time{}``), which ``None`` also
    stands for here; newer CLIs then show ``N/A`` through their table template
    (``{{if .CreatedSince}}...{{else}}N/A{{end}}``). Naive datetimes are taken as UTC.
    """
    if created is None:
        return ""
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    if created == GO_ZERO_TIME:
        return ""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return human_duration((now - created).total_seconds()) + " ago"
