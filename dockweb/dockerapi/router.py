"""Routes: (method, path pattern) to handler, as dockerd's gorilla/mux router.

Each handler module has its own ``routes = Routes()``; ``server.py`` joins them in
``MODULES`` order. Patterns use ``{name}`` for one path segment and ``{name:.*}`` for the
rest (image names have slashes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable
    audit: str | None  # the audit action ("container.start"), None for reads
    target: str | None  # the path parameter naming the audit's target


def _compile(path: str) -> re.Pattern:
    out = "^"
    pos = 0
    for m in re.finditer(r"\{(\w+)(?::([^}]*))?\}", path):
        out += re.escape(path[pos : m.start()])
        out += f"(?P<{m.group(1)}>{m.group(2) or '[^/]+'})"
        pos = m.end()
    return re.compile(out + re.escape(path[pos:]) + "$")


class Routes:
    def __init__(self) -> None:
        self.table: list[Route] = []

    def add(
        self, method: str, path: str, *, audit: str | None = None, target: str | None = None
    ) -> Callable:
        def register(fn: Callable) -> Callable:
            self.table.append(Route(method, _compile(path), fn, audit, target))
            return fn

        return register

    def get(self, path: str, **kw) -> Callable:
        return self.add("GET", path, **kw)

    def head(self, path: str, **kw) -> Callable:
        return self.add("HEAD", path, **kw)

    def post(self, path: str, **kw) -> Callable:
        return self.add("POST", path, **kw)

    def put(self, path: str, **kw) -> Callable:
        return self.add("PUT", path, **kw)

    def delete(self, path: str, **kw) -> Callable:
        return self.add("DELETE", path, **kw)


def match(table: list[Route], method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """The route for ``method`` and ``path`` with its parameters; the third value tells
    whether the path matched under another method (dockerd then answers 405)."""
    other = False
    for route in table:
        m = route.pattern.match(path)
        if not m:
            continue
        if route.method == method or (
            method == "HEAD"
            and route.method == "GET"
            and not any(r.method == "HEAD" and r.pattern.match(path) for r in table)
        ):
            return route, m.groupdict(), False
        other = True
    return None, {}, other
