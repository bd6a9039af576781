"""Docker's list filters: ``-f key=value`` maps, Go's ``path.Match`` (``reference=``) and
``label=key`` / ``label=key=value`` lists."""

from __future__ import annotations

import functools
import re

from dockweb.runtime import reference as refs
from dockweb.runtime.errors import InvalidArgument


class InvalidFilter(InvalidArgument):
    """A list filter dockerd refuses, in its words ("Bad format of filter ...", "Invalid
    filter 'x'"): an invalid argument (HTTP 400)."""


def parse_filters(pairs: list[str]) -> dict[str, list[str]]:
    """``-f key=value`` flags into Docker's filter map (keys lower-cased, values kept)."""
    out: dict[str, list[str]] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidFilter("Bad format of filter (expected name=value)")
        key, value = pair.split("=", 1)
        out.setdefault(key.strip().lower(), []).append(value.strip())
    return out


class BadPattern(InvalidFilter):
    """Go's ``path.ErrBadPattern``: a malformed ``path.Match`` pattern (HTTP 400)."""

    def __init__(self, message: str = "syntax error in pattern"):
        super().__init__(message)


# A compiled pattern: a list of chunks (star, items). ``star``: the chunk follows one or more
# ``*``; ``items`` match one character each: a literal byte (int), ``_ANY`` (``?``), or a
# class (negated, ((lo, hi), ...)) of code points.
_ANY = "?"
_RUNE_ERROR = 0xFFFD


def _rune(b: bytes, i: int) -> tuple[int, int]:
    """The code point at ``b[i]`` and its length in bytes, as Go's utf8.DecodeRune: an
    invalid or truncated sequence is U+FFFD, one byte long."""
    c = b[i]
    if c < 0x80:
        return c, 1
    n = 2 if 0xC2 <= c <= 0xDF else 3 if 0xE0 <= c <= 0xEF else 4 if 0xF0 <= c <= 0xF4 else 0
    if n and i + n <= len(b):
        try:
            return ord(b[i : i + n].decode("utf-8")), n
        except UnicodeDecodeError:
            pass
    return _RUNE_ERROR, 1


def _class_char(p: bytes, i: int) -> tuple[int, int]:
    """One character of a class, possibly ``\\``-escaped; its code point and the index after
    it. A ``-`` or ``]`` where a character is due, a dangling escape, an invalid byte, or
    a class that ends with the pattern are malformed."""
    if i >= len(p) or p[i] in b"-]":
        raise BadPattern()
    if p[i] == 0x5C:  # backslash
        i += 1
        if i >= len(p):
            raise BadPattern()
    r, n = _rune(p, i)
    if (r == _RUNE_ERROR and n == 1) or i + n >= len(p):
        raise BadPattern()
    return r, i + n


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> tuple[tuple[bool, tuple], ...]:
    """``pattern`` parsed once into chunks, or BadPattern: the whole pattern is checked, as
    Go's Match reports a malformed pattern whatever the name."""
    p = pattern.encode("utf-8", "surrogatepass")
    chunks: list[tuple[bool, tuple]] = []
    i = 0
    while i < len(p):
        star = False
        while i < len(p) and p[i] == 0x2A:  # *
            star = True
            i += 1
        items: list = []
        while i < len(p) and p[i] != 0x2A:
            c = p[i]
            if c == 0x3F:  # ?
                items.append(_ANY)
                i += 1
            elif c == 0x5B:  # [
                i += 1
                negated = i < len(p) and p[i] == 0x5E  # ^
                if negated:
                    i += 1
                ranges = []
                while not (ranges and i < len(p) and p[i] == 0x5D):  # ]
                    lo, i = _class_char(p, i)
                    hi = lo
                    if p[i] == 0x2D:  # -
                        hi, i = _class_char(p, i + 1)
                    ranges.append((lo, hi))
                i += 1
                items.append((negated, tuple(ranges)))
            elif c == 0x5C:  # backslash
                if i + 1 >= len(p):
                    raise BadPattern()
                items.append(p[i + 1])
                i += 2
            else:
                items.append(c)
                i += 1
        chunks.append((star, tuple(items)))
    return tuple(chunks)


def _match_chunk(items: tuple, s: bytes, i: int) -> int:
    """Where ``items`` end when they match ``s`` from ``i``; -1 when they do not."""
    n = len(s)
    for item in items:
        if i >= n:
            return -1
        if item.__class__ is int:
            if s[i] != item:
                return -1
            i += 1
        elif item is _ANY:
            if s[i] == 0x2F:  # /
                return -1
            i += _rune(s, i)[1]
        else:
            negated, ranges = item
            r, width = _rune(s, i)
            if any(lo <= r <= hi for lo, hi in ranges) == negated:
                return -1
            i += width
    return i


def go_path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``, exactly: ``*`` any run of non-``/`` characters, ``?`` one
    non-``/`` character, ``[...]`` / ``[^...]`` classes with ranges, ``\\`` escapes; a
    malformed pattern raises BadPattern ("syntax error in pattern").

    Go's algorithm rather than a regular expression: the pattern is cut into chunks of
    one-character items, each led by a star; a starred chunk is tried at each later offset
    that does not skip a ``/`` and the first fit is kept (only the last chunk must also end
    the name). No backtracking across chunks, so the cost is at most
    len(pattern) x len(name) steps whatever the pattern (a regex of many ``[^/]*`` is
    exponential). Bytes as Go sees them: a star skips bytes, ``?`` and classes read UTF-8.
    """
    chunks = _compile(pattern)
    s = name.encode("utf-8", "surrogatepass")
    n = len(s)
    pos = 0
    last = len(chunks) - 1
    for k, (star, items) in enumerate(chunks):
        if star and not items:  # a trailing star: the rest, unless it has a /
            return s.find(b"/", pos) < 0
        end = _match_chunk(items, s, pos)
        if end >= 0 and (end == n or k < last):
            pos = end
            continue
        if not star:
            return False
        found = -1
        for skip in range(pos, n):
            if s[skip] == 0x2F:
                break
            end = _match_chunk(items, s, skip + 1)
            if end >= 0 and (end == n or k < last):
                found = end
                break
        if found < 0:
            return False
        pos = found
    return pos == n


def familiar_match(pattern: str, ref: refs.Reference) -> bool:
    """``reference=``: the pattern matches the familiar name:tag or the familiar name."""
    return go_path_match(pattern, ref.familiar_string()) or go_path_match(
        pattern, ref.familiar_name
    )


def regex_match(pattern: str, value: str) -> bool:
    """dockerd's filters.Match: ``pattern`` is a regular expression searched in ``value``
    (one that does not compile: a plain substring)."""
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return pattern in value


def match_labels(wanted: list[str], labels: dict | None) -> bool:
    """``label=key`` (the key is set) and ``label=key=value`` (set to that value), all of
    them: dockerd's filters.MatchKVList."""
    labels = labels or {}
    for item in wanted:
        key, _, value = item.partition("=")
        if key not in labels:
            return False
        if "=" in item and labels[key] != value:
            return False
    return True
