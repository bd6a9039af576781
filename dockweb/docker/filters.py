"""Docker's list filters: ``-f key=value`` maps, Go's ``path.Match`` (``reference=``) and
``label=key`` / ``label=key=value`` lists."""

from __future__ import annotations

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


def go_path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``: ``*`` and ``?`` never cross a ``/``."""
    rx = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            rx.append("[^/]*")
        elif c == "?":
            rx.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                raise InvalidFilter("syntax error in pattern")
            body = pattern[i + 1 : j]
            if body.startswith("^"):
                body = "!" + body[1:]
            rx.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            rx.append(re.escape(pattern[i]))
        else:
            rx.append(re.escape(c))
        i += 1
    return re.fullmatch("".join(rx), name) is not None


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
