"""Human-readable sizes and durations, as ``github.com/docker/go-units`` prints them, and
Go's times as dockweb reads them (``parse_go_time``, ``go_unix``, moby's ``get_timestamp``).

``docker images`` shows ``human_size(size, 3)`` (``HumanSizeWithPrecision(size, 3)``, e.g.
``4.26MB``); ``docker history`` and ``docker ps -s`` use the default precision 4
(``HumanSize``). Progress bars use ``bytes_size`` (binary units, ``1.5MiB``). Go's ``%.*g``
and C's, which Python's ``%`` operator uses, give the same text for these values
(``1e+03kB``, ``999B``, ``0B``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

DECIMAL_ABBRS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
BINARY_ABBRS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")

# Go's zero time.Time, which docker/cli treats as "no time", and its RFC 3339 text
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
GO_ZERO_TEXT = "0001-01-01T00:00:00Z"


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


def parse_go_time(value: str | None) -> datetime | None:
    """An RFC 3339 time as Go writes it (nanoseconds, ``Z`` or an offset), aware; None for
    Go's zero time (any time in year 1), an empty value, or text that does not parse."""
    if not value:
        return None
    # here, not at the top: the CLI's commands that only print sizes (info, progress)
    # would otherwise load the whole store module at start-up
    from dockweb.runtime.store import parse_time

    parsed = parse_time(value)
    return None if parsed.year == 1 else parsed


def rfc3339nano(ns: int) -> str:
    """Unix nanoseconds as Go's RFC3339Nano in UTC (trailing zeros of the fraction dropped),
    how Go marshals a time.Time."""
    base = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def go_unix(value: str | None) -> int:
    """An RFC 3339 time in whole Unix seconds; 0 where ``parse_go_time`` gives None."""
    parsed = parse_go_time(value)
    return 0 if parsed is None else int(parsed.timestamp())


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


# -- moby's timetypes.GetTimestamp ----------------------------------------------------------

_GO_DURATION = re.compile(r"^[-+]?(?:0|(?:[0-9]*\.?[0-9]+(?:ns|us|µs|μs|ms|s|m|h))+)$")
_GO_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600
}
_GO_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?"
    r"(Z|z|[+-]\d{2}:\d{2})?$"
)


class TimestampError(ValueError):
    """``str()`` is moby's words: failed to parse value as time or duration: "x"."""


def get_timestamp(value: str, now: datetime | None = None) -> float:
    """``--since``/``--until``/``until=`` as moby's ``timetypes.GetTimestamp``, in Unix
    seconds: a Go duration before ``now`` (whole seconds, as there; ``-1s`` is after it),
    an RFC 3339 date or time (local time without a zone), or Unix seconds ``S[.NNNNNNNNN]``.
    """
    now = now or datetime.now(UTC)
    if value != "0" and _GO_DURATION.match(value):
        sign = -1 if value.startswith("-") else 1
        secs = sum(float(n) * _GO_UNIT_SECONDS[u] for n, u in _GO_DURATION_PART.findall(value))
        return float(math.floor(now.timestamp() - sign * secs))
    m = _GO_TIME.match(value)
    if m:
        year, month, day, hour, minute, second, frac, zone = m.groups()
        try:
            t = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                         int(second or 0))
        except ValueError:
            raise TimestampError(f'parsing time "{value}": out of range') from None
        if zone in (None, ""):
            t = t.astimezone()  # local time, as ParseInLocation with the local zone
        elif zone in ("Z", "z"):
            t = t.replace(tzinfo=UTC)
        else:
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            offset = timedelta(hours=hours, minutes=minutes) * (1 if zone[0] == "+" else -1)
            t = t.replace(tzinfo=timezone(offset))
        return t.timestamp() + (int(frac.ljust(9, "0")) / 1e9 if frac else 0.0)
    if "-" not in value and re.fullmatch(r"\d+(?:\.\d{1,9})?", value):
        return float(value)
    raise TimestampError(f'failed to parse value as time or duration: "{value}"')


# -- Go's time.Duration and %q ------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
    "m": 60 * 10**9, "h": 3600 * 10**9,
}  # fmt: skip


class DurationError(ValueError):
    """``str()`` is Go's words: ``time: invalid duration "x"``."""


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` in nanoseconds: ``1h30m``, ``1.5s``, ``-300ms``, ``0``;
    DurationError with Go's words (``time: missing unit in duration "1"``)."""
    quoted = go_quote(text)
    s = text
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError(f"time: invalid duration {quoted}")
    total = 0
    while s:
        if not (s[0] == "." or s[0].isascii() and s[0].isdigit()):
            raise DurationError(f"time: invalid duration {quoted}")
        i = 0
        while i < len(s) and s[i].isascii() and s[i].isdigit():
            i += 1
        whole, s = s[:i], s[i:]
        frac = ""
        if s[:1] == ".":
            s = s[1:]
            j = 0
            while j < len(s) and s[j].isascii() and s[j].isdigit():
                j += 1
            frac, s = s[:j], s[j:]
        if not whole and not frac:
            raise DurationError(f"time: invalid duration {quoted}")
        j = 0
        while j < len(s) and s[j] != "." and not (s[j].isascii() and s[j].isdigit()):
            j += 1
        unit, s = s[:j], s[j:]
        if not unit:
            raise DurationError(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise DurationError(f"time: unknown unit {go_quote(unit)} in duration {quoted}")
        scale = _DURATION_UNITS[unit]
        v = int(whole or "0") * scale
        if frac:  # Go keeps the fraction's digits while they fit, then truncates
            v += int(frac) * scale // 10 ** len(frac)
        total += v
        if total > 2**63 - 1 + (1 if neg else 0):
            raise DurationError(f"time: invalid duration {quoted}")
    return -total if neg else total


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()``: ``30s``, ``1m30s``, ``1.5s``, ``500ms``, ``0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)

    def frac(v: int, prec: int) -> str:
        whole, part = divmod(v, 10**prec)
        digits = str(part).rjust(prec, "0").rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if u < 10**3:
        return f"{sign}{u}ns"
    if u < 10**6:
        return f"{sign}{frac(u, 3)}µs"
    if u < 10**9:
        return f"{sign}{frac(u, 6)}ms"
    secs = u // 10**9
    text = frac(u % (60 * 10**9), 9) + "s"
    minutes = secs // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v"}  # fmt: skip


def _escape_rune(ch: str, quote: str) -> str:
    """strconv's appendEscapedRune (not ASCII-only)."""
    if ch in (quote, "\\"):
        return "\\" + ch
    if ch.isprintable():
        return ch
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    n = ord(ch)
    if n < 0x20 or n == 0x7F:
        return f"\\x{n:02x}"
    if 0xD800 <= n <= 0xDFFF:
        return "\ufffd"  # not a valid rune: RuneError, printable
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string (``strconv.Quote``)."""
    return '"' + "".join(_escape_rune(ch, '"') for ch in text) + '"'


def go_quote_rune(n: int) -> str:
    """Go's ``%q`` of an integer: the rune as a quoted character literal (``'\\x00'``,
    ``'\\x03'``, ``'A'``); past the last rune (or negative), RuneError."""
    if n < 0 or n > 0x10FFFF or 0xD800 <= n <= 0xDFFF:
        n = 0xFFFD
    return "'" + _escape_rune(chr(n), "'") + "'"
