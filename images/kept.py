"""Kept: what a web process made once (rendered pages and fragments, prepared rows, words)
and hands out again while it is still what would be made.

Each user of one picks a key that covers everything the value depends on, so an entry is
never stale, only unused; a Kept is emptied when it reaches its limit rather than keeping
ages, since its entries are cheap to make again and most are worth a fraction of a second.
Reads and writes are single dict operations, safe between a server's threads.
"""

from __future__ import annotations


class Kept(dict):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key, value):
        """Store ``value`` under ``key`` (emptying the whole when full); return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
